"""The registry's event handlers."""
