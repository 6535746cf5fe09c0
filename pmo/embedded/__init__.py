"""Embedded Kafka-compatible broker (Tansu) and PostgreSQL server that `pmo up` runs as children.

One module per part: `ports` (free loopback ports), `processes` (child-process plumbing shared by
both servers), `tansu` (the broker) and `postgres` (the database server).
"""

from pmo.embedded.ports import free_port, port_is_free
from pmo.embedded.postgres import EmbeddedPostgres
from pmo.embedded.processes import EmbeddedProcessError, set_parent_death_signal
from pmo.embedded.tansu import EmbeddedKafka

__all__ = [
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedProcessError",
    "free_port",
    "port_is_free",
    "set_parent_death_signal",
]
