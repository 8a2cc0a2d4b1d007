"""`syncbus health`: each integration's state, reason, last probe, next probe and budget use.

    syncbus health [--json] [--nats-url URL]
    syncbus health vendor-mode VENDOR active|passive [--reason TEXT] [--nats-url URL]
    syncbus health recheck INTEGRATION [--json] [--nats-url URL]

The first reads KV `integrations`, `integration-health` and `probe-budget` and prints one row per
integration (with `--json`, one object: `{"integrations": [...], "vendors": {...}}`). It makes no
vendor call and spends nothing. The second switches every integration of one vendor to passive
(health from syncs and warm-ups only) or back to active, which also ends a switch the monitor
made by itself after a rate-limited probe. The third asks the running monitor to probe one
integration now (after a credential was fixed, say): it skips the backoff wait and passive mode,
never the 15-minute floor since the last probe nor the budget.

Exit codes: 0 done, 1 NATS cannot be reached, a SYNCBUS_NATS_* variable is malformed or NATS
holds no syncbus state (or, for `recheck`, the integration is not configured or no monitor
answers), 2 `recheck` was given something that is not an integration id.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncbus_shared.contracts import HealthMode, HealthState, utc_now

from .common import NatsUrl, cli_connect, err, run_or_fail

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

__all__ = ["health_app", "register"]

T = TypeVar("T")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

EXIT_REFUSED = 1
EXIT_USAGE = 2

health_app = typer.Typer(
    help="Health of every integration: state, reason, last and next probe, probe budget use.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_STATE_STYLE = {
    HealthState.HEALTHY: "green",
    HealthState.DEGRADED: "yellow",
    HealthState.UNHEALTHY: "red",
    HealthState.UNKNOWN: "dim",
}


def register(app: typer.Typer) -> None:
    app.add_typer(health_app, name="health")


class _NotConfiguredError(Exception):
    """The integration a command names has no entry in KV `integrations`."""


def _fail(command: str, message: str, code: int, as_json: bool) -> NoReturn:
    """One sentence on stderr (and, with --json, the error object on stdout); exit `code`."""
    err.print(f"[red]syncbus {command}: {escape(message)}[/red]", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    raise typer.Exit(code)


async def _with_nats(nats_url: str, work: Callable[[Client], Awaitable[T]]) -> T:
    """Connect, run `work(nc)`, close. Unprovisioned NATS is one sentence and exit code 1.

    A malformed SYNCBUS_NATS_* variable or an unreachable server raises what `run_or_fail`
    turns into one sentence.
    """
    from nats.js.errors import BucketNotFoundError  # noqa: PLC0415

    nc = await cli_connect(nats_url, "syncbus-health")
    try:
        return await work(nc)
    except BucketNotFoundError:
        err.print(
            "[red]syncbus health: NATS holds no syncbus state (run `syncbus provision`)[/red]"
        )
        raise typer.Exit(1) from None
    finally:
        await nc.close()


def _when(instant: datetime | None, now: datetime) -> str:
    if instant is None:
        return "-"
    seconds = (instant - now).total_seconds()
    text = instant.strftime("%Y-%m-%d %H:%MZ")
    if abs(seconds) < 60:
        return f"{text} (now)"
    span = abs(seconds)
    amount = f"{span / 60:.0f} min" if span < 5400 else f"{span / 3600:.1f} h"
    return f"{text} (in {amount})" if seconds > 0 else f"{text} ({amount} ago)"


@health_app.callback()
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
) -> None:
    """Show every integration's health (no vendor call is made)."""
    if ctx.invoked_subcommand is not None:
        return
    from syncbus_health_monitor.status import HealthOverview, health_overview  # noqa: PLC0415

    async def work(nc: Client) -> HealthOverview:
        return await health_overview(nc.jetstream())

    overview = run_or_fail(_with_nats(nats_url, work), "health")
    if as_json:
        typer.echo(json.dumps(overview.as_json(), ensure_ascii=False, indent=2))
        return
    now = utc_now()
    if not overview.rows:
        typer.echo("no integrations are configured (KV integrations is empty)")
        return
    table = Table(title="syncbus health", title_justify="left")
    for name in ("integration", "vendor", "mode", "state", "reason", "last probe", "next probe"):
        table.add_column(name, no_wrap=name in {"integration", "state"})
    table.add_column("budget month", justify="right")
    table.add_column("budget hour", justify="right")
    for row in overview.rows:
        status, state, budget = row.status, row.state, row.budget
        mode = row.mode.value
        if row.mode_reason not in {"active", "configured passive"}:
            mode = f"{mode} ({row.mode_reason})"
        if row.next_probe_at is not None:
            next_probe = _when(row.next_probe_at, now)
        else:
            next_probe = "- (passive)" if row.mode is HealthMode.PASSIVE else "-"
        table.add_row(
            row.config.integration_id,
            row.config.vendor,
            mode,
            f"[{_STATE_STYLE[state]}]{state.value}[/]",
            status.reason if status else "never observed",
            _when(row.last_probe_at, now),
            next_probe,
            f"{budget.month_used}/{budget.limits.per_month}",
            f"{budget.hour_used}/{budget.limits.per_hour}",
        )
    Console().print(table)
    for vendor, entry in sorted(overview.vendors.items()):
        until = f" until {entry.until.isoformat()}" if entry.until else ""
        typer.echo(f"vendor {vendor}: {entry.mode.value} ({entry.set_by}){until}: {entry.reason}")


