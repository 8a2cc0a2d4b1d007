"""A syncbus service or fake run as a child process, ready when it says so.

The contract every service and fake follows (the launcher's side is here):

- started as `python -m <module> [args]` with `sys.executable`, configured by env vars
  (`SYNCBUS_NATS_URL`, `SYNCBUS_VAULT_URL`, ... see `stack.py`);
- when it is ready to serve it writes one JSON line to **stderr** whose `event` ends with
  `.ready`, e.g. `{"event": "fake.xledger.ready", "url": "http://127.0.0.1:40123"}`; that
  dict is what `start()` returns;
- it exits cleanly on SIGTERM.

Every line the child writes to stdout or stderr is copied into `log_path` as it comes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .child import ChildProcess, first_done, ready_future
from .errors import NotReadyError, ProcessExitedError, StackError

DEFAULT_READY_TIMEOUT = 30.0
DEFAULT_STOP_GRACE = 5.0


def ready_event(line: str) -> dict[str, Any] | None:
    """The parsed line if it is a JSON object whose `event` ends with `.ready`, else None."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    event = parsed.get("event")
    if isinstance(event, str) and event.endswith(".ready"):
        return parsed
    return None


class ManagedProcess:
    """One child of the stack. `start()` returns its ready line; it can be started again."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> None:
        """`env` is the child's whole environment, as for `subprocess.Popen`."""
        self.name = name
        self.argv = tuple(argv)
        self._env = dict(env)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.ready_info: dict[str, Any] | None = None
        self._child: ChildProcess | None = None

    def __repr__(self) -> str:
        return f"ManagedProcess(name={self.name!r}, pid={self.pid}, returncode={self.returncode})"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def returncode(self) -> int | None:
        return self._child.returncode if self._child is not None else None

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    def tail(self, lines: int = 20) -> list[str]:
        return self._child.tail(lines) if self._child is not None else []

    async def start(self, timeout: float | None = None) -> dict[str, Any]:
        """Start the child and wait for its ready line; on failure nothing is left running."""
        if self.running:
            message = f"{self.name} is already running (pid {self.pid})"
            raise StackError(message, component=self.name)
        timeout = self.ready_timeout if timeout is None else timeout
        ready = ready_future()

        def on_line(stream: str, line: str) -> None:
            # Only the stderr reader thread resolves `ready`, so check-then-set cannot race.
            if stream == "stderr" and not ready.done():
                info = ready_event(line)
                if info is not None:
                    ready.set_result(info)

        self.ready_info = None
        child = ChildProcess.spawn(
            self.name, self.argv, env=self._env, log_path=self.log_path, on_line=on_line
        )
        self._child = child
        outcome = await first_done({"ready": ready, "exited": child.exited}, timeout)
        if outcome == "ready":
            self.ready_info = ready.result()
            return self.ready_info
        if outcome == "exited":
            code = await child.stop()  # waits for the readers to copy the last lines
            raise ProcessExitedError(self.name, code, child.tail())
        await child.kill()
        raise NotReadyError(self.name, timeout, child.tail())

    async def wait(self, timeout: float | None = None) -> int:
        """The exit code once the child exits (TimeoutError after `timeout`)."""
        if self._child is None:
            raise StackError(f"{self.name} was never started", component=self.name)
        return await self._child.wait(timeout)

    async def stop(self, grace: float = DEFAULT_STOP_GRACE) -> int | None:
        """SIGTERM, `grace` seconds to exit, then SIGKILL; the exit code (None if never started)."""
        if self._child is None:
            return None
        return await self._child.stop(grace)

    async def kill(self) -> int | None:
        """SIGKILL, as a crash would; the exit code (None if never started)."""
        if self._child is None:
            return None
        return await self._child.kill()
