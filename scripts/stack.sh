#!/usr/bin/env bash
# The full stack on this machine, without docker: installs (Debian packages, Maven Central) and runs, on loopback,
#   mariadb     MariaDB 10.11 (the write model, binlog on for Debezium)       127.0.0.1:3306
#   redis       Redis 7                                                       127.0.0.1:6379
#   kafka       Kafka in KRaft mode, one node (broker + controller)           127.0.0.1:9092 (controller 9093)
#   connect     Kafka Connect, distributed, with the Debezium MariaDB plugin  127.0.0.1:8083
#   opensearch  OpenSearch (integ-test distribution, no security plugin)      127.0.0.1:9200
# Versions and ports: scripts/stack/versions.env. Everything lives in .stack/ (ignored by git): downloads/ (cache),
# opt/ (unpacked), conf/ (generated configs), data/<server>, logs/<server>.log, run/<server>.pid, and env (the
# service's and the tests' variables: `set -a; . .stack/env; set +a`).
#
# Usage: scripts/stack.sh COMMAND
#   up                  install what is missing, start every server, create the topics, run the migrations,
#                       register the connector; waits until each answers (exit 1 with its log tail if one does not)
#   down                stop every server, in reverse order (TERM, then KILL after a timeout)
#   status              each server's state; exit 0 only when every one runs and answers
#   logs [SERVER]       the last lines of each server's log (LINES=50)
#   start|stop|kill SERVER
#                       one server (kill sends SIGKILL), for fault tests; `start connect` also waits until the
#                       connector and its task are RUNNING, restarting a FAILED task
#   connector           register the connector if needed, restart a FAILED task, wait until it is RUNNING
# SERVER is one of: mariadb redis kafka connect opensearch.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${POINTS_STACK_DIR:-$ROOT/.stack}
# shellcheck source=stack/versions.env
. "$ROOT/scripts/stack/versions.env"

SERVERS=(mariadb redis kafka connect opensearch)
DL=$STACK_DIR/downloads
OPT=$STACK_DIR/opt
CONF=$STACK_DIR/conf
DATA=$STACK_DIR/data
LOGS=$STACK_DIR/logs
RUN=$STACK_DIR/run
POM=$ROOT/scripts/stack/kafka-pom.xml
CONNECTOR_JSON=$ROOT/docker/connect/points-outbox.json
CONNECT_PROPERTIES=$ROOT/docker/connect/connect-distributed.properties
KAFKA_LIB=$DL/kafka-$KAFKA_VERSION/lib
DEBEZIUM_TGZ=$DL/debezium-connector-mariadb-$DEBEZIUM_VERSION-plugin.tar.gz
OPENSEARCH_ZIP=$DL/opensearch-$OPENSEARCH_VERSION.zip
PLUGIN_DIR=$OPT/connect-plugins-$DEBEZIUM_VERSION
OS_USER=opensearch
H=$STACK_HOST
CONNECT_URL=http://$H:$CONNECT_PORT
OPENSEARCH_URL=http://$H:$OPENSEARCH_PORT

# Seconds to wait for each server to answer.
declare -A READY_TIMEOUT=([mariadb]=90 [redis]=30 [kafka]=120 [connect]=150 [opensearch]=180)
# Seconds between TERM and KILL.
declare -A STOP_TIMEOUT=([mariadb]=60 [redis]=30 [kafka]=60 [connect]=30 [opensearch]=30)
CONNECTOR_TIMEOUT=${POINTS_STACK_CONNECTOR_TIMEOUT:-120}

