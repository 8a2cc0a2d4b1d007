"""`syncbus schedules`, `pause`, `resume` and `trigger`: the scheduler's commands.

Exit codes, the same for every command here, so that scripts can rely on them:

    0  done (also when there was nothing to change: pausing a paused schedule)
    1  refused: the integration is not configured, has no schedule, or the scheduler said no
    2  usage: a malformed integration id, period id or option
    3  unavailable: NATS cannot be reached, no scheduler replica answers, or none in time

Every error is one sentence on stderr (`syncbus <command>: ...`); with `--json` stdout holds one
JSON object, `{"error": ..., "exit_code": ...}` on failure.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NoReturn

import typer

from .common import NatsUrl, cli_connect

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Integration = Annotated[str, typer.Argument(help="Integration id, e.g. toyen-xledger.")]

_DEFAULT_URL = "nats://127.0.0.1:4222"
_STATUS_WAIT_SECONDS = 0.3
"""How long `schedules` collects the answers of scheduler replicas."""
_CAS_ATTEMPTS = 5


class CommandError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def register(app: typer.Typer) -> None:
    app.command("schedules")(schedules)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("trigger")(trigger)


# --- the commands --------------------------------------------------------------------------


def schedules(
    integration: Annotated[
        str | None, typer.Argument(help="Only this integration (default: all).")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=100, help="Next fires per schedule.")] = 3,
    nats_url: NatsUrl = _DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Show each schedule's next fire times (local and UTC) with their period ids and keys."""
    if integration is not None:
        _check_integration_id(integration, "schedules", as_json)

    async def go(nc: Any) -> dict[str, Any]:
        from syncbus_scheduler.overview import view  # noqa: PLC0415
        from syncbus_scheduler.state import ScheduleState, is_state_key  # noqa: PLC0415
        from syncbus_shared import topology as t  # noqa: PLC0415
        from syncbus_shared.contracts import IntegrationConfig, utc_now  # noqa: PLC0415

        js = nc.jetstream()
        configs = await _read_bucket(js, t.KV_INTEGRATIONS)
        states = await _read_bucket(js, t.KV_SCHEDULE_STATE)
        if integration is not None and integration not in configs:
            raise CommandError(f"integration {integration!r} is not configured", EXIT_REFUSED)
        now = utc_now()
        views = []
        for key in sorted(configs):
            if integration is not None and key != integration:
                continue
            try:
                config = IntegrationConfig.from_bytes(configs[key])
            except ValueError:
                views.append(
                    {
                        "integration_id": key,
                        "status": "invalid",
                        "problem": "the config is not a valid integration",
                        "next": [],
                    }
                )
                continue
            raw_state = states.get(key) if is_state_key(key) else None
            state = ScheduleState.from_bytes(raw_state) if raw_state else None
            views.append(view(config, state, now, count).to_json())
        replicas = await _replicas(nc)
        return {
            "now": now.isoformat().replace("+00:00", "Z"),
            "replicas": replicas,
            "schedules": views,
        }

    result = _run(go, "schedules", nats_url, as_json)
    if as_json:
        _print_json(result)
        return
    _print_schedules(result)


def pause(
    integration: Integration, nats_url: NatsUrl = _DEFAULT_URL, as_json: AsJson = False
) -> None:
    """Pause an integration's schedule: no fire (and no warm-up) until it is resumed."""
    _check_integration_id(integration, "pause", as_json)

    async def go(nc: Any) -> dict[str, Any]:
        changed = await _set_paused(nc.jetstream(), integration, paused=True)
        return {"integration_id": integration, "paused": True, "changed": changed}

    result = _run(go, "pause", nats_url, as_json)
    if as_json:
        _print_json(result)
    elif result["changed"]:
        typer.echo(f"paused {integration}: no fire until `syncbus resume {integration}`")
    else:
        typer.echo(f"{integration} was already paused")


