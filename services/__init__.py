"""The four PMO services; each owns its schema and learns about the others only from events."""
