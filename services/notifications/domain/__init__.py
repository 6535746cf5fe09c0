"""Alerts and how they are signed and retried, free of I/O."""