def resume(
    integration: Integration,
    skip_missed: Annotated[
        bool,
        typer.Option(
            help="Do not catch up the fires missed while paused (they can still be backfilled)."
        ),
    ] = False,
    nats_url: NatsUrl = _DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Resume a paused schedule; fires missed meanwhile are caught up (within the window)."""
    _check_integration_id(integration, "resume", as_json)

    async def go(nc: Any) -> dict[str, Any]:
        from syncbus_scheduler.overview import view  # noqa: PLC0415
        from syncbus_scheduler.state import ScheduleStateStore  # noqa: PLC0415
        from syncbus_shared import topology as t  # noqa: PLC0415
        from syncbus_shared.contracts import utc_now  # noqa: PLC0415

        js = nc.jetstream()
        states = ScheduleStateStore(await js.key_value(t.KV_SCHEDULE_STATE))
        now = utc_now()
        if skip_missed:
            await _require_schedule(js, integration, "resume")
            await states.move_watermark(integration, now)
        changed = await _set_paused(js, integration, paused=False)
        config, _ = await _require_schedule(js, integration, "resume")
        shown = view(config, await states.get(integration), now, 1).to_json()
        return {
            "integration_id": integration,
            "paused": False,
            "changed": changed,
            "missed": shown["missed"],
            "next": shown["next"][0] if shown["next"] else None,
        }

    result = _run(go, "resume", nats_url, as_json)
    if as_json:
        _print_json(result)
        return
    if not result["changed"]:
        typer.echo(f"{integration} was not paused")
        return
    line = f"resumed {integration}"
    upcoming = result["next"]
    if upcoming:
        line += f"; next fire {upcoming['local']} ({upcoming['utc']})"
        line += f" for {upcoming['idempotency_key']}"
    typer.echo(line)
    if result["missed"]:
        typer.echo(f"{result['missed']} fire(s) missed while paused are being caught up now")


def trigger(
    integration: Integration,
    period: Annotated[
        str | None,
        typer.Option(help="Export this (due) period instead of the one a fire now would cover."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for the scheduler's answer.")
    ] = 60.0,
    nats_url: NatsUrl = _DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Fire an integration's schedule now: its warm-up, then its request (key as scheduled)."""
    from pydantic import ValidationError  # noqa: PLC0415

    from syncbus_shared.contracts import TriggerReply, TriggerRequest  # noqa: PLC0415

    try:
        request = TriggerRequest(integration_id=integration, period_id=period)
    except ValidationError as exc:
        _fail(
            "trigger",
            str(exc.errors()[0]["msg"]).removeprefix("Value error, "),
            EXIT_USAGE,
            as_json,
        )

    async def go(nc: Any) -> dict[str, Any]:
        from nats.errors import NoRespondersError  # noqa: PLC0415
        from nats.errors import TimeoutError as NatsTimeoutError  # noqa: PLC0415

        from syncbus_shared import topology as t  # noqa: PLC0415

        try:
            msg = await nc.request(t.SCHEDULER_TRIGGER, request.to_bytes(), timeout=timeout)
        except NoRespondersError:
            raise CommandError("no scheduler replica is running", EXIT_UNAVAILABLE) from None
        except NatsTimeoutError:
            raise CommandError(
                f"the scheduler did not answer within {timeout:g} s", EXIT_UNAVAILABLE
            ) from None
        reply = TriggerReply.from_bytes(msg.data)
        if reply.error is not None:
            raise CommandError(reply.error.message, EXIT_REFUSED)
        answer: dict[str, Any] = json.loads(
            reply.model_dump_json(exclude_none=True, exclude={"type"})
        )
        return answer

    result = _run(go, "trigger", nats_url, as_json)
    if as_json:
        _print_json(result)
        return
    note = " (already requested: the broker kept the earlier copy)" if result["duplicate"] else ""
    typer.echo(
        f"triggered {result['idempotency_key']}  scheduled_for={result['scheduled_for']}  "
        f"published_at={result['published_at']}{note}"
    )


# --- helpers -------------------------------------------------------------------------------


def _run(
    work: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]],
    command: str,
    nats_url: str,
    as_json: bool,
) -> dict[str, Any]:
    """Connect, run `work(nc)`, close; every failure becomes one sentence and an exit code."""

    async def main() -> dict[str, Any]:
        from nats.errors import NoServersError  # noqa: PLC0415

        from syncbus_shared.natsclient import NatsUnreachableError  # noqa: PLC0415

        try:
            nc = await cli_connect(nats_url, f"syncbus-{command}")
        except (NatsUnreachableError, NoServersError, OSError) as exc:
            raise CommandError(
                f"cannot reach NATS at {nats_url} ({type(exc).__name__}; is the stack running?)",
                EXIT_UNAVAILABLE,
            ) from None
        try:
            return await work(nc)
        finally:
            await nc.close()

    try:
        return asyncio.run(main())
    except CommandError as exc:
        _fail(command, exc.message, exc.code, as_json)
    except Exception as exc:
        from nats.js.errors import BucketNotFoundError  # noqa: PLC0415

        if isinstance(exc, BucketNotFoundError):
            _fail(
                command,
                "NATS is not provisioned (run `syncbus provision`)",
                EXIT_UNAVAILABLE,
                as_json,
            )
        _fail(command, f"failed: {type(exc).__name__}: {exc}", EXIT_UNAVAILABLE, as_json)


def _fail(command: str, message: str, code: int, as_json: bool) -> NoReturn:
    """Print one sentence (and the JSON error object) and exit with `code`."""
    typer.echo(f"syncbus {command}: {message}", err=True)
    if as_json:
        _print_json({"error": message, "exit_code": code})
    raise typer.Exit(code)


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def _check_integration_id(integration: str, command: str, as_json: bool) -> None:
    from syncbus_shared.keys import is_integration_id  # noqa: PLC0415

    if not is_integration_id(integration):
        _fail(
            command,
            f"{integration!r} is not an integration id (1-64 letters, digits, '-' or '_')",
            EXIT_USAGE,
            as_json,
        )


