"""Monitoring's event handlers."""
