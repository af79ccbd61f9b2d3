"""The two ways the core runs: distributed (PostgreSQL, S3, Redis) and embedded (SQLite, a folder, local processes)."""
