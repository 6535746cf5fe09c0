"""How monitoring is reached: its consumer and its HTTP API."""
