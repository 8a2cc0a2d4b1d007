"""What the embedded servers (nats-server, OpenBao) share: one child process on one port.

A subclass sets `component` (its name in errors), keeps `_child` and `_port`, and implements
`start()` (spawn, wait for the server's own ready line) and `stop()`.
"""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar, Self

from .child import ChildProcess
from .errors import StackError


class ServerProcess:
    component: ClassVar[str]
    _child: ChildProcess | None
    _port: int | None

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self, grace: float = 5.0) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError(f"{self.component} has not been started yet", component=self.component)
        return self._port

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    def tail(self, lines: int = 20) -> list[str]:
        return self._child.tail(lines) if self._child is not None else []

    async def wait(self, timeout: float | None = None) -> int:
        """The exit code once the server exits (TimeoutError after `timeout`)."""
        if self._child is None:
            raise StackError(f"{self.component} was never started", component=self.component)
        return await self._child.wait(timeout)
