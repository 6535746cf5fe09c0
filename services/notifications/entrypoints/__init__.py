"""How notifications is reached: its consumer, its delivery worker and its HTTP API."""
