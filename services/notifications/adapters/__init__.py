"""Notifications' tables and channels."""
