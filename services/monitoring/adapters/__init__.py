"""Monitoring's tables."""
