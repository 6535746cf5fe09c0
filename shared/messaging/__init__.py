"""Reliable messaging every service uses: one outbox, one inbox, one dead-letter path, one consumer."""
