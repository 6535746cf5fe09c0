"""Reliable messaging for every service: one outbox, inbox, dead-letter path and consumer."""
