"""One child process of the launcher, started so that it cannot outlive it.

Every server and service of the embedded stack is started here:

- in its own session and process group, so that a stop signals the child and whatever it
  started, and a Ctrl-C in the launcher's terminal reaches the launcher only (which then stops
  the children in order);
- with Linux `PR_SET_PDEATHSIG` = SIGKILL, so that it dies when the launcher is SIGKILLed.
  The kernel sends it when the *thread* that forked the child ends, so children are spawned
  from the event loop's thread (as `asyncio.create_subprocess_exec` would), never from a
  worker thread;
- with its stdout and stderr copied line by line, by a reader thread each, into a log file
  and a short in-memory tail for error messages, after an optional `scrub` that removes
  secrets before anything is stored.

Reader and waiter threads, not asyncio transports, own the pipes and the exit status: the
child then keeps running and logging whichever event loop (or none) is current, so a
session-scoped test server started in one loop can be used and stopped from another.
Exit and readiness are `concurrent.futures.Future`s that any loop can await.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .errors import StackError

LineCallback = Callable[[str, str], None]
"""Called from a reader thread with (stream name: "stdout" or "stderr", scrubbed line)."""

_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 200


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()


def _child_setup(parent_pid: int) -> None:
    """Runs in the forked child before exec: die with the launcher, even if it died already."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the launcher died between fork and prctl
        os.kill(os.getpid(), signal.SIGKILL)


def ready_future() -> concurrent.futures.Future[Any]:
    """A future that a thread completes and a loop awaits, and that no waiter can cancel.

    `asyncio.wrap_future` cancels its source when the awaiting side is cancelled; a future
    marked running refuses that, so a timed-out wait never spoils it for the next waiter.
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()
    return future


async def first_done(
    futures: Mapping[str, concurrent.futures.Future[Any]], timeout: float | None
) -> str | None:
    """The key of the first future to complete, or None when `timeout` passes first."""
    for key, future in futures.items():
        if future.done():
            return key
    wrapped = {asyncio.wrap_future(future): key for key, future in futures.items()}
    try:
        done, _ = await asyncio.wait(wrapped, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in wrapped:
            if not waiter.done():
                waiter.cancel()
    if not done:
        return None
    for key, future in futures.items():  # in the caller's order of preference
        if future.done():
            return key
    return None  # pragma: no cover - asyncio.wait returned done futures


class ChildProcess:
    """A spawned child: pid, exit status, log tail, and group-wide stop and kill."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        *,
        log: IO[str] | None,
        on_line: LineCallback | None,
        scrub: Callable[[str], str] | None,
        streams: Sequence[tuple[str, IO[bytes]]],
    ) -> None:
        self.name = name
        self._process = process
        self._log = log
        self._on_line = on_line
        self._scrub = scrub
        self._lock = threading.Lock()
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._open_streams = len(streams)
        self.exited: concurrent.futures.Future[int] = ready_future()
        self.drained: concurrent.futures.Future[None] = ready_future()
        for stream_name, stream in streams:
            threading.Thread(
                target=self._pump,
                args=(stream_name, stream),
                name=f"{name}-{stream_name}",
                daemon=True,
            ).start()
        threading.Thread(target=self._reap, name=f"{name}-wait", daemon=True).start()

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path | None = None,
        on_line: LineCallback | None = None,
        scrub: Callable[[str], str] | None = None,
        merge_stderr: bool = False,
    ) -> ChildProcess:
        log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = log_path.open("a", encoding="utf-8")
        parent_pid = os.getpid()
        try:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                start_new_session=True,
                # Only prctl and getppid run between fork and exec (see the module doc).
                preexec_fn=lambda: _child_setup(parent_pid),  # noqa: PLW1509
                close_fds=True,
            )
        except OSError as exc:
            if log is not None:
                log.close()
            raise StackError(f"{name} could not be started: {exc}", component=name) from exc
        assert process.stdout is not None
        streams: list[tuple[str, IO[bytes]]] = [("stdout", process.stdout)]
        if process.stderr is not None:
            streams.append(("stderr", process.stderr))
        return cls(name, process, log=log, on_line=on_line, scrub=scrub, streams=streams)

    # --- state -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    @property
    def running(self) -> bool:
        return not self.exited.done()

    def tail(self, lines: int = 20) -> list[str]:
        with self._lock:
            return list(self._tail)[-lines:]

    # --- waiting and stopping ----------------------------------------------------------

    async def wait(self, timeout: float | None = None) -> int:
        """The exit code; TimeoutError if the child is still running after `timeout`."""
        if await first_done({"exited": self.exited}, timeout) is None:
            raise TimeoutError
        return self.exited.result()

    async def stop(self, grace: float = 5.0) -> int:
        """SIGTERM to the child's group, up to `grace` seconds to exit, then SIGKILL."""
        if self.running:
            self._signal_group(signal.SIGTERM)
            try:
                await self.wait(grace)
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
        return await self._finish()

    async def kill(self) -> int:
        """SIGKILL to the child's group, as a crash would."""
        if self.running:
            self._signal_group(signal.SIGKILL)
        return await self._finish()

    async def _finish(self) -> int:
        code = await self.wait()
        self._kill_stragglers()
        # Let the reader threads copy the last lines before anyone reads the log.
        await first_done({"drained": self.drained}, 2.0)
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        # The child leads its own group (start_new_session), so its pid is the group id; while
        # the child is not reaped, that id cannot belong to anybody else.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def _kill_stragglers(self) -> None:
        """Members of the child's group that outlived it (a group id lives while it has any)."""
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        self._signal_group(signal.SIGKILL)

    # --- threads -----------------------------------------------------------------------

    def _reap(self) -> None:
        self.exited.set_result(self._process.wait())

    def _pump(self, stream_name: str, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if self._scrub is not None:
                    line = self._scrub(line)
                with self._lock:
                    self._tail.append(line)
                    if self._log is not None:
                        self._log.write(line + "\n")
                        self._log.flush()
                if self._on_line is not None:
                    # A parser bug must not stop the copying: the child would block on a full pipe.
                    with contextlib.suppress(Exception):
                        self._on_line(stream_name, line)
        finally:
            stream.close()
            with self._lock:
                self._open_streams -= 1
                last = self._open_streams == 0
                if last and self._log is not None:
                    self._log.close()
            if last:
                self.drained.set_result(None)
