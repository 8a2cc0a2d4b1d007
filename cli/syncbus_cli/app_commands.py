"""`syncbus request`, `syncbus runs`, `syncbus watch`: what an application does, from the shell.

    syncbus request INTEGRATION --period P [--key K] [--wait SECONDS] [--json]
    syncbus runs [--integration ID] [--limit N] [--json]
    syncbus watch [INTEGRATION] [--until-results N] [--timeout SECONDS] [--json]

`request` publishes a sync request through `syncbus_client` (Nats-Msg-Id = the key) and prints
the receipt; with `--wait` it also waits for the request's final result. `runs` lists the most
recent final results from SYNC_RESULTS (newest first) with status, drift and duration, after the
runs still in progress in KV `sync-runs`. `watch` shows a live progress bar per running sync
(`sync.progress.*`), then each result as it arrives (`sync.result.*`), until Ctrl-C.

With `--json` each prints only JSON on stdout: `request` one object (`request_id`,
`idempotency_key`, `duplicate`, and `result` with `--wait`), `runs` one array, `watch` one object
a line (`{"event": "watching" | "progress" | "result", ...}`). Errors go to stderr, one sentence.

Exit codes, for scripts:

    0    done: published (with --wait: the result is `succeeded` or `duplicate`); listed (also
         when there is nothing); watched the --until-results asked for
    1    NATS cannot be reached, or did not confirm the request (publishing again is safe)
    2    the command line is wrong (an integration id, period id or key the contract refuses)
    3    --wait: the result is `failed` or `rejected`
    4    --wait / watch --timeout: no result in time
    130  watch: stopped with Ctrl-C
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from syncbus_client import (
    ConnectError,
    InvalidRequestError,
    PublishError,
    RequestReceipt,
    ResultTimeoutError,
    SyncbusClient,
    SyncProgress,
    SyncRequest,
    SyncResult,
    SyncStatus,
)
from syncbus_shared import topology as t
from syncbus_shared.contracts import RequestOrigin, RunRecord, RunState, utc_now
from syncbus_shared.keys import is_integration_id
from syncbus_shared.natsclient import NatsTlsConfigError, NatsUnreachableError

from .common import NatsSettingsError, NatsUrl, cli_connect, err

__all__ = ["register"]

T = TypeVar("T")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130
RUNNING_LOOKBACK = 500
"""How many of the latest `sync-runs` writes `runs` reads for runs in progress."""

_STATUS_STYLE = {
    SyncStatus.SUCCEEDED: "green",
    SyncStatus.DUPLICATE: "cyan",
    SyncStatus.FAILED: "red",
    SyncStatus.REJECTED: "yellow",
}


def _check_integration(command: str, integration: str | None) -> None:
    if integration is not None and not is_integration_id(integration):
        raise _fail(
            command,
            f"{integration[:80]!r} is not an integration id (1-64 letters, digits, '-' or '_')",
            EXIT_USAGE,
        )


def _fail(command: str, message: str, code: int) -> typer.Exit:
    err.print(f"[red]syncbus {command}: {message}[/red]", markup=True, highlight=False)
    return typer.Exit(code)


def _run(command: str, nats_url: str, work: Callable[[SyncbusClient], Awaitable[T]]) -> T:
    """Connect, run `work`, close; NATS and client errors become one sentence and an exit code."""

    async def go() -> T:
        # The command's own NATS settings (user, password, inbox prefix, TLS from
        # SYNCBUS_NATS_*), as every other command connects, then the client on that connection.
        nc = await cli_connect(nats_url, f"syncbus-{command}")
        async with SyncbusClient(nc, close_connection=True) as client:
            return await work(client)

    try:
        return asyncio.run(go())
    except (ConnectError, NatsUnreachableError) as exc:
        raise _fail(
            command, f"{exc} (is the stack running? see --nats-url)", EXIT_UNREACHABLE
        ) from None
    except (NatsSettingsError, NatsTlsConfigError) as exc:
        raise _fail(command, str(exc), EXIT_USAGE) from None
    except InvalidRequestError as exc:
        raise _fail(command, str(exc), EXIT_USAGE) from None
    except PublishError as exc:
        raise _fail(command, str(exc), EXIT_UNREACHABLE) from None
    except ResultTimeoutError as exc:
        raise _fail(command, str(exc), EXIT_TIMEOUT) from None
    except (OSError, TimeoutError) as exc:  # nats-py's errors are OSErrors too
        raise _fail(command, f"NATS failed ({type(exc).__name__})", EXIT_UNREACHABLE) from None


# --- presenting results -----------------------------------------------------------------------


def _seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def duration_ms(result: SyncResult) -> float | None:
    if result.started_at is None:
        return None
    return (result.finished_at - result.started_at).total_seconds() * 1000


def result_json(result: SyncResult) -> dict[str, Any]:
    body: dict[str, Any] = result.model_dump(mode="json", exclude_none=True)
    body["duration_ms"] = duration_ms(result)
    return body


def result_line(result: SyncResult) -> str:
    """One line a person reads: status, key, counts, totals, drift, duration, error."""
    parts = [f"{result.status.value}", result.idempotency_key or result.request_id]
    if result.status is SyncStatus.DUPLICATE:
        parts.append(f"(already exported by request {result.duplicate_of or '?'}; nothing sent)")
    else:
        parts.append(
            f"{result.vouchers} voucher(s), {result.lines} line(s), "
            f"debit {result.debit_total} / credit {result.credit_total}"
        )
        if result.already_exported:
            parts.append(f"({result.already_exported} left out: exported under another key)")
    duration = duration_ms(result)
    if duration is not None:
        parts.append(f"in {_seconds(duration)}")
    if result.schedule_drift_ms is not None:
        parts.append(f"drift {_seconds(result.schedule_drift_ms)}")
    if result.error is not None:
        parts.append(f"[{result.error.error_class.value}] {result.error.message}")
    return "  ".join(parts)


def _receipt_json(receipt: RequestReceipt) -> dict[str, Any]:
    return receipt.as_dict()


# --- request ----------------------------------------------------------------------------------


def request_command(
    integration: Annotated[str, typer.Argument(help="Integration id, e.g. toyen-xledger.")],
    period: Annotated[
        str, typer.Option("--period", "-p", help="Period id to export: 2017-01, 2017-W05, 2017-Q1.")
    ],
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key (default `<integration>:<period>`)."),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(help="Also wait this many seconds for the request's final result."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
) -> None:
    """Request the export of one period (its staged vouchers), exactly once per key.

    Asking again with the same key publishes nothing new within the broker's dedup window and
    prints the request that holds the key (duplicate). Exit 0 published (with --wait: succeeded
    or duplicate), 1 NATS unreachable, 2 invalid arguments, 3 failed or rejected, 4 no result
    within --wait seconds.
    """

    # Checked before connecting, so that a wrong argument is exit 2 whether NATS is up or not.
    _check_integration("request", integration)
    try:
        request = SyncRequest.model_validate(
            {
                "integration_id": integration,
                "period_id": period,
                "idempotency_key": key or "",
                "origin": RequestOrigin.CLI,
            }
        )
    except ValidationError as exc:
        raise _fail("request", str(InvalidRequestError.from_validation_error(exc)), 2) from None

    async def work(client: SyncbusClient) -> tuple[RequestReceipt, SyncResult | None]:
        receipt = await client.publish_request(request)
        if not as_json:
            _print_receipt(receipt)
        if wait is None:
            return receipt, None
        return receipt, await client.await_result(receipt, timeout=wait)

    receipt, result = _run("request", nats_url, work)
    if as_json:
        body = _receipt_json(receipt)
        if result is not None:
            body["result"] = result_json(result)
        typer.echo(json.dumps(body))
    elif result is not None:
        Console(soft_wrap=True).print(
            result_line(result), style=_STATUS_STYLE[result.status], highlight=False
        )
    if result is not None and result.status in (SyncStatus.FAILED, SyncStatus.REJECTED):
        raise typer.Exit(EXIT_FAILED)


def _print_receipt(receipt: RequestReceipt) -> None:
    if receipt.duplicate:
        typer.echo(
            f"already requested: {receipt.idempotency_key} is held by request "
            f"{receipt.request_id} (nothing new was published)"
        )
    else:
        typer.echo(f"requested {receipt.idempotency_key} (request {receipt.request_id})")


# --- runs -------------------------------------------------------------------------------------


async def running_runs(
    js: JetStreamContext, integration: str | None, lookback: int = RUNNING_LOOKBACK
) -> list[RunRecord]:
    """Runs claimed and not finished, whose lease still holds, from the latest KV writes."""
    stream = f"KV_{t.KV_SYNC_RUNS}"
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return []
    start = max(info.state.first_seq, info.state.last_seq - lookback + 1)
    sub = await js.pull_subscribe(
        f"$KV.{t.KV_SYNC_RUNS}.>",
        stream=stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    latest: dict[str, RunRecord | None] = {}
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            msgs = await sub.fetch(min(pending, 256), timeout=5.0)
            pending -= len(msgs)
            for msg in msgs:
                record = None
                if msg.data and (msg.headers or {}).get("KV-Operation") is None:
                    with contextlib.suppress(ValidationError):
                        record = RunRecord.from_bytes(msg.data)
                latest[msg.subject] = record
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    now = utc_now()
    return [
        r
        for r in latest.values()
        if r is not None
        and r.state is RunState.CLAIMED
        and r.lease_until > now
        and (integration is None or r.integration_id == integration)
    ]


def _table_console() -> Console:
    """A terminal's own width; 200 columns when the output goes to a file or a pipe."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _when(instant: datetime | None) -> str:
    return instant.astimezone().strftime("%Y-%m-%d %H:%M:%S") if instant else "-"


