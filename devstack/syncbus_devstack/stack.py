"""The whole system on one machine: NATS, OpenBao, the vendor fakes and the services.

    async with Stack(tmp_path, services=("credentials", "dispatcher")) as stack:
        stack.nats_url, stack.vault_url, stack.fake_urls["xledger"]
        await stack.kill_service("dispatcher")      # a crash
        await stack.restart_service("dispatcher")

Start order: nats-server (store in `state_dir/nats`), provisioning (`syncbus_shared.provision`,
the one step that creates streams, consumers and buckets), OpenBao dev with the given secrets
written to KV v2 at `secret/`, the fakes, then the services (started together, each its own
process). `stop()` goes in reverse and leaves no process behind, also after a failed start.
Every process logs into `state_dir/logs/<name>.log`.

Each service and fake gets the launcher's environment without any inherited `SYNCBUS_*`,
`BAO_*` or `VAULT_*` variable (so a developer's shell cannot steer a test), plus:

    SYNCBUS_NATS_URL          nats://127.0.0.1:<port>
    SYNCBUS_VAULT_URL         http://127.0.0.1:<port>
    SYNCBUS_VAULT_TOKEN       the dev server's root token
    SYNCBUS_VAULT_MOUNT       secret
    SYNCBUS_INSTANCE_ID       dev-<name>
    SYNCBUS_LOG_LEVEL         the `log_level` argument (INFO)
    SYNCBUS_FAKE_<NAME>_URL   the URL of each running fake (to services only)
    SYNCBUS_PROBE_HOST/PORT   127.0.0.1 and a free port of each service's own, kept across
                              restarts (`stack.probe_urls["dispatcher"]`: /livez, /readyz,
                              /metrics)
    PYTHONUNBUFFERED          1, so that every log line reaches the log file as it is written
    ...                       then `extra_env`, which overrides any of the above

Services' log lines are copied as they are, unscrubbed: a leaked secret must stay visible to
the test that scans everything the system wrote.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from pydantic import SecretStr

from syncbus_shared.logs import get_logger
from syncbus_shared.natsclient import connect
from syncbus_shared.provision import ProvisionReport, provision
from syncbus_shared.settings import NatsSettings, TopologySettings

from .errors import StackError
from .nats_server import NatsServer
from .nats_users import ACCOUNTS_CONF, NatsUsers
from .openbao import DEFAULT_MOUNT, OpenBaoDev
from .ports import free_port
from .process import DEFAULT_READY_TIMEOUT, ManagedProcess

log = get_logger()

SERVICE_MODULES: Mapping[str, str] = {
    "credentials": "syncbus_credentials",
    "dispatcher": "syncbus_dispatcher",
    "scheduler": "syncbus_scheduler",
    "health-monitor": "syncbus_health_monitor",
    # The HTTP ingress: started only when asked for (`services=(..., "ingress")`).
    "ingress": "syncbus_ingress",
}
DEFAULT_SERVICES: tuple[str, ...] = ("credentials", "dispatcher", "scheduler", "health-monitor")
UNPROBED_SERVICES = frozenset({"ingress"})
"""Service processes without a probe port; every other one (also extra replicas, such as
`scheduler-2`) serves /livez, /readyz and /metrics on a free port (`SYNCBUS_PROBE_PORT`)."""

FAKE_MODULES: Mapping[str, str] = {
    "xledger": "syncbus_fakes.xledger",
    # App registrations are added after start through its control API (`POST /_fake/clients`).
    "business_central": "syncbus_fakes.business_central",
}
DEFAULT_FAKES: tuple[str, ...] = ("xledger",)

LOOPBACK = "127.0.0.1"
_PROVISION_TIMEOUT = 30.0


def module_available(module: str) -> bool:
    """Whether `python -m <module>` would find something to run (without importing it).

    A package runs only with a `__main__` module, so a fake that is half written (its package
    exists, its entry point not yet) counts as not available.
    """
    try:
        spec = importlib.util.find_spec(module)
        if spec is None:
            return False
        if spec.submodule_search_locations is not None:
            return importlib.util.find_spec(f"{module}.__main__") is not None
    except (ImportError, ValueError):  # a missing parent package, or one that fails to import
        return False
    return True


def service_command(name: str) -> list[str]:
    """`python -m syncbus_<service>` with this interpreter."""
    try:
        module = SERVICE_MODULES[name]
    except KeyError:
        known = ", ".join(SERVICE_MODULES)
        raise StackError(f"unknown service {name!r} (known: {known})", component=name) from None
    return [sys.executable, "-m", module]


def fake_command(name: str, *, port: int = 0, xledger_tokens: Sequence[str] = ()) -> list[str]:
    """The fake's command line: loopback, by default a port of its own choosing (reported when
    ready; a restarted fake is given the port it had, so that its URL stays valid)."""
    try:
        module = FAKE_MODULES[name]
    except KeyError:
        known = ", ".join(FAKE_MODULES)
        raise StackError(f"unknown fake {name!r} (known: {known})", component=name) from None
    del xledger_tokens  # given through the environment: a command line is public (ps, /proc)
    return [sys.executable, "-m", module, "--host", LOOPBACK, "--port", str(port)]


def fake_process_name(fake: str) -> str:
    return f"fake-{fake}"


class Stack:
    """The embedded stack. Use `async with`, or `start()` and then always `stop()`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        services: Sequence[str] = DEFAULT_SERVICES,
        fakes: Sequence[str] = DEFAULT_FAKES,
        xledger_tokens: Sequence[str] | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        extra_env: Mapping[str, str] | None = None,
        topology: TopologySettings | None = None,
        nats_port: int | None = None,
        vault_port: int | None = None,
        service_commands: Mapping[str, Sequence[str]] | None = None,
        log_level: str = "INFO",
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        secure_nats: bool = False,
    ) -> None:
        """`service_commands` names the command of a service (a known one or a new name).

        `secure_nats` starts nats-server with `deploy/nats/syncbus-accounts.conf` and a fresh
        password per user (`self.nats_users`); each service connects as the user of its name
        (with that user's inbox prefix), provisioning as `operator`.

        `secrets` maps a KV v2 path under `secret/` to its data. `xledger_tokens` are the API
        tokens the Xledger fake accepts.
        """
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.services = tuple(services)
        self.fakes = tuple(fakes)
        self.xledger_tokens = tuple(xledger_tokens or ())
        self.secrets = {path: dict(data) for path, data in (secrets or {}).items()}
        self.extra_env = dict(extra_env or {})
        self.topology = topology or TopologySettings()
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self._service_commands = {k: list(v) for k, v in (service_commands or {}).items()}
        self.nats_users = NatsUsers.generate() if secure_nats else None
        self.nats = NatsServer(
            state_dir / "nats",
            port=nats_port,
            host=LOOPBACK,
            log_path=self.log_dir / "nats-server.log",
            config_file=ACCOUNTS_CONF if self.nats_users else None,
            env=self.nats_users.server_env() if self.nats_users else None,
        )
        self.vault = OpenBaoDev(
            port=vault_port, host=LOOPBACK, log_path=self.log_dir / "openbao.log"
        )
        self.fake_urls: dict[str, str] = {}
        self.probe_ports: dict[str, int] = {}
        """Each service's probe port, chosen free once and kept across restarts."""
        self.processes: dict[str, ManagedProcess] = {}
        self.provision_report: ProvisionReport | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"Stack(state_dir={self.state_dir}, processes={list(self.processes)})"

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

    # --- where things run ----------------------------------------------------------------

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def vault_url(self) -> str:
        return self.vault.url

    @property
    def vault_token(self) -> SecretStr:
        return self.vault.root_token

    def nats_settings(self, user: str = "operator") -> NatsSettings:
        """How `user` connects to this stack's NATS (with `secure_nats`; else anonymously)."""
        if self.nats_users is None:
            return NatsSettings(url=self.nats_url, user=None, password=None)
        return self.nats_users.settings(user, self.nats_url)

    @property
    def probe_urls(self) -> dict[str, str]:
        """`http://127.0.0.1:<port>` of each service's /livez, /readyz and /metrics."""
        return {name: f"http://{LOOPBACK}:{port}" for name, port in self.probe_ports.items()}

    def service(self, name: str) -> ManagedProcess:
        """A service by its name, or a fake by `fake-<name>`."""
        try:
            return self.processes[name]
        except KeyError:
            raise StackError(
                f"{name!r} is not running in this stack (running: {', '.join(self.processes)})",
                component=name,
            ) from None

    def service_env(self, name: str) -> dict[str, str]:
        """The whole environment a service or fake of this stack is started with."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SYNCBUS_", "BAO_", "VAULT_"))
        }
        env.update(
            PYTHONUNBUFFERED="1",
            SYNCBUS_NATS_URL=self.nats_url,
            SYNCBUS_VAULT_URL=self.vault_url,
            SYNCBUS_VAULT_TOKEN=self.vault_token.get_secret_value(),
            SYNCBUS_VAULT_MOUNT=DEFAULT_MOUNT,
            SYNCBUS_INSTANCE_ID=f"dev-{name}",
            SYNCBUS_LOG_LEVEL=self.log_level,
        )
        for fake, url in self.fake_urls.items():
            env[f"SYNCBUS_FAKE_{fake.upper().replace('-', '_')}_URL"] = url
        is_fake = name in {fake_process_name(fake) for fake in FAKE_MODULES}
        if not is_fake and name not in UNPROBED_SERVICES:
            if name not in self.probe_ports:
                self.probe_ports[name] = free_port(LOOPBACK)
            env.update(SYNCBUS_PROBE_HOST=LOOPBACK, SYNCBUS_PROBE_PORT=str(self.probe_ports[name]))
        if self.nats_users is not None and name in SERVICE_MODULES:
            env.update(self.nats_users.client_env(name))
        env.update(self.extra_env)
        return env

    def describe(self) -> list[str]:
        """What runs where, one line each, for a person to read (no secret in it)."""
        width = max([12, *(len(name) + 2 for name in self.processes)])
        lines = [f"syncbus stack, state in {self.state_dir}"]
        if self.nats.running:
            lines.append(
                f"  {'NATS':<{width}}{self.nats.url}  pid {self.nats.pid}  "
                f"store {self.nats.store_dir}  log {self.nats.log_path}"
            )
        if self.vault.running:
            lines.append(
                f"  {'Vault':<{width}}{self.vault.url}  pid {self.vault.pid}  "
                f"KV v2 at {DEFAULT_MOUNT}/  log {self.vault.log_path}  "
                "(root token: in the services' SYNCBUS_VAULT_TOKEN, not shown)"
            )
        for name, process in self.processes.items():
            where = ""
            if process.ready_info and isinstance(process.ready_info.get("url"), str):
                where = f"{process.ready_info['url']}  "
            if name in self.probe_ports:
                where += f"probes {self.probe_urls[name]}  "
            state = f"pid {process.pid}" if process.running else f"exited ({process.returncode})"
            lines.append(f"  {name:<{width}}{where}{state}  log {process.log_path}")
        return lines

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise StackError("this stack was started already; make a new Stack", component="stack")
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        for fake in self.fakes:
            if fake in FAKE_MODULES and not module_available(FAKE_MODULES[fake]):
                raise StackError(
                    f"fake {fake!r} is not installed (no module {FAKE_MODULES[fake]})",
                    component=fake_process_name(fake),
                )
        commands = {name: self._command(name) for name in self.services}
        fake_commands = {
            fake: fake_command(fake, xledger_tokens=self.xledger_tokens) for fake in self.fakes
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)

        await self.nats.start()
        log.info("devstack.nats_ready", url=self.nats_url, pid=self.nats.pid)
        self.provision_report = await self._provision()

        await self.vault.start()
        for path, data in self.secrets.items():
            await self.vault.write_secret(path, data)
        log.info("devstack.vault_ready", url=self.vault_url, secrets=len(self.secrets))

        for fake, argv in fake_commands.items():
            name = fake_process_name(fake)
            process = self._process(name, argv)
            info = await process.start()
            url = info.get("url")
            if not isinstance(url, str):
                message = f"{name} did not report its url when ready (keys: {sorted(info)})"
                raise StackError(message, component=name)
            self.fake_urls[fake] = url

        # Services do not wait for one another to be ready, so they start together.
        started = [self._process(name, argv) for name, argv in commands.items()]
        results = await asyncio.gather(*(p.start() for p in started), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        log.info("devstack.ready", processes=list(self.processes))

    def _command(self, name: str) -> list[str]:
        if name in self._service_commands:
            return self._service_commands[name]
        return service_command(name)

    def _process(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        env = self.service_env(name)
        if name == fake_process_name("xledger") and self.xledger_tokens:
            # Only the fake gets its valid tokens, and not on its command line.
            env["SYNCBUS_FAKE_XLEDGER_TOKENS"] = ",".join(self.xledger_tokens)
        process = ManagedProcess(
            name,
            argv,
            env,
            self.log_dir / f"{name}.log",
            ready_timeout=self.ready_timeout,
        )
        self.processes[name] = process
        return process

    async def _provision(self) -> ProvisionReport:
        settings = self.nats_settings("operator")
        # A bound on the whole step: the client reconnects forever, as services do.
        async with asyncio.timeout(_PROVISION_TIMEOUT):
            nc = await connect(settings, name="syncbus-devstack")
            try:
                return await provision(nc.jetstream(), self.topology)
            finally:
                await nc.close()

    async def stop(self) -> None:
        """Stop everything that runs, newest first; every part is stopped even if one fails."""
        errors: list[BaseException] = []
        parts: list[tuple[str, ManagedProcess | NatsServer | OpenBaoDev]] = [
            *reversed(self.processes.items()),
            ("openbao", self.vault),
            ("nats-server", self.nats),
        ]
        for name, part in parts:
            try:
                await part.stop()
            except Exception as exc:
                log.warning("devstack.stop_failed", part=name, error=str(exc))
                errors.append(exc)
        if errors:
            raise StackError(f"stopping the stack failed: {errors[0]}", component="stack")

    async def restart_service(self, name: str) -> None:
        """Stop a service (or fake) and start it again with the same command and environment.

        A fake comes back on the port it had, so that the URL the services were given holds.
        """
        process = self.service(name)
        await process.stop()
        fake = next((f for f in self.fake_urls if fake_process_name(f) == name), None)
        if fake is not None:
            port = urllib.parse.urlsplit(self.fake_urls[fake]).port or 0
            argv = fake_command(fake, port=port, xledger_tokens=self.xledger_tokens)
            process = self._process(name, argv)
        await process.start()

    async def kill_service(self, name: str) -> None:
        """SIGKILL a service (or fake), as a crash would; `restart_service` brings it back."""
        await self.service(name).kill()
