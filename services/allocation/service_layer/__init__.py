"""Allocation's event handlers."""