def runs_command(
    integration: Annotated[
        str | None, typer.Option("--integration", "-i", help="Only this integration's runs.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, help="How many recent results to show.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
) -> None:
    """Recent runs, newest first: runs in progress, then final results with status, drift and
    duration.

    Exit 0 (also when there are none), 1 NATS unreachable, 2 invalid integration id.
    """

    _check_integration("runs", integration)

    async def work(client: SyncbusClient) -> tuple[list[RunRecord], list[SyncResult]]:
        results = await client.recent_results(integration, limit=limit)
        running = await running_runs(client.nc.jetstream(), integration)
        return running, results[::-1]

    running, results = _run("runs", nats_url, work)
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "status": "running",
                "integration_id": r.integration_id,
                "idempotency_key": r.idempotency_key,
                "request_id": r.request_id,
                "attempt": r.attempt,
                "owner": r.owner,
                "claimed_at": r.claimed_at.isoformat(),
                "exported_vouchers": len(r.exported_voucher_ids),
            }
            for r in running
        ]
        rows += [result_json(result) for result in results]
        typer.echo(json.dumps(rows))
        return
    if not running and not results:
        typer.echo("no runs yet" + (f" for {integration}" if integration else ""))
        return
    table = Table()
    for column in ("finished", "integration", "key", "status", "vouchers", "lines", "drift"):
        table.add_column(column, justify="right" if column in {"vouchers", "lines"} else "left")
    table.add_column("duration")
    table.add_column("error", overflow="fold")
    for record in running:
        attempt = f" (attempt {record.attempt})" if record.attempt > 1 else ""
        table.add_row(
            f"since {_when(record.claimed_at)}",
            record.integration_id,
            record.idempotency_key,
            f"[blue]running{attempt}[/blue]",
            str(len(record.exported_voucher_ids)),
            "",
            "",
            "",
            "",
        )
    for result in results:
        style = _STATUS_STYLE[result.status]
        attempt = f" (attempt {result.attempt})" if result.attempt > 1 else ""
        error = f"{result.error.error_class.value}: {result.error.message}" if result.error else ""
        table.add_row(
            _when(result.finished_at),
            result.integration_id,
            result.idempotency_key or "",
            f"[{style}]{result.status.value}{attempt}[/{style}]",
            str(result.vouchers),
            str(result.lines),
            _seconds(result.schedule_drift_ms),
            _seconds(duration_ms(result)),
            error[:120],
        )
    _table_console().print(table)


