"""Allocation's tables."""