async def _read_bucket(js: Any, bucket: str) -> dict[str, bytes]:
    """Every current key and value of a KV bucket (deleted keys left out)."""
    kv = await js.key_value(bucket)
    watcher = await kv.watchall(ignore_deletes=True)
    values: dict[str, bytes] = {}
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.value:
                values[entry.key] = entry.value
    finally:
        await watcher.stop()
    return values


async def _require_schedule(js: Any, integration: str, command: str) -> tuple[Any, int]:
    """The integration's config and its KV revision; CommandError if it has no schedule."""
    from nats.js.errors import KeyNotFoundError  # noqa: PLC0415

    from syncbus_shared import topology as t  # noqa: PLC0415
    from syncbus_shared.contracts import IntegrationConfig  # noqa: PLC0415

    kv = await js.key_value(t.KV_INTEGRATIONS)
    try:
        entry = await kv.get(integration)
    except KeyNotFoundError:
        raise CommandError(f"integration {integration!r} is not configured", EXIT_REFUSED) from None
    config = IntegrationConfig.from_bytes(entry.value or b"")
    if config.schedule is None:
        raise CommandError(
            f"integration {integration!r} has no schedule to {command}", EXIT_REFUSED
        )
    return config, entry.revision


async def _set_paused(js: Any, integration: str, *, paused: bool) -> bool:
    """Set `schedule.paused` with a compare-and-set; whether anything changed."""
    from nats.js.errors import KeyWrongLastSequenceError  # noqa: PLC0415

    from syncbus_shared import topology as t  # noqa: PLC0415

    kv = await js.key_value(t.KV_INTEGRATIONS)
    command = "pause" if paused else "resume"
    for _ in range(_CAS_ATTEMPTS):
        config, revision = await _require_schedule(js, integration, command)
        if config.schedule.paused is paused:
            return False
        schedule = config.schedule.model_copy(update={"paused": paused})
        updated = config.model_copy(update={"schedule": schedule})
        try:
            await kv.update(integration, updated.to_bytes(), last=revision)
        except KeyWrongLastSequenceError:
            continue  # someone wrote the config in between: read it again
        return True
    raise CommandError(f"the config of {integration!r} kept changing; try again", EXIT_UNAVAILABLE)


async def _replicas(nc: Any) -> list[dict[str, Any]]:
    """The status of every scheduler replica that answers within a moment."""
    from syncbus_shared import topology as t  # noqa: PLC0415
    from syncbus_shared.contracts import SchedulerStatus  # noqa: PLC0415

    inbox = nc.new_inbox()
    replies: list[dict[str, Any]] = []

    async def on_reply(msg: Any) -> None:
        try:
            status = SchedulerStatus.from_bytes(msg.data)
        except ValueError:
            return
        replies.append(
            {
                "instance": status.instance,
                "loaded": status.loaded,
                "schedules": status.schedules,
                "warmup_leader": status.warmup_leader,
                "clock_offset_ms": status.clock_offset_ms,
            }
        )

    sub = await nc.subscribe(inbox, cb=on_reply)
    await nc.publish(t.SCHEDULER_STATUS, b"", reply=inbox)
    await nc.flush()
    await asyncio.sleep(_STATUS_WAIT_SECONDS)  # replies from any number of replicas
    await sub.unsubscribe()
    return sorted(replies, key=lambda r: r["instance"])


def _print_schedules(result: dict[str, Any]) -> None:
    replicas = result["replicas"]
    leader = next((r["instance"] for r in replicas if r["warmup_leader"]), None)
    if replicas:
        typer.echo(
            f"{len(replicas)} scheduler replica(s) answering"
            + (f"; warm-ups sent by {leader}" if leader else "")
            + f"; now {result['now']}"
        )
    else:
        typer.echo(f"no scheduler replica answers; now {result['now']}")
    if not result["schedules"]:
        typer.echo("no integration is configured")
    for row in result["schedules"]:
        typer.echo("")
        head = f"{row['integration_id']}  {row['status']}"
        if row.get("cron"):
            what = (
                "incremental (everything staged, not yet exported)"
                if row["mode"] == "incremental"
                else f"{row['period']} (offset {row['period_offset']})"
            )
            head += f"  {row['cron']}  {row['timezone']}  {what}"
            head += f"  warm-up lead {row['lead_seconds']:g} s"
        typer.echo(head)
        if row.get("problem"):
            typer.echo(f"  problem       {row['problem']}")
        if row.get("last_key"):
            typer.echo(f"  last fired    {row['last_key']}  at {row['last_fired_for']}")
        if row.get("missed"):
            typer.echo(f"  missed        {row['missed']} fire(s) due and not yet sent")
        label = "next         " if row["status"] == "active" else "when resumed "
        for upcoming in row.get("next", []):
            typer.echo(
                f"  {label} {upcoming['local']}  = {upcoming['utc']}  "
                f"{upcoming['idempotency_key']}  (warm-up {upcoming['warmup_at']})"
            )