T0=$(date +%s)
log() { printf '[stack %3ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() {
  printf '[stack] FAILED: %s\n' "$*" >&2
  exit 1
}
is_server() {
  local s
  for s in "${SERVERS[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}
is_root() { [[ $(id -u) == 0 ]]; }
as_root() { if is_root; then "$@"; else sudo "$@"; fi; }

# The last lines of a server's log, for a failure message.
tail_log() {
  local f=$LOGS/$1.log
  if [[ -f $f ]]; then
    printf -- '----- last 50 lines of %s -----\n' "$f" >&2
    tail -n 50 "$f" >&2
    printf -- '----- end of %s -----\n' "$f" >&2
  else
    printf '(no log at %s)\n' "$f" >&2
  fi
}
fail_server() {
  local server=$1
  shift
  printf '[stack] FAILED: %s: %s\n' "$server" "$*" >&2
  tail_log "$server"
  exit 1
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------------------------
# Installing

# A JDK >= 21 for OpenSearch 3 (the default JDK may be 17): OPENSEARCH_JAVA_HOME, JAVA_HOME, or the newest one
# found under the usual folders.
java_major() {
  "$1/bin/java" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ {split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit}'
}
find_jdk21() {
  local c m best="" best_m=0
  for c in "${OPENSEARCH_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/* /opt/java/* /opt/*jdk* /opt/*/jdk* /usr/local/*jdk*; do
    [[ -n $c && -x $c/bin/java ]] || continue
    m=$(java_major "$c") || continue
    [[ $m =~ ^[0-9]+$ ]] || continue
    if ((m >= 21 && m > best_m)); then best=$c best_m=$m; fi
  done
  [[ -n $best ]] && printf '%s\n' "$best"
}

apt_install() {
  log "apt-get install $*"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
  {
    as_root "${apt[@]}" update -qq &&
      as_root "${apt[@]}" install -y --no-install-recommends "$@"
  } >>"$LOGS/install-apt.log" 2>&1 || {
    tail -n 50 "$LOGS/install-apt.log" >&2
    die "apt-get install $* (log: $LOGS/install-apt.log)"
  }
}

# A Debian package's service may have been started by its install (where no policy-rc.d forbids it): ours run
# instead, on the same ports.
stop_system_service() {
  local svc=$1
  if [[ -d /run/systemd/system ]]; then
    as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
  else
    as_root service "$svc" stop >/dev/null 2>&1 || true
  fi
}

need_packages() {
  local pkgs=()
  [[ -x /usr/sbin/mariadbd || -x /usr/bin/mariadbd ]] && command -v mariadb-install-db >/dev/null || pkgs+=(mariadb-server)
  command -v mariadb >/dev/null || pkgs+=(mariadb-client)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server redis-tools)
  command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  # Not a server: validates docker/compose.yaml without an engine (tests/stack/test_compose.py).
  command -v docker-compose >/dev/null || pkgs+=(docker-compose)
  local c
  for c in curl unzip setpriv flock; do
    if ! command -v $c >/dev/null; then
      case $c in
        setpriv | flock) pkgs+=(util-linux) ;;
        *) pkgs+=("$c") ;;
      esac
    fi
  done
  ((${#pkgs[@]} == 0)) || printf '%s\n' "${pkgs[@]}"
}

# The Maven artifacts (Kafka's and Connect's jars, the Debezium plugin, OpenSearch) into .stack/downloads.
fetch_maven() {
  local goals=()
  [[ -f $KAFKA_LIB/.complete ]] || goals+=(dependency:copy-dependencies@jars)
  [[ -f $DEBEZIUM_TGZ && -f $OPENSEARCH_ZIP ]] || goals+=(dependency:copy@archives)
  ((${#goals[@]})) || return 0
  rm -rf "$KAFKA_LIB.tmp"
  local args=(-B -q -Dstyle.color=never -f "$POM"
    "-Dkafka.version=$KAFKA_VERSION" "-Dslf4j.version=$SLF4J_VERSION"
    "-Ddebezium.version=$DEBEZIUM_VERSION" "-Dopensearch.version=$OPENSEARCH_VERSION"
    "-Dkafka.lib=$KAFKA_LIB.tmp" "-Dstack.downloads=$DL" "${goals[@]}")
  local repo=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}
  [[ -z ${MAVEN_REPO_LOCAL:-} ]] || args=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL" "${args[@]}")
  # Offline first when Maven's cache already holds these versions (no network round trips), else online.
  if [[ -d $repo/org/apache/kafka/kafka_2.13/$KAFKA_VERSION && -d $repo/io/debezium/debezium-connector-mariadb/$DEBEZIUM_VERSION ]] &&
    mvn -o "${args[@]}" >>"$LOGS/install-maven.log" 2>&1; then
    :
  elif ! mvn "${args[@]}" >>"$LOGS/install-maven.log" 2>&1; then
    tail -n 50 "$LOGS/install-maven.log" >&2
    return 1
  fi
  if [[ -d $KAFKA_LIB.tmp ]]; then
    rm -rf "$KAFKA_LIB"
    mkdir -p "$(dirname "$KAFKA_LIB")"
    mv "$KAFKA_LIB.tmp" "$KAFKA_LIB"
    touch "$KAFKA_LIB/.complete"
  fi
}

unpack() {
  if [[ ! -f $PLUGIN_DIR/.complete ]]; then
    log "unpacking the Debezium MariaDB connector $DEBEZIUM_VERSION"
    rm -rf "$PLUGIN_DIR" && mkdir -p "$PLUGIN_DIR"
    tar -xzf "$DEBEZIUM_TGZ" -C "$PLUGIN_DIR" || {
      rm -f "$DEBEZIUM_TGZ"
      die "could not unpack $DEBEZIUM_TGZ (removed; run up again)"
    }
    touch "$PLUGIN_DIR/.complete"
  fi
  opensearch_paths
  if [[ ! -f $OS_HOME/.complete ]]; then
    log "unpacking OpenSearch $OPENSEARCH_VERSION"
    local tmp=$OS_HOME.tmp
    rm -rf "$OS_HOME" "$tmp" && mkdir -p "$tmp"
    unzip -q "$OPENSEARCH_ZIP" -d "$tmp" || {
      rm -f "$OPENSEARCH_ZIP"
      die "could not unpack $OPENSEARCH_ZIP (removed; run up again)"
    }
    mv "$tmp/opensearch-$OPENSEARCH_VERSION" "$OS_HOME" && rm -rf "$tmp"
    touch "$OS_HOME/.complete"
  fi
}

# Installing runs in two halves so that the JVM servers start while apt is still at work: install_begin starts
# apt in the background (when Java and Maven are already there) and fetches the Maven artifacts; install_end
# waits for apt. Their variables: APT_PID, APT_PKGS.
install_begin() {
  mkdir -p "$DL" "$OPT" "$CONF" "$DATA" "$LOGS" "$RUN"
  APT_PID="" APT_PKGS=()
  mapfile -t APT_PKGS < <(need_packages)
  if ((${#APT_PKGS[@]})); then
    if command -v mvn >/dev/null && command -v java >/dev/null; then
      apt_install "${APT_PKGS[@]}" &
      APT_PID=$!
    else
      apt_install "${APT_PKGS[@]}"
    fi
  fi
  fetch_maven || die "Maven could not fetch the Kafka / Debezium / OpenSearch artifacts (log: $LOGS/install-maven.log)"
  if is_root && ! id -u "$OS_USER" >/dev/null 2>&1; then
    log "creating the system user $OS_USER"
    local i
    # apt may hold the password files' lock for a moment (packages that add their own users).
    for i in 1 2 3 4 5; do
      useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OS_USER" && break
      ((i < 5)) || die "could not create the system user $OS_USER"
      sleep 2
    done
  fi
  unpack
}
install_end() {
  if [[ -n $APT_PID ]]; then
    wait "$APT_PID" || die "apt-get install ${APT_PKGS[*]} failed (log: $LOGS/install-apt.log)"
  fi
  if [[ " ${APT_PKGS[*]} " == *" mariadb-server "* ]]; then stop_system_service mariadb; fi
  if [[ " ${APT_PKGS[*]} " == *" redis-server "* ]]; then stop_system_service redis-server; fi
  return 0
}

# ---------------------------------------------------------------------------------------------------------------
# Processes: each server runs in a session of its own (setsid), its pid in run/<server>.pid, stdout and stderr
# appended to logs/<server>.log.

pid_of() {
  local f=$RUN/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # The pid must still be our server (not a recycled pid).
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(marker "$1")" || return 1
  printf '%s\n' "$pid"
}
marker() {
  case $1 in
    mariadb) echo "$CONF/mariadb.cnf" ;;
    redis) echo "redis-server" ;;
    kafka) echo "kafka.Kafka" ;;
    connect) echo "ConnectDistributed" ;;
    # bin/opensearch runs a few small JVMs before it becomes the server: either is ours.
    opensearch) echo "opensearch" ;;
  esac
}
running() { pid_of "$1" >/dev/null; }

port_of() {
  case $1 in
    mariadb) echo "$MARIADB_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    connect) echo "$CONNECT_PORT" ;;
    opensearch) echo "$OPENSEARCH_PORT" ;;
  esac
}

