"""Connections as the users of deploy/nats/syncbus-accounts.conf, and the server's refusals.

Imported by name (tests/ has no packages). `locked_nats` is a fixture: a real nats-server
started with that configuration, provisioned as `operator`, one per test module (import it). A refusal is waited for on its real signals: the
`-ERR 'Permissions Violation ...'` the server sends the offending connection, and the
violation line it writes to its own log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from syncbus_devstack import NatsServer
from syncbus_devstack.nats_users import ACCOUNTS_CONF, NatsUsers
from syncbus_shared.natsclient import connect, connect_options
from syncbus_shared.provision import provision

REFUSAL_TIMEOUT = 5.0


@dataclass
class Watched:
    """A connection and every asynchronous error the server sent it."""

    user: str
    nc: Client
    errors: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_error(self, exc: Exception) -> None:
        async with self._changed:
            self.errors.append(str(exc))
            self._changed.notify_all()

    async def refused(self, subject: str, timeout: float = REFUSAL_TIMEOUT) -> str:
        """The server's permissions violation naming `subject` (TimeoutError if none comes)."""

        def match() -> str | None:
            quoted = f'"{subject}"'.lower()  # nats-py hands the server's -ERR on lower-cased
            return next(
                (e for e in self.errors if "permissions violation" in e and quoted in e), None
            )

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: match() is not None)
        found = match()
        assert found is not None
        return found

    async def settle(self) -> None:
        """A round trip to the server: whatever it sent before now has arrived."""
        await self.nc.flush(timeout=REFUSAL_TIMEOUT)

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e]


async def connect_as(server: NatsServer, users: NatsUsers, user: str, **overrides: Any) -> Watched:
    """Connect as `user` with its own inbox prefix, as its service would."""
    watched = Watched(user, nats.aio.client.Client())
    options = connect_options(users.settings(user, server.url))
    options.update(overrides)
    watched.nc = await nats.connect(name=f"pytest-{user}", error_cb=watched.on_error, **options)
    return watched


@contextlib.asynccontextmanager
async def connected(
    server: NatsServer, users: NatsUsers, *names: str
) -> AsyncIterator[list[Watched]]:
    conns = [await connect_as(server, users, name) for name in names]
    try:
        yield conns
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.nc.close()


async def server_logged(server: NatsServer, *fragments: str, timeout: float = 10.0) -> str:
    """The first line of the server's log holding every fragment, once the server writes it."""
    assert server.log_path is not None
    path = Path(server.log_path)
    async with asyncio.timeout(timeout):
        while True:
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            for line in text.splitlines():
                if all(f in line for f in fragments):
                    return line
            await asyncio.sleep(0.02)  # polling the server's own log line, not guessing a delay


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def locked_nats(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[NatsServer, NatsUsers]]:
    users = NatsUsers.generate()
    folder = tmp_path_factory.mktemp("locked-nats")
    server = NatsServer(
        folder / "store",
        config_file=ACCOUNTS_CONF,
        env=users.server_env(),
        log_path=folder / "nats-server.log",
    )
    await server.start()
    try:
        operator = await connect(users.settings("operator", server.url), "pytest-provision")
        try:
            await provision(operator.jetstream())
        finally:
            await operator.close()
        yield server, users
    finally:
        await server.stop()
