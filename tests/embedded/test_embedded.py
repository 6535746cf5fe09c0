"""The embedded Tansu broker and PostgreSQL start, serve real clients, persist and leave nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pmo.embedded import EmbeddedKafka, EmbeddedPostgres, EmbeddedProcessError, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie whose parent died counts as exited)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def postgres_pids_serving(data_dir: Path) -> list[int]:
    """Live processes working in `data_dir`: the postmaster and every backend chdir there."""
    target = str(data_dir.resolve())
    return [
        proc.pid
        for proc in psutil.process_iter(["cwd"])
        if proc.info["cwd"] == target and not gone(proc.pid)
    ]


@pytest.fixture(scope="module")
def initialised_cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory that has been through initdb, for tests not about first start."""
    base = tmp_path_factory.mktemp("pg-template")
    data_dir = base / "pgdata"
    with EmbeddedPostgres(data_dir, log_path=base / "postgres.log"):
        pass
    return data_dir


@pytest.fixture
def cluster_copy(initialised_cluster: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "pgdata"
    shutil.copytree(initialised_cluster, copy)
    return copy


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[EmbeddedKafka]:
    broker = EmbeddedKafka(log_path=tmp_path / "tansu.log")
    try:
        yield broker
    finally:
        broker.stop()


async def test_kafka_produce_consume_commit_then_stop(kafka: EmbeddedKafka) -> None:
    bootstrap = kafka.start()
    assert bootstrap == kafka.bootstrap_servers == f"127.0.0.1:{kafka.port}"
    pid = kafka.pid
    assert pid is not None

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic("embedded.check", num_partitions=1, replication_factor=1)]
        )
        assert "embedded.check" in await admin.list_topics()
    finally:
        await admin.close()

    # Tansu's memory engine rejects InitProducerId, so no idempotent producer.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait("embedded.check", f"m{i}".encode(), key=b"k")
    finally:
        await producer.stop()

    tp = TopicPartition("embedded.check", 0)
    consumer = AIOKafkaConsumer(
        "embedded.check",
        bootstrap_servers=bootstrap,
        group_id="embedded-check-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Tansu holds the first JoinGroup for half the session timeout (5 s by default).
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(received) < 3 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += [record.value for records in batches.values() for record in records]
        assert received == [b"m0", b"m1", b"m2"]
        await consumer.commit()
        assert await consumer.committed(tp) == 3
    finally:
        await consumer.stop()

    # The commit is stored by the broker, not just remembered by that consumer. Partitions are
    # named because Tansu breaks the connection on the "all partitions" form of OffsetFetch.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets("embedded-check-group", partitions=[tp])
        assert offsets[tp].offset == 3
    finally:
        await admin.close()

    kafka.stop()
    assert gone(pid)
    assert kafka.pid is None
    kafka.stop()  # idempotent


def test_children_die_with_their_killed_parent(cluster_copy: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from pmo.embedded import EmbeddedKafka, EmbeddedPostgres
        broker = EmbeddedKafka(log_path=Path(sys.argv[1]) / "tansu.log")
        broker.start()
        server = EmbeddedPostgres(Path(sys.argv[2]), log_path=Path(sys.argv[1]) / "pg.log")
        server.start()
        print(broker.pid, server.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path), str(cluster_copy)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert parent.stdout is not None
        broker_pid, postmaster_pid = map(int, parent.stdout.readline().split())
        assert not gone(broker_pid)
        assert not gone(postmaster_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone(broker_pid), "the broker outlived its killed parent"
        # A new `pmo up` right after the crash starts on the same data directory, whether the
        # old postmaster is still shutting down or already gone.
        with EmbeddedPostgres(cluster_copy, log_path=tmp_path / "pg.log") as server:
            assert server.pid != postmaster_pid
        assert wait_gone(postmaster_pid), "the postmaster outlived its killed parent"
        assert postgres_pids_serving(cluster_copy) == []
    finally:
        parent.kill()
        parent.wait()


def test_kafka_reports_a_taken_port_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = EmbeddedKafka(port=squatter.getsockname()[1], log_path=tmp_path / "tansu.log")
        with pytest.raises(EmbeddedProcessError, match="AddrInUse"):
            broker.start(timeout=15)
        assert broker.pid is None


async def test_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    server = EmbeddedPostgres(data_dir, log_path=tmp_path / "postgres.log")
    try:
        url = server.start()
        assert url == server.url
        assert url == f"postgresql://postgres@127.0.0.1:{server.port}/pmo"
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
            await conn.execute("INSERT INTO kept VALUES (1, 'survives a restart')")
        finally:
            await conn.close()
    finally:
        server.stop()
    assert postgres_pids_serving(data_dir) == []

    # A new object on the same directory, as a second `pmo up` would create.
    again = EmbeddedPostgres(data_dir, port=free_port(), log_path=tmp_path / "postgres.log")
    try:
        conn = await asyncpg.connect(again.start())
        try:
            assert await conn.fetchval("SELECT note FROM kept WHERE id = 1") == "survives a restart"
        finally:
            await conn.close()
    finally:
        again.stop()
        again.stop()  # idempotent
    assert postgres_pids_serving(data_dir) == []


def test_postgres_replaces_an_orphan_and_refuses_a_live_owner(
    cluster_copy: Path, tmp_path: Path
) -> None:
    data_dir = cluster_copy
    first = EmbeddedPostgres(data_dir, log_path=tmp_path / "postgres.log")
    second = EmbeddedPostgres(data_dir, log_path=tmp_path / "postgres.log")
    try:
        first.start()
        # Its launcher (this process) is alive, so the server is not an orphan to clear away.
        with pytest.raises(EmbeddedProcessError, match="already running"):
            second.start()
        # Simulate a crashed launcher: forget the child so the postmaster is left running.
        orphan = first.pid
        assert orphan is not None
        first._proc = None
        (data_dir / "pmo_launcher.pid").write_text("999999999\n")
        second.start()
        assert wait_gone(orphan)
        assert second.pid is not None
    finally:
        second.stop()
        first.stop()
    assert postgres_pids_serving(data_dir) == []


def test_postgres_reports_a_taken_port_with_its_log(cluster_copy: Path, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = EmbeddedPostgres(cluster_copy, port=port, log_path=tmp_path / "pg.log")
        with pytest.raises(EmbeddedProcessError, match="could not bind"):
            server.start()
    assert postgres_pids_serving(cluster_copy) == []
