"""What the dashboard talks to: the services' HTTP APIs and the outbound Kafka topics."""
