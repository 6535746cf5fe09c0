"""The registry's tables."""
