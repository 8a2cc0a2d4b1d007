"""The `syncbus` command line."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from . import (
    app_commands,
    apply_command,
    asyncapi_command,
    dlq_commands,
    health_command,
    schedule_commands,
)
from . import demo as demo_module
from .common import NatsUrl, cli_connect, err, run_or_fail
from .import_saft import import_saft

app = typer.Typer(
    name="syncbus",
    help="Export accounting vouchers to Xledger and other ledgers, exactly once per period.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _configure(
    log_level: Annotated[
        str, typer.Option(envvar="SYNCBUS_LOG_LEVEL", help="Log level of the CLI's own logs.")
    ] = "ERROR",
) -> None:
    """Logs go to stderr as JSON lines, so that stdout holds only a command's output.

    Commands say what went wrong in one sentence of their own; the library's warnings (each
    failed connection attempt, say) are only noise there, so the default level is ERROR.
    """
    from syncbus_shared.logs import configure_logging  # noqa: PLC0415

    configure_logging("syncbus-cli", log_level)


@app.command()
def demo(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="SAF-T Financial file to export.")
    ] = demo_module.DEFAULT_SAFT,
    state_dir: Annotated[
        Path | None, typer.Option(help="Folder for NATS data and logs (default: a temporary one).")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the state folder and logs afterwards.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
) -> None:
    """Run the main job: the SAF-T sample, month by month, to both vendor fakes (Xledger, BC)."""
    raise typer.Exit(demo_module.main(file, state_dir, as_json=as_json, keep=keep))


@app.command()
def dev(
    state_dir: Annotated[Path, typer.Option(help="Folder for NATS data and logs.")] = Path(
        ".syncbus/dev"
    ),
    nats_port: Annotated[
        int | None, typer.Option(help="NATS client port (default: a free one).")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Start from an empty NATS store.")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (the URLs) when ready; text to stderr."),
    ] = False,
) -> None:
    """Start the whole system on this machine (NATS, OpenBao, fakes, four services) until Ctrl-C."""
    from syncbus_devstack import StackError  # noqa: PLC0415
    from syncbus_shared.logs import configure_logging  # noqa: PLC0415

    from .dev import run_dev  # noqa: PLC0415

    configure_logging("syncbus-dev", "WARNING")
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run_dev(state_dir, nats_port=nats_port, fresh=fresh, as_json=as_json))
    except StackError as exc:
        err.print(f"[red]syncbus dev: {exc}[/red]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


app.command("import-saft")(import_saft)

# Command groups of their own modules register here, one line each.
dlq_commands.register(app)
health_command.register(app)
asyncapi_command.register(app)
app_commands.register(app)
schedule_commands.register(app)
apply_command.register(app)


AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


@app.command()
def provision(nats_url: NatsUrl = "nats://127.0.0.1:4222", as_json: AsJson = False) -> None:
    """Create or update every stream, consumer and KV bucket (run before the services start)."""
    from syncbus_shared.provision import provision as apply  # noqa: PLC0415

    async def go() -> None:
        nc = await cli_connect(nats_url, "syncbus-provision")
        try:
            report = await apply(nc.jetstream())
        finally:
            await nc.close()
        if as_json:
            _print_json({"created": report.created, "updated": report.updated})
            return
        for name in report.created:
            typer.echo(f"created {name}")
        for name in report.updated:
            typer.echo(f"up to date {name}")

    run_or_fail(go(), "provision")


@app.command()
def backfill(
    integration: Annotated[str, typer.Argument(help="Integration id, e.g. toyen-xledger.")],
    first: Annotated[str, typer.Argument(metavar="FROM", help="First period id, e.g. 2017-01.")],
    last: Annotated[str, typer.Argument(metavar="TO", help="Last period id, e.g. 2017-04.")],
    nats_url: NatsUrl = "nats://127.0.0.1:4222",
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the scheduler, and then for the results.")
    ] = 300.0,
    wait: Annotated[bool, typer.Option(help="Wait for each period's result and print it.")] = True,
    as_json: AsJson = False,
) -> None:
    """Export past periods on purpose: each gets its warm-up and its own key, oldest first.

    Prints one line per period: its key and, with --wait (the default), the result's status
    and counts (with --json one object: `{"ok", "periods": [...]}`). Exit 0 when every period
    succeeded (or had succeeded before), 1 otherwise or when refused, 2 for a bad period id.
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from .backfill import run_backfill  # noqa: PLC0415

    def refuse(message: str, code: int) -> NoReturn:
        err.print(f"[red]syncbus backfill: {message}[/red]")
        if as_json:
            _print_json({"error": message, "exit_code": code})
        raise typer.Exit(code)

    try:
        rows, ok = run_or_fail(
            run_backfill(nats_url, integration, first, last, timeout=timeout, wait=wait),
            "backfill",
        )
    except ValidationError as exc:
        refuse(str(exc.errors()[0]["msg"]), 2)
    except ValueError as exc:
        refuse(str(exc), 1)
    if as_json:
        _print_json({"ok": ok, "periods": [row.to_json() for row in rows]})
    else:
        for row in rows:
            typer.echo(row.line())
    raise typer.Exit(0 if ok else 1)


class Service(StrEnum):
    DISPATCHER = "dispatcher"
    SCHEDULER = "scheduler"
    CREDENTIALS = "credentials"
    HEALTH_MONITOR = "health-monitor"


_SERVICE_MODULES = {
    Service.DISPATCHER: "syncbus_dispatcher.__main__",
    Service.SCHEDULER: "syncbus_scheduler.__main__",
    Service.CREDENTIALS: "syncbus_credentials.__main__",
    Service.HEALTH_MONITOR: "syncbus_health_monitor.__main__",
}


@app.command()
def run(service: Annotated[Service, typer.Argument(help="Which service to run.")]) -> None:
    """Run one service in the foreground (configured by SYNCBUS_* environment variables).

    Its output is already for machines: one JSON log line per event, on stdout.
    """
    importlib.import_module(_SERVICE_MODULES[service]).main()
