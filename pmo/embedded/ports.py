"""Loopback ports for the embedded servers: pick a free one, tell whether one is taken."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
"""The only address the embedded servers listen on."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was unused a moment ago.

    Another process may still grab it before the caller binds; the embedded servers retry with a
    fresh port when they picked it themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def tcp_open(port: int) -> bool:
    """Whether something accepts a TCP connection on 127.0.0.1:`port` within half a second."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False