@health_app.command("vendor-mode")
def vendor_mode(
    vendor: Annotated[str, typer.Argument(help="Adapter name, e.g. xledger.")],
    mode: Annotated[HealthMode, typer.Argument(help="active or passive.")],
    reason: Annotated[str, typer.Option(help="Why (shown by `syncbus health`).")] = "",
    nats_url: NatsUrl = DEFAULT_NATS_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Switch every integration of one vendor to passive, or back to active."""
    from syncbus_health_monitor.status import set_vendor_mode  # noqa: PLC0415

    async def work(nc: Client) -> None:
        await set_vendor_mode(nc.jetstream(), vendor, mode, reason)

    run_or_fail(_with_nats(nats_url, work), "health vendor-mode")
    if as_json:
        typer.echo(json.dumps({"vendor": vendor, "mode": mode.value, "reason": reason or None}))
    else:
        typer.echo(f"vendor {vendor}: {mode.value}")


@health_app.command("recheck")
def recheck(
    integration: Annotated[str, typer.Argument(help="Integration id, e.g. toyen-xledger.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the monitor.")] = 60.0,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
) -> None:
    """Ask the health monitor to probe one integration now, e.g. after a credential was fixed.

    It skips the backoff wait (and passive mode), never the 15-minute floor nor the budget.
    """
    from syncbus_health_monitor.status import current_health  # noqa: PLC0415
    from syncbus_shared import topology as t  # noqa: PLC0415
    from syncbus_shared.contracts import HealthStatus  # noqa: PLC0415
    from syncbus_shared.keys import is_integration_id  # noqa: PLC0415

    command = "health recheck"
    if not is_integration_id(integration):
        # Checked before connecting: such an id is no subject token ('*', '>', 'a.b', ' ').
        _fail(
            command,
            f"{integration!r} is not an integration id (1-64 letters, digits, '-' or '_')",
            EXIT_USAGE,
            as_json,
        )

    async def work(nc: Client) -> tuple[HealthStatus | None, HealthStatus]:
        js = nc.jetstream()
        if not await _is_configured(js, integration):
            raise _NotConfiguredError
        before = await current_health(js, integration)
        reply = await nc.request(t.health_recheck_subject(integration), b"", timeout=timeout)
        return before, HealthStatus.from_bytes(reply.data)

    try:
        before, after = run_or_fail(_with_nats(nats_url, work), command)
    except _NotConfiguredError:
        _fail(command, f"integration {integration!r} is not configured", EXIT_REFUSED, as_json)
    probed = after.last_probe_at is not None and (
        before is None or before.last_probe_at != after.last_probe_at
    )
    if as_json:
        typer.echo(json.dumps({"probed": probed, "status": after.model_dump(mode="json")}))
        return
    if probed:
        typer.echo(f"{integration}: probed now: {after.state.value} ({after.reason})")
    else:
        typer.echo(
            f"{integration}: not probed (interval floor or budget); still {after.state.value} "
            f"({after.reason}); next probe {_when(after.next_probe_at, utc_now())}"
        )


async def _is_configured(js: JetStreamContext, integration_id: str) -> bool:
    """Has KV `integrations` an entry for it? (Its content is the monitor's to judge.)"""
    from nats.js.errors import KeyNotFoundError  # noqa: PLC0415

    from syncbus_shared import topology as t  # noqa: PLC0415

    kv = await js.key_value(t.KV_INTEGRATIONS)
    try:
        entry = await kv.get(integration_id)
    except KeyNotFoundError:
        return False
    return bool(entry.value)
