"""Notifications: PMO alerts delivered once each, to the channels that asked for them."""
