"""Notifications' event handlers and delivery."""