# --- watch ------------------------------------------------------------------------------------


class _Bars:
    """One progress bar per running request; a result line replaces its bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def update(self, event: SyncProgress) -> None:
        task = self.tasks.get(event.request_id)
        total = max(event.vouchers_total, 1)
        if task is None:
            task = self.progress.add_task(event.idempotency_key, total=total, batches="")
            self.tasks[event.request_id] = task
        self.progress.update(
            task,
            total=total,
            completed=event.vouchers_done,
            batches=f"batch {event.batches_done}/{event.batches_total}",
        )

    def finish(self, result: SyncResult) -> None:
        task = self.tasks.pop(result.request_id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.console.print(
            result_line(result), style=_STATUS_STYLE[result.status], highlight=False
        )


def watch_command(
    integration: Annotated[
        str | None, typer.Argument(help="Only this integration (default: every one).")
    ] = None,
    until_results: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many results (for scripts).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (exit 4).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line on stdout.")
    ] = False,
    nats_url: NatsUrl = DEFAULT_NATS_URL,
) -> None:
    """Live progress of running syncs as bars, then each final result, until Ctrl-C.

    Progress is core NATS (what is sent while watching); results come from SYNC_RESULTS from now
    on. Exit 0 after --until-results, 1 NATS unreachable, 2 invalid integration id, 4 timeout
    before --until-results, 130 Ctrl-C.
    """

    _check_integration("watch", integration)

    async def work(client: SyncbusClient) -> int:
        queue: asyncio.Queue[SyncProgress | SyncResult] = asyncio.Queue()
        progress_feed = client.progress(integration)
        results = client.results(integration, start="new")
        await progress_feed.open()
        await results.open()

        async def pump(feed: Any) -> None:
            async for item in feed:
                await queue.put(item)

        pumps = [asyncio.create_task(pump(progress_feed)), asyncio.create_task(pump(results))]
        bars: _Bars | None = None
        progress: Progress | None = None
        if as_json:
            subjects = [progress_feed.subject, results.subject]
            typer.echo(json.dumps({"event": "watching", "subjects": subjects}))
        else:
            progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("vouchers  {task.fields[batches]}"),
                TimeElapsedColumn(),
                console=Console(soft_wrap=True),
                transient=True,  # bars are live only; the result lines stay
            )
            progress.start()
            bars = _Bars(progress)
            progress.console.print(
                f"watching {progress_feed.subject} and {results.subject} (Ctrl-C stops)"
            )
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while until_results is None or seen < until_results:
                wait = None if deadline is None else deadline - loop.time()
                try:
                    if wait is not None and wait <= 0:
                        raise TimeoutError  # noqa: TRY301 - one way out for both cases
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    # Watching for --timeout seconds is done; waiting for results that
                    # did not come is not.
                    return EXIT_TIMEOUT if until_results is not None else 0
                if isinstance(item, SyncResult):
                    seen += 1
                if as_json:
                    event = "result" if isinstance(item, SyncResult) else "progress"
                    body = (
                        result_json(item)
                        if isinstance(item, SyncResult)
                        else item.model_dump(mode="json")
                    )
                    typer.echo(json.dumps({"event": event, **body}))
                elif bars is not None:
                    if isinstance(item, SyncResult):
                        bars.finish(item)
                    else:
                        bars.update(item)
            return 0
        finally:
            if progress is not None:
                progress.stop()
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    try:
        code = _run("watch", nats_url, work)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if code == EXIT_TIMEOUT:
        raise _fail("watch", f"fewer than {until_results} result(s) within {timeout:g} s", code)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("request")(request_command)
    app.command("runs")(runs_command)
    app.command("watch")(watch_command)
