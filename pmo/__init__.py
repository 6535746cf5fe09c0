"""The `pmo` command: runs the PMO backend, embedded or on an operator's Kafka and PostgreSQL."""