# spawn SERVER [VAR=value ...] -- COMMAND...: runs COMMAND in its own session; its pid is written by the shell
# that then becomes COMMAND (exec), so the pid is the server's own.
spawn() {
  local server=$1
  shift
  local envs=()
  while [[ $1 != -- ]]; do
    envs+=("$1")
    shift
  done
  shift
  local pidf=$RUN/$server.pid
  rm -f "$pidf"
  printf '\n===== %s: starting %s =====\n' "$(date -u +%FT%TZ)" "$server" >>"$LOGS/$server.log"
  (
    cd "${SPAWN_CWD:-$STACK_DIR}"
    exec 9>&- # the servers must not hold the lock of this script
    exec env "${envs[@]}" setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidf" "$@" </dev/null >>"$LOGS/$server.log" 2>&1
  ) &
  local i
  for i in $(seq 50); do
    [[ -s $pidf ]] && return 0
    sleep 0.1
  done
  fail_server "$server" "did not start"
}

# ---------------------------------------------------------------------------------------------------------------
# The servers: prepare_<server> writes its config (and initialises its data once), start_<server> starts it,
# ready_<server> is one check that it answers.

mariadb_bin() {
  local b
  for b in /usr/sbin/mariadbd /usr/bin/mariadbd; do [[ -x $b ]] && echo "$b" && return; done
  command -v mariadbd
}

