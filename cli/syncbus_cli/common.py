"""What the CLI's commands share: the NATS URL option, the error console, running a coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from rich.console import Console

err = Console(stderr=True)
T = TypeVar("T")

NatsUrl = Annotated[
    str,
    typer.Option(
        "--nats-url", envvar="SYNCBUS_NATS_URL", help="NATS server URL(s), comma-separated."
    ),
]


def run_or_fail(coro: Coroutine[Any, Any, T], command: str) -> T:
    """Run one CLI coroutine; a NATS that cannot be reached is one sentence, not a traceback."""
    try:
        return asyncio.run(coro)
    except (NoServersError, OSError) as exc:
        err.print(f"[red]syncbus {command}: cannot reach NATS ({type(exc).__name__})[/red]")
    except NoRespondersError:
        err.print(f"[red]syncbus {command}: no service is listening (is the stack running?)[/red]")
    except NatsTimeoutError:
        err.print(f"[red]syncbus {command}: no answer in time[/red]")
    raise typer.Exit(1)
