"""Child-process plumbing shared by the embedded servers: spawn, readiness, stop, inspection.

Process inspection (working directory, executable, parent, state) goes through psutil. What stays
hand-written are the two Linux calls neither the standard library nor psutil offers, made through
libc in the forked child: prctl(PR_SET_PDEATHSIG) and unshare(CLONE_NEWUSER) with its id maps.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn, Self, TypeVar

import psutil
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed

_T = TypeVar("_T")

_LOG_TAIL_LINES = 40
POLL_INTERVAL = 0.05
"""Seconds between two looks at a starting or stopping child."""

# Linux ABI constants; no stdlib binding exists for either call.
_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000


class EmbeddedProcessError(RuntimeError):
    """An embedded child process failed to start, died early, or did not become ready."""


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


def enter_user_namespace(inner_uid: int, inner_gid: int) -> None:
    """In a freshly forked root child: become `inner_uid` inside a new user namespace.

    PostgreSQL refuses to run as uid 0. Mapping our real root to an ordinary uid inside a private
    user namespace satisfies that check while every file the server writes is still owned by the
    real root outside, so no system user, chown or directory permission change is needed.

    Raises OSError when the kernel refuses the namespace (seccomp, a sysctl, not Linux).
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


# --------------------------------------------------------------------------------------------
# Inspection of processes we did not start (a crashed run's leftovers), through psutil


def cwd_of(pid: int) -> str | None:
    """The working directory of `pid`, or None when it is gone or cannot be inspected."""
    try:
        return psutil.Process(pid).cwd()
    except psutil.Error:
        return None


def processes_in(directory: Path, executable: str) -> list[int]:
    """PIDs of live processes running `executable` (a base name) with `directory` as their cwd."""
    target = str(directory)
    pids = []
    for proc in psutil.process_iter(["cwd", "exe"]):
        # Unreadable fields (another user's process, one that just exited) come back as None.
        cwd, exe = proc.info["cwd"], proc.info["exe"]
        # A shell that happens to sit in the directory must not be mistaken for the server.
        if cwd == target and exe and os.path.basename(exe).removesuffix(" (deleted)") == executable:
            pids.append(proc.pid)
    return pids


def parent_of(pid: int) -> int | None:
    """The parent PID of `pid`, or None when it is gone."""
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie has exited and only waits to be reaped."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def signal_pids(pids: Sequence[int], sig: signal.Signals) -> None:
    """Send `sig` to each of `pids`, skipping those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    """Wait up to `timeout` seconds for all `pids` to exit; whether they did.

    Not psutil.wait_procs: for processes that are not our children it counts a zombie as alive,
    and an orphaned backend may stay a zombie until a subreaper gets round to it.
    """
    gone: bool = Retrying(
        retry=retry_if_result(lambda gone: not gone),
        wait=wait_fixed(POLL_INTERVAL),
        stop=stop_after_delay(timeout),
        retry_error_callback=lambda state: False,
    )(lambda: not any(alive(pid) for pid in pids))
    return gone


# --------------------------------------------------------------------------------------------
# Children we start


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


def run_in_thread(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
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


def terminate(proc: subprocess.Popen[bytes], signals: Sequence[tuple[int, float]]) -> None:
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


class ChildProcess:
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
        """Start the child; return its address once ready. Raises EmbeddedProcessError."""
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child and reap it; idempotent."""
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
            terminate(proc, [(self._stop_signal, 2.0)])
            self._proc = None
            raise

    def _poll_until_ready(
        self, proc: subprocess.Popen[bytes], deadline: float, probe: Callable[[], bool]
    ) -> None:
        assert self._log_path is not None
        log_path = self._log_path

        def ready_now() -> bool:
            code = proc.poll()
            if code is not None:
                raise self._failure(f"{self._name} exited during startup with code {code}")
            if self._fatal_marker and self._fatal_marker in _tail(log_path, self._log_offset):
                raise self._failure(f"{self._name} failed during startup")
            try:
                return probe()
            except EmbeddedProcessError as exc:
                raise self._failure(str(exc)) from exc

        def gave_up(state: RetryCallState) -> NoReturn:
            raise self._failure(f"{self._name} did not become ready in time")

        # Errors raised by ready_now() end the wait at once; only "not ready yet" is retried.
        Retrying(
            retry=retry_if_result(lambda ready: not ready),
            wait=wait_fixed(POLL_INTERVAL),
            stop=lambda state: time.monotonic() >= deadline,
            retry_error_callback=gave_up,
        )(ready_now)
