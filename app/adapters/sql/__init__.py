"""The write model on SQL: SQLAlchemy Core tables; SQLite (embedded profile) now, MySQL/MariaDB with the same layout."""