prepare_mariadb() {
  local datadir=$DATA/mariadb
  mkdir -p "$datadir" "$RUN"
  cat >"$CONF/mariadb.cnf" <<EOF
# Generated by scripts/stack.sh: our own MariaDB, not the system service.
[client]
socket = $RUN/mariadb.sock

[mysqld]
datadir = $datadir
socket = $RUN/mariadb.sock
pid-file = $RUN/mariadbd.pid
log-error = $LOGS/mariadb.log
port = $MARIADB_PORT
bind-address = $H
skip-name-resolve
max_connections = 500
character-set-server = utf8mb4
innodb_buffer_pool_size = 256M
# Durable: every commit is on disk, in InnoDB and in the binlog.
innodb_flush_log_at_trx_commit = 1
sync_binlog = 1
# The binlog is what Debezium reads: row images, kept 7 days (the longest Connect outage we survive).
server_id = 1
log_bin = mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_expire_logs_seconds = 604800
EOF
  if [[ ! -d $datadir/mysql ]]; then
    log "mariadb: initialising $datadir"
    local user=()
    is_root && user=(--user=root)
    mariadb-install-db --defaults-file="$CONF/mariadb.cnf" "${user[@]}" --skip-test-db \
      --auth-root-authentication-method=socket >>"$LOGS/mariadb.log" 2>&1 ||
      fail_server mariadb "mariadb-install-db failed"
  fi
}
start_mariadb() {
  local user=()
  is_root && user=(--user=root)
  spawn mariadb -- "$(mariadb_bin)" --defaults-file="$CONF/mariadb.cnf" "${user[@]}"
}
# A ping as root on the socket (TCP users exist only once init_mariadb ran), and the TCP port open.
ready_mariadb() {
  mariadb-admin --no-defaults --socket="$RUN/mariadb.sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1 &&
    port_open "$H" "$MARIADB_PORT"
}
# The database and the users (idempotent): points (the service) and debezium (the connector), for '%' and for
# 'localhost', since an anonymous ''@'localhost' would shadow '%'.
init_mariadb() {
  local sql="
    DROP USER IF EXISTS ''@'localhost';
    DROP USER IF EXISTS ''@'$(hostname)';
    CREATE DATABASE IF NOT EXISTS points CHARACTER SET utf8mb4;
    CREATE USER IF NOT EXISTS 'points'@'%' IDENTIFIED BY 'points';
    CREATE USER IF NOT EXISTS 'points'@'localhost' IDENTIFIED BY 'points';
    GRANT ALL PRIVILEGES ON points.* TO 'points'@'%';
    GRANT ALL PRIVILEGES ON points.* TO 'points'@'localhost';
    GRANT ALL PRIVILEGES ON \`points\\_%\`.* TO 'points'@'%';
    GRANT ALL PRIVILEGES ON \`points\\_%\`.* TO 'points'@'localhost';
    CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY 'debezium';
    CREATE USER IF NOT EXISTS 'debezium'@'localhost' IDENTIFIED BY 'debezium';
    GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'debezium'@'%';
    GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'debezium'@'localhost';
    FLUSH PRIVILEGES;"
  mariadb --no-defaults --socket="$RUN/mariadb.sock" -uroot -e "$sql" >>"$LOGS/mariadb.log" 2>&1 ||
    fail_server mariadb "could not create the database and its users"
}

prepare_redis() {
  mkdir -p "$DATA/redis"
  cat >"$CONF/redis.conf" <<EOF
# Generated by scripts/stack.sh: our own Redis, not the system service.
bind $H
port $REDIS_PORT
protected-mode yes
daemonize no
dir $DATA/redis
appendonly yes
appendfsync everysec
logfile ""
EOF
}
start_redis() { spawn redis -- redis-server "$CONF/redis.conf"; }
ready_redis() { [[ $(redis-cli -h "$H" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

# Java tools on Kafka's jars (StorageTool, TopicCommand): small heap, quick start.
kafka_tool() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$KAFKA_LIB/*" "$@"
}
jvm_opts() {
  printf '%s\n' "-Xms$1" "-Xmx$1" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.showDateTime=true "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS" \
    -Dorg.slf4j.simpleLogger.showThreadName=false -Dorg.slf4j.simpleLogger.showShortLogName=true
}

prepare_kafka() {
  mkdir -p "$DATA/kafka"
  cat >"$CONF/kafka.properties" <<EOF
# Generated by scripts/stack.sh: one KRaft node, broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$H:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$H:$KAFKA_PORT,CONTROLLER://$H:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$H:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA/kafka
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
EOF
  if [[ ! -f $DATA/kafka/meta.properties ]]; then
    log "kafka: formatting $DATA/kafka"
    local id
    id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.log") || fail_server kafka "StorageTool random-uuid failed"
    kafka_tool kafka.tools.StorageTool format -t "$id" -c "$CONF/kafka.properties" >>"$LOGS/kafka.log" 2>&1 ||
      fail_server kafka "StorageTool format failed"
  fi
}
start_kafka() {
  local opts
  mapfile -t opts < <(jvm_opts "$KAFKA_HEAP")
  spawn kafka -- java "${opts[@]}" -cp "$KAFKA_LIB/*" kafka.Kafka "$CONF/kafka.properties"
}
# A metadata call (the topic list), once the port is open.
ready_kafka() {
  port_open "$H" "$KAFKA_PORT" &&
    timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=error \
      -cp "$KAFKA_LIB/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$H:$KAFKA_PORT" --list >/dev/null 2>&1
}

# The events topic, keyed by user id so that one account's events keep their order, and its dead-letter topic:
# one describe call, then a create for a topic that is missing, and more partitions for one that has fewer than
# asked for (a topic never gets fewer).
topic_tool() { kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$H:$KAFKA_PORT" "$@"; }
ensure_topics() {
  log "kafka: topics $POINTS_EVENTS_TOPIC and $POINTS_EVENTS_DLQ_TOPIC ($POINTS_EVENTS_PARTITIONS partitions)"
  local described pattern="${POINTS_EVENTS_TOPIC//./\\.}|${POINTS_EVENTS_DLQ_TOPIC//./\\.}"
  described=$(topic_tool --describe --if-exists --topic "$pattern" 2>&1) || {
    printf '%s\n' "$described" >&2
    fail_server kafka "could not describe the topics"
  }
  local spec topic retention have pids=() p
  for spec in "$POINTS_EVENTS_TOPIC:$POINTS_EVENTS_RETENTION_MS" "$POINTS_EVENTS_DLQ_TOPIC:$POINTS_EVENTS_DLQ_RETENTION_MS"; do
    topic=${spec%%:*} retention=${spec##*:}
    have=$(printf '%s\n' "$described" | awk -v t="$topic" '$1 == "Topic:" && $2 == t {
      for (i = 3; i <= NF; i++) if ($i == "PartitionCount:") print $(i + 1) }' | head -n1)
    if [[ -z $have ]]; then
      topic_tool --create --if-not-exists --topic "$topic" --partitions "$POINTS_EVENTS_PARTITIONS" \
        --replication-factor 1 --config "retention.ms=$retention" --config cleanup.policy=delete \
        --config min.insync.replicas=1 >>"$LOGS/kafka-topics.log" 2>&1 &
      pids+=($!)
    elif ((have < POINTS_EVENTS_PARTITIONS)); then
      log "kafka: $topic has $have partitions, raising to $POINTS_EVENTS_PARTITIONS"
      topic_tool --alter --topic "$topic" --partitions "$POINTS_EVENTS_PARTITIONS" >>"$LOGS/kafka-topics.log" 2>&1 &
      pids+=($!)
    fi
  done
  for p in "${pids[@]}"; do
    wait "$p" || {
      tail -n 20 "$LOGS/kafka-topics.log" >&2
      fail_server kafka "could not create the topics (log: $LOGS/kafka-topics.log)"
    }
  done
}

# The worker's settings are docker/connect/connect-distributed.properties; this appends what differs here.
prepare_connect() {
  {
    printf '# Generated by scripts/stack.sh from %s, with the overrides at the end.\n' "${CONNECT_PROPERTIES#"$ROOT"/}"
    cat "$CONNECT_PROPERTIES"
    cat <<EOF

# scripts/stack.sh: this machine's addresses and plugin folder.
bootstrap.servers=$H:$KAFKA_PORT
listeners=http://$H:$CONNECT_PORT
rest.advertised.host.name=$H
rest.advertised.port=$CONNECT_PORT
plugin.path=$PLUGIN_DIR
EOF
  } >"$CONF/connect.properties"
}
start_connect() {
  local opts
  mapfile -t opts < <(jvm_opts "$CONNECT_HEAP")
  spawn connect POINTS_CDC_DATABASE_HOST="$H" POINTS_CDC_DATABASE_PORT="$MARIADB_PORT" \
    POINTS_CDC_KAFKA_BOOTSTRAP="$H:$KAFKA_PORT" -- \
    java "${opts[@]}" -cp "$KAFKA_LIB/*" org.apache.kafka.connect.cli.ConnectDistributed "$CONF/connect.properties"
}
ready_connect() { curl -fsS -m 5 "$CONNECT_URL/connectors" >/dev/null 2>&1; }

# OpenSearch refuses to run as root: it runs as the system user opensearch, which must reach its files. When it
# cannot reach .stack (a parent folder closed to others), its home, data and logs go to a folder of its own under
# /var/lib and .stack/data/opensearch and .stack/logs/opensearch link there.
opensearch_paths() {
  OS_BASE=$OPT
  if is_root && id -u "$OS_USER" >/dev/null 2>&1 && ! setpriv --reuid="$OS_USER" --regid="$OS_USER" --clear-groups test -x "$STACK_DIR" 2>/dev/null; then
    OS_BASE=/var/lib/points-stack/$(printf '%s' "$STACK_DIR" | sha1sum | cut -c1-12)
  fi
  OS_HOME=$OS_BASE/opensearch-$OPENSEARCH_VERSION
}
prepare_opensearch() {
  opensearch_paths
  # OS_DATA and OS_LOGS: the real folders (OpenSearch's user must not go through .stack when it cannot reach it).
  OS_DATA=$DATA/opensearch OS_LOGS=$LOGS/opensearch
  if [[ $OS_BASE != "$OPT" ]]; then
    OS_DATA=$OS_BASE/data OS_LOGS=$OS_BASE/logs
    mkdir -p "$OS_DATA" "$OS_LOGS"
    [[ -L $DATA/opensearch ]] || { rm -rf "$DATA/opensearch" && ln -s "$OS_DATA" "$DATA/opensearch"; }
    [[ -L $LOGS/opensearch ]] || { rm -rf "$LOGS/opensearch" && ln -s "$OS_LOGS" "$LOGS/opensearch"; }
    [[ -f $OS_HOME/.complete ]] || unpack
  fi
  local conf=$OS_DATA/config
  mkdir -p "$conf/jvm.options.d" "$OS_DATA/data" "$OS_DATA/tmp" "$OS_LOGS"
  local f
  for f in log4j2.properties fips_java.security; do
    [[ -f $conf/$f ]] || cp "$OS_HOME/config/$f" "$conf/$f"
  done
  # jvm.options with absolute paths for what it names relative to the working folder.
  sed -e "s#^-XX:HeapDumpPath=data\$#-XX:HeapDumpPath=$OS_DATA/data#" \
    -e "s#^-XX:ErrorFile=logs/#-XX:ErrorFile=$OS_LOGS/#" \
    -e "s#file=logs/gc.log#file=$OS_LOGS/gc.log#" "$OS_HOME/config/jvm.options" >"$conf/jvm.options"
  cat >"$conf/opensearch.yml" <<EOF
# Generated by scripts/stack.sh.
cluster.name: points
node.name: points-1
path.data: $OS_DATA/data
path.logs: $OS_LOGS
network.host: $H
http.port: $OPENSEARCH_PORT
transport.port: $OPENSEARCH_TRANSPORT_PORT
discovery.type: single-node
cluster.routing.allocation.disk.threshold_enabled: false
EOF
  if is_root; then chown -R "$OS_USER:$OS_USER" "$OS_DATA/" "$OS_LOGS/"; fi
  OS_JAVA_HOME=$(find_jdk21) || die "opensearch: OpenSearch $OPENSEARCH_VERSION needs Java 21 or newer and none was found (set OPENSEARCH_JAVA_HOME)"
}
start_opensearch() {
  local envs=(-u JAVA_HOME -u JAVA_TOOL_OPTIONS -u JAVA_OPTS OPENSEARCH_JAVA_HOME="$OS_JAVA_HOME"
    OPENSEARCH_PATH_CONF="$OS_DATA/config" OPENSEARCH_TMPDIR="$OS_DATA/tmp"
    OPENSEARCH_JAVA_OPTS="-Xms$OPENSEARCH_HEAP -Xmx$OPENSEARCH_HEAP" HOME="$OS_DATA")
  local cmd=("$OS_HOME/bin/opensearch")
  if is_root; then cmd=(setpriv --reuid="$OS_USER" --regid="$OS_USER" --init-groups "${cmd[@]}"); fi
  SPAWN_CWD=$OS_HOME spawn opensearch "${envs[@]}" -- "${cmd[@]}"
}
ready_opensearch() {
  curl -fsS -m 5 "$OPENSEARCH_URL/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null | grep -qE '"status":"(green|yellow)"'
}

# ---------------------------------------------------------------------------------------------------------------
# Starting, waiting, stopping

# Starts a server unless it runs already; refuses a port that another process holds.
launch() {
  local s=$1
  if running "$s"; then
    log "$s: already running (pid $(pid_of "$s"))"
    return 0
  fi
  if port_open "$H" "$(port_of "$s")"; then
    die "$s: port $H:$(port_of "$s") is held by another process: $(ss -ltnpH "sport = :$(port_of "$s")" 2>/dev/null | head -n1)"
  fi
  "prepare_$s"
  log "$s: starting"
  "start_$s"
  STARTED+=("$s")
}
STARTED=()

# Waits until a server answers; fails with its log tail when it dies or the time is up.
await() {
  local s=$1 limit=${READY_TIMEOUT[$1]} start other
  start=$(date +%s)
  until "ready_$s"; do
    running "$s" || fail_server "$s" "exited before it answered on $H:$(port_of "$s")"
    # One that this run started and that died meanwhile fails the run now, not when its turn comes.
    for other in "${STARTED[@]}"; do
      running "$other" || fail_server "$other" "exited before it answered on $H:$(port_of "$other")"
    done
    (($(date +%s) - start < limit)) || fail_server "$s" "did not answer on $H:$(port_of "$s") within ${limit}s"
    sleep 0.5
  done
  log "$s: answering on $H:$(port_of "$s") (pid $(pid_of "$s"))"
}

halt() {
  local s=$1 sig=${2:-TERM} pid
  if ! pid=$(pid_of "$s"); then
    if [[ -s $RUN/$s.pid ]] && kill -0 "$(<"$RUN/$s.pid")" 2>/dev/null; then
      log "$s: pid $(<"$RUN/$s.pid") is alive but not $s any more: left alone"
    fi
    rm -f "$RUN/$s.pid"
    return 0
  fi
  log "$s: stopping (SIG$sig to pid $pid)"
  kill -s "$sig" "$pid" 2>/dev/null || true
  local limit=${STOP_TIMEOUT[$s]} start
  start=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    if (($(date +%s) - start >= limit)); then
      log "$s: still running after ${limit}s, SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$RUN/$s.pid"
}

# The migrations of the write model (Alembic, through the service's own command).
migrate() {
  log "mariadb: migrations (python -m app migrate)"
  (
    cd "$ROOT"
    if ! POINTS_PROFILE=stack POINTS_DATABASE_URL="mysql+aiomysql://points:points@$H:$MARIADB_PORT/points" \
      python3 -m uv run --frozen python -m app migrate >>"$LOGS/migrate.log" 2>&1; then
      tail -n 50 "$LOGS/migrate.log" >&2
      die "mariadb: the migrations failed (log: $LOGS/migrate.log)"
    fi
  )
}

# ---------------------------------------------------------------------------------------------------------------
# The connector

connector_status() { curl -fsS -m 5 "$CONNECT_URL/connectors/$CONNECTOR_NAME/status" 2>/dev/null; }
# "RUNNING RUNNING" (the connector, then each task), from the status JSON on stdin.
status_states() {
  python3 -c 'import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
print(s.get("connector", {}).get("state", "?"), *[t.get("state", "?") for t in s.get("tasks", [])])'
}

register_connector() {
  local want have code
  want=$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$CONNECTOR_JSON")
  have=$(curl -fsS -m 5 "$CONNECT_URL/connectors/$CONNECTOR_NAME/config" 2>/dev/null |
    python3 -c 'import json, sys; c = json.load(sys.stdin); c.pop("name", None); print(json.dumps(c, sort_keys=True))' 2>/dev/null) || have=""
  if [[ $want == "$have" ]]; then
    return 0
  fi
  log "connect: registering the connector $CONNECTOR_NAME"
  local start
  start=$(date +%s)
  while :; do
    # Right after start the worker may still be joining its group (409, or 500 on a timeout): retry.
    code=$(curl -sS -m 30 -o "$RUN/connector-put.json" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
      --data-binary "@$CONNECTOR_JSON" "$CONNECT_URL/connectors/$CONNECTOR_NAME/config" 2>/dev/null) || code=000
    [[ $code == 200 || $code == 201 ]] && return 0
    if [[ $code == 400 ]]; then
      cat "$RUN/connector-put.json" >&2
      fail_server connect "Connect refused the connector config $CONNECTOR_JSON"
    fi
    (($(date +%s) - start < CONNECTOR_TIMEOUT)) || {
      cat "$RUN/connector-put.json" >&2 2>/dev/null || true
      fail_server connect "could not register the connector (last HTTP status $code)"
    }
    sleep 1
  done
}

# Waits until the connector and every task are RUNNING; a FAILED one is restarted (at most 3 times).
await_connector() {
  local start states restarts=0 body
  start=$(date +%s)
  while :; do
    body=$(connector_status) || body=""
    states=$(printf '%s' "$body" | status_states)
    if [[ $states =~ ^RUNNING(\ RUNNING)+$ ]]; then
      log "connect: connector $CONNECTOR_NAME and its task RUNNING"
      return 0
    fi
    if [[ $states == *FAILED* ]]; then
      if ((restarts >= 3)); then
        printf '%s\n' "$body" >&2
        fail_server connect "the connector $CONNECTOR_NAME stays FAILED after $restarts restarts"
      fi
      restarts=$((restarts + 1))
      log "connect: $CONNECTOR_NAME is FAILED ($states): restarting it ($restarts)"
      curl -fsS -m 30 -X POST "$CONNECT_URL/connectors/$CONNECTOR_NAME/restart?includeTasks=true&onlyFailed=true" >/dev/null 2>&1 || true
    fi
    if (($(date +%s) - start >= CONNECTOR_TIMEOUT)); then
      printf '%s\n' "$body" >&2
      fail_server connect "the connector $CONNECTOR_NAME is not RUNNING after ${CONNECTOR_TIMEOUT}s (states: ${states:-none})"
    fi
    sleep 0.5
  done
}

ensure_connector() {
  register_connector
  await_connector
}

# ---------------------------------------------------------------------------------------------------------------
# Commands

write_env() {
  cat >"$STACK_DIR/env" <<EOF
POINTS_DATABASE_URL=mysql+aiomysql://points:points@$H:$MARIADB_PORT/points
POINTS_REDIS_URL=redis://$H:$REDIS_PORT/0
POINTS_KAFKA_BOOTSTRAP=$H:$KAFKA_PORT
POINTS_KAFKA_TOPIC=$POINTS_EVENTS_TOPIC
POINTS_KAFKA_DLQ_TOPIC=$POINTS_EVENTS_DLQ_TOPIC
POINTS_CONNECT_URL=$CONNECT_URL
POINTS_OPENSEARCH_URL=$OPENSEARCH_URL
EOF
}

with_lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/lock"
  flock 9
}

cmd_up() {
  mkdir -p "$LOGS"
  # The service's Python environment (for the migrations), while the rest installs.
  (cd "$ROOT" && scripts/bootstrap.sh >"$LOGS/bootstrap.log" 2>&1) &
  local boot=$!
  write_env
  install_begin
  # The slowest to answer start first, as soon as their files are there (apt may still be installing).
  launch opensearch
  launch kafka
  install_end
  log "installed (MariaDB and Redis from Debian, Kafka $KAFKA_VERSION, Debezium $DEBEZIUM_VERSION, OpenSearch $OPENSEARCH_VERSION)"
  launch mariadb
  launch redis
  await mariadb
  init_mariadb
  wait "$boot" || {
    tail -n 50 "$LOGS/bootstrap.log" >&2
    die "scripts/bootstrap.sh failed"
  }
  migrate &
  local migrating=$!
  await kafka
  launch connect
  ensure_topics
  await redis
  wait "$migrating" || exit 1
  await connect
  ensure_connector
  await opensearch
  log "up: every server answers; variables in ${STACK_DIR#"$ROOT"/}/env"
}

cmd_down() {
  local i
  for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do halt "${SERVERS[i]}"; done
  log "down"
}

cmd_status() {
  local s pid ok=0 answer extra states
  for s in "${SERVERS[@]}"; do
    extra=""
    if pid=$(pid_of "$s"); then
      if "ready_$s"; then answer=answering; else
        answer="NOT answering"
        ok=1
      fi
      if [[ $s == connect ]] && [[ $answer == answering ]]; then
        states=$(connector_status | status_states) || states=""
        extra=" connector $CONNECTOR_NAME: ${states:-not registered}"
        [[ $states =~ ^RUNNING(\ RUNNING)+$ ]] || ok=1
      fi
      printf '%-11s running  pid %-8s %s:%s %s%s\n' "$s" "$pid" "$H" "$(port_of "$s")" "$answer" "$extra"
    else
      if port_open "$H" "$(port_of "$s")"; then answer=" (the port is held by a process that this stack did not start)"; else answer=""; fi
      printf '%-11s stopped  %s:%s%s\n' "$s" "$H" "$(port_of "$s")" "$answer"
      ok=1
    fi
  done
  return $ok
}

cmd_logs() {
  local s list=("${SERVERS[@]}")
  if [[ -n ${1:-} ]]; then
    is_server "$1" || die "unknown server '$1' (one of: ${SERVERS[*]})"
    list=("$1")
  fi
  for s in "${list[@]}"; do
    printf '==> %s <==\n' "$LOGS/$s.log"
    tail -n "${LINES:-50}" "$LOGS/$s.log" 2>/dev/null || echo "(no log yet)"
  done
}

cmd_start() {
  local s=$1
  [[ -f $KAFKA_LIB/.complete && -f $PLUGIN_DIR/.complete ]] || die "nothing installed yet: run scripts/stack.sh up first"
  launch "$s"
  await "$s"
  case $s in
    mariadb) init_mariadb ;;
    connect) ensure_connector ;;
  esac
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up)
      with_lock
      cmd_up
      ;;
    down)
      with_lock
      cmd_down
      ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    start | stop | kill)
      [[ -n ${1:-} ]] && is_server "$1" || die "usage: $0 $cmd SERVER (one of: ${SERVERS[*]})"
      with_lock
      case $cmd in
        start) cmd_start "$1" ;;
        stop) halt "$1" TERM ;;
        kill) halt "$1" KILL ;;
      esac
      ;;
    connector)
      with_lock
      ensure_connector
      ;;
    *)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"
