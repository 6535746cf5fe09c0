"""How the registry is reached: its consumer and its HTTP API."""
