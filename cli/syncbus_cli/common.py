"""What the CLI's commands share: the NATS URL option, the error console, running a coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from nats.aio.client import Client
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError
from rich.console import Console

from syncbus_shared.natsclient import NatsTlsConfigError, NatsUnreachableError, connect
from syncbus_shared.settings import NatsSettings, describe_settings_error

err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

NatsUrl = Annotated[
    str,
    typer.Option(
        "--nats-url", envvar="SYNCBUS_NATS_URL", help="NATS server URL(s), comma-separated."
    ),
]


CLI_CONNECT_SECONDS = 5.0


async def cli_connect(url: str, name: str) -> Client:
    """A NATS connection for one command: give up after a few seconds, in one sentence."""
    return await connect(nats_settings(url), name, first_connect_timeout=CLI_CONNECT_SECONDS)


class NatsSettingsError(Exception):
    """A SYNCBUS_NATS_* variable is malformed (one sentence naming it, never its value)."""


def nats_settings(url: str) -> NatsSettings:
    """The command's NATS settings: `--nats-url` and the other SYNCBUS_NATS_* variables."""
    try:
        return NatsSettings(url=url)
    except ValidationError as exc:
        raise NatsSettingsError(describe_settings_error(exc, label="NATS setting")) from None


def run_or_fail(coro: Coroutine[Any, Any, T], command: str) -> T:
    """Run one CLI coroutine; a NATS that cannot be reached is one sentence, not a traceback."""
    try:
        return asyncio.run(coro)
    except NatsTlsConfigError as exc:
        err.print(f"[red]syncbus {command}: {exc}[/red]")
    except NatsSettingsError as exc:
        err.print(f"[red]syncbus {command}: {exc}[/red]")
    except NatsUnreachableError as exc:
        err.print(f"[red]syncbus {command}: {exc} (is the stack running? see --nats-url)[/red]")
    except (NoServersError, OSError) as exc:
        err.print(f"[red]syncbus {command}: cannot reach NATS ({type(exc).__name__})[/red]")
    except NoRespondersError:
        err.print(f"[red]syncbus {command}: no service is listening (is the stack running?)[/red]")
    except NatsTimeoutError:
        err.print(f"[red]syncbus {command}: no answer in time[/red]")
    raise typer.Exit(1)
