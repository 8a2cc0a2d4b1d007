"""`syncbus dlq list|replay`: requests that exhausted their attempts, and replaying them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from syncbus_shared.dlq import (
    DeadLetter,
    DeadLetterError,
    list_dead_letters,
    replay_dead_letter,
)

from .common import NatsUrl, cli_connect, err, run_or_fail

dlq_app = typer.Typer(
    help="Dead letters: requests that failed after every attempt.", no_args_is_help=True
)


def _as_json(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.seq,
        "integration_id": letter.integration_id,
        "request_id": letter.request_id,
        "idempotency_key": letter.idempotency_key,
        "error_class": letter.error_class,
        "error": letter.error,
        "stored_at": letter.stored_at.isoformat() if letter.stored_at else None,
    }


@dlq_app.command("list")
def list_command(
    integration: Annotated[
        str | None, typer.Option(help="Only this integration's dead letters.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    nats_url: NatsUrl = "nats://127.0.0.1:4222",
) -> None:
    """List dead letters, oldest first. Exit 0 (also when there are none)."""

    async def go() -> list[DeadLetter]:
        nc = await cli_connect(nats_url, "syncbus-dlq")
        try:
            return await list_dead_letters(nc.jetstream(), integration)
        finally:
            await nc.close()

    letters = run_or_fail(go(), "dlq list")
    if as_json:
        typer.echo(json.dumps([_as_json(letter) for letter in letters]))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    table = Table()
    for column in ("id", "integration", "key", "error class", "error", "stored at"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            str(letter.seq),
            letter.integration_id,
            letter.idempotency_key or "?",
            letter.error_class,
            letter.error,
            letter.stored_at.isoformat(timespec="seconds") if letter.stored_at else "",
        )
    Console().print(table)


@dlq_app.command("replay")
def replay_command(
    letter_id: Annotated[int, typer.Argument(metavar="ID", help="The id `dlq list` shows.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    nats_url: NatsUrl = "nats://127.0.0.1:4222",
) -> None:
    """Publish a dead letter again as a new request with the same key.

    The run ledger decides what happens: a key that succeeded in the meantime gets a `duplicate`
    result and posts nothing; a failed one resumes where it stopped. Exit 1 if no such letter.
    """

    async def go() -> tuple[str, str] | str:
        nc = await cli_connect(nats_url, "syncbus-dlq")
        try:
            replay = await replay_dead_letter(nc.jetstream(), letter_id)
        except DeadLetterError as exc:
            return str(exc)
        finally:
            await nc.close()
        return replay.request_id, replay.idempotency_key

    outcome = run_or_fail(go(), "dlq replay")
    if isinstance(outcome, str):
        err.print(f"[red]syncbus dlq replay: {outcome}[/red]")
        raise typer.Exit(1)
    request_id, key = outcome
    if as_json:
        typer.echo(
            json.dumps({"replayed": letter_id, "request_id": request_id, "idempotency_key": key})
        )
    else:
        typer.echo(f"replayed dead letter {letter_id} as request {request_id} (key {key})")


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
