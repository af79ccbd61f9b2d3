"""The fleet's shared state: dispatch from PostgreSQL, leases and Redis state, worker readiness, queue standing."""
