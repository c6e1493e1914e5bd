-- The connector's user (docker/compose.yaml runs this once, on an empty data volume). The image makes the
-- points database and user from MARIADB_DATABASE / MARIADB_USER. scripts/stack.sh makes the same users itself.
CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY 'debezium';
CREATE USER IF NOT EXISTS 'debezium'@'localhost' IDENTIFIED BY 'debezium';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'debezium'@'%';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'debezium'@'localhost';
FLUSH PRIVILEGES;
