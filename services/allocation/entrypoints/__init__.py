"""How allocation is reached: its consumer and its HTTP API."""
