"""`syncbus demo`: the main job end to end, on the embedded stack and the real SAF-T sample.

1. start nats-server, OpenBao, the Xledger and Business Central fakes and the four services
   (`embedded.demo_stack`);
2. configure the `toyen-xledger` and `toyen-bc` integrations (monthly, 00:05 Europe/Oslo);
3. import the SAF-T file into the LEDGER stream, once for each integration (the same vouchers);
4. ask the scheduler to backfill 2017-01..2017-04 for each: each fire sends its warm-up, then the
   request keyed `<integration>:<period>` — the same code path as every scheduled fire;
5. wait for one result per period and integration, read back what each fake holds, and print
   one table per integration.

Exit 0 only when every period of every integration succeeded and each fake holds each line
exactly once. The report's top-level fields describe `toyen-xledger` (as before Business
Central was added); `targets` has one entry per integration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from nats.js.api import DeliverPolicy
from rich.console import Console
from rich.table import Table

from syncbus_adapters.business_central import document_number
from syncbus_devstack import StackError
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    BackfillReply,
    BackfillRequest,
    SyncResult,
    SyncStatus,
)
from syncbus_shared.logs import configure_logging
from syncbus_shared.natsclient import connect
from syncbus_shared.saft import SaftImport, read_saft
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import stage_vouchers

from .embedded import DEMO_BC_INTEGRATION, DEMO_INTEGRATION, configure_demo, demo_stack

DEFAULT_SAFT = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "saft"
    / "SAF-T_Financial_888888888_20180228235959.xml"
).resolve()


class DemoError(Exception):
    """The demo could not run or did not succeed; the message says what went wrong."""


@dataclass(frozen=True)
class DemoRow:
    period_id: str
    vouchers: int
    lines: int
    debit: Decimal
    credit: Decimal
    status: str
    drift_ms: float | None
    duration_s: float | None
    started_warm: bool | None
    error: str | None = None


def _rows_json(rows: list[DemoRow]) -> list[dict[str, Any]]:
    return [
        {
            "period": r.period_id,
            "vouchers": r.vouchers,
            "lines": r.lines,
            "debit": str(r.debit),
            "credit": str(r.credit),
            "status": r.status,
            "drift_ms": r.drift_ms,
            "duration_s": r.duration_s,
            "started_warm": r.started_warm,
            "error": r.error,
        }
        for r in rows
    ]


@dataclass(frozen=True)
class TargetReport:
    """What one integration's fake holds after the demo, and its periods."""

    integration_id: str
    vendor: str
    rows: list[DemoRow]
    expected_lines: int
    posted_lines: int
    lines_posted_more_than_once: int
    lines_missing: int
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "integration": self.integration_id,
            "vendor": self.vendor,
            "ok": self.ok,
            "expected_lines": self.expected_lines,
            "posted_lines": self.posted_lines,
            "lines_posted_more_than_once": self.lines_posted_more_than_once,
            "lines_missing": self.lines_missing,
            "periods": _rows_json(self.rows),
        }


@dataclass(frozen=True)
class DemoReport:
    rows: list[DemoRow]
    expected_lines: int
    posted_lines: int
    lines_posted_more_than_once: int
    lines_missing: int
    ok: bool
    elapsed_s: float
    targets: tuple[TargetReport, ...] = ()
    """Every integration of the demo, `toyen-xledger` (the fields above) first."""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "expected_lines": self.expected_lines,
            "posted_lines": self.posted_lines,
            "lines_posted_more_than_once": self.lines_posted_more_than_once,
            "lines_missing": self.lines_missing,
            "periods": _rows_json(self.rows),
            "targets": [target.to_json() for target in self.targets],
        }


def _load(file: Path) -> SaftImport:
    if not file.is_file():
        raise DemoError(f"SAF-T file not found: {file}")
    imported = read_saft(file)
    if imported.problems:
        lines = "\n".join(f"  - {p}" for p in imported.problems)
        raise DemoError(f"{file.name} cannot be imported:\n{lines}")
    return imported


async def run_demo(
    file: Path,
    state_dir: Path,
    *,
    console: Console,
    result_timeout: float = 120.0,
    token: str | None = None,
    bc_client_secret: str | None = None,
) -> DemoReport:
    began = time.perf_counter()
    imported = _load(file)
    periods = sorted({v.period_id for v in imported.vouchers})
    expected_clients = Counter(
        f"{v.voucher_id}#{line.record_id}" for v in imported.vouchers for line in v.lines
    )
    async with demo_stack(state_dir, token=token) as stack:
        console.print(f"[dim]embedded stack up in {time.perf_counter() - began:.1f} s[/dim]")
        for line in stack.describe():
            console.print(f"[dim]  {line}[/dim]")
        nc = await connect(NatsSettings(url=stack.nats_url), "syncbus-demo")
        try:
            js = nc.jetstream()
            fake = stack.fake_urls["xledger"]
            async with httpx.AsyncClient(base_url=fake, timeout=10.0) as http:
                # A cold first request after idle, as real vendors have; warm-ups absorb it.
                await http.post(
                    "/_fake/faults", json={"cold_start": {"idle_seconds": 60, "extra_seconds": 0.8}}
                )
                await configure_demo(js, stack, bc_client_secret=bc_client_secret)
                for integration_id in (DEMO_INTEGRATION, DEMO_BC_INTEGRATION):
                    staged = await stage_vouchers(js, integration_id, imported.vouchers)
                    console.print(
                        f"imported {file.name} for {integration_id}: "
                        f"{len(imported.vouchers)} vouchers, "
                        f"{sum(len(v.lines) for v in imported.vouchers)} lines "
                        f"({staged.staged} staged, {staged.already_staged} already staged)"
                    )
                collected = await asyncio.gather(
                    _backfill_and_collect(nc, js, periods, result_timeout, console),
                    _backfill_and_collect(
                        nc, js, periods, result_timeout, console, integration_id=DEMO_BC_INTEGRATION
                    ),
                )
                results, bc_results = collected
                postings = (await http.get("/_fake/postings")).json()
            bc_fake = stack.fake_urls["business_central"]
            async with httpx.AsyncClient(base_url=bc_fake, timeout=10.0) as bc_http:
                bc_counts = (await bc_http.get("/_fake/postings/counts")).json()
        finally:
            await nc.close()
    expected_amounts = {
        f"{v.voucher_id}#{line.record_id}": line.signed_amount
        for v in imported.vouchers
        for line in v.lines
    }
    posted, amounts = _posted_lines(_posted_nodes(postings))
    rows = [_row(results[p]) for p in periods]
    twice = sum(1 for c, n in posted.items() if n > 1 and c in expected_clients)
    # A line is there only when all its parts are: their amounts add up to the line's.
    missing = sum(
        1
        for c in expected_clients
        if posted.get(c, 0) == 0 or amounts.get(c) != expected_amounts[c]
    )
    unexpected = sum(1 for c in posted if c not in expected_clients)
    ok = (
        all(r.status == SyncStatus.SUCCEEDED.value for r in rows)
        and twice == 0
        and missing == 0
        and unexpected == 0
    )
    xledger = TargetReport(
        integration_id=DEMO_INTEGRATION,
        vendor="xledger",
        rows=rows,
        expected_lines=sum(expected_clients.values()),
        posted_lines=len(posted),
        lines_posted_more_than_once=twice,
        lines_missing=missing,
        ok=ok,
    )
    business_central = _business_central_target(imported, periods, bc_results, bc_counts)
    return DemoReport(
        rows=rows,
        expected_lines=sum(expected_clients.values()),
        posted_lines=len(posted),
        lines_posted_more_than_once=twice,
        lines_missing=missing,
        ok=ok and business_central.ok,
        elapsed_s=time.perf_counter() - began,
        targets=(xledger, business_central),
    )


def _business_central_target(
    imported: SaftImport,
    periods: list[str],
    results: dict[str, SyncResult],
    counts: dict[str, Any],
) -> TargetReport:
    """Each voucher is one document in Business Central: posted by exactly one post, with as
    many G/L entries as the voucher has lines (one journal line per SAF-T line)."""
    posts: dict[str, int] = counts.get("documents", {})
    entries: dict[str, int] = counts.get("lines", {})
    expected = {document_number(v.voucher_id): len(v.lines) for v in imported.vouchers}
    posted = sum(min(entries.get(doc, 0), lines) for doc, lines in expected.items())
    twice = sum(
        lines
        for doc, lines in expected.items()
        if posts.get(doc, 0) > 1 or entries.get(doc, 0) > lines
    )
    missing = sum(max(lines - entries.get(doc, 0), 0) for doc, lines in expected.items())
    unexpected = sum(n for doc, n in entries.items() if doc not in expected)
    rows = [_row(results[p]) for p in periods]
    ok = (
        all(r.status == SyncStatus.SUCCEEDED.value for r in rows)
        and twice == 0
        and missing == 0
        and unexpected == 0
    )
    return TargetReport(
        integration_id=DEMO_BC_INTEGRATION,
        vendor="business_central",
        rows=rows,
        expected_lines=sum(expected.values()),
        posted_lines=posted,
        lines_posted_more_than_once=twice,
        lines_missing=missing,
        ok=ok,
    )


_PER_SUBJECT_LIMIT = 10077
"""nats-server: "maximum messages per subject exceeded" (the voucher is staged already)."""


def _posted_lines(nodes: list[dict[str, Any]]) -> tuple[Counter[str], dict[str, Decimal]]:
    """How many times each SAF-T line (`<voucher>#<record>`) was posted, and the posted total.

    Xledger lines that split one SAF-T line over several dimension values carry the clientId
    `<voucher>#<record>.<n>`: the parts of one posting count as that line posted once, and a
    repeated part as posted twice. The total is the sum of the parts' amounts (for a line
    posted once it must equal the line's signed amount).
    """
    parts: Counter[str] = Counter(str(node["clientId"]) for node in nodes)
    lines: Counter[str] = Counter()
    totals: dict[str, Decimal] = {}
    for node in nodes:
        client_id = str(node["clientId"])
        base = client_id.rsplit(".", 1)[0] if "." in client_id.split("#", 1)[-1] else client_id
        lines[base] = max(lines[base], parts[client_id])
        amount = Decimal(str((node.get("node") or {}).get("amount", "0")))
        totals[base] = totals.get(base, Decimal(0)) + amount
    return lines, totals


def _posted_nodes(postings: Any) -> list[dict[str, Any]]:
    items = postings.get("postings", postings) if isinstance(postings, dict) else postings
    return [item for item in items if isinstance(item, dict) and "clientId" in item]


async def _backfill_and_collect(
    nc: Any,
    js: Any,
    periods: list[str],
    timeout: float,
    console: Console,
    *,
    integration_id: str = DEMO_INTEGRATION,
) -> dict[str, SyncResult]:
    results: dict[str, SyncResult] = {}
    done = asyncio.Event()

    async def on_result(msg: Any) -> None:
        result = SyncResult.from_bytes(msg.data)
        if result.period_id in periods and result.status is not SyncStatus.DUPLICATE:
            results[result.period_id] = result
            console.print(
                f"  {integration_id} {result.period_id}: {result.status.value} "
                f"({result.vouchers} vouchers, {result.lines} lines)"
            )
            if len(results) == len(periods):
                done.set()
        await msg.ack()

    sub = await js.subscribe(
        t.result_subject(integration_id),
        cb=on_result,
        deliver_policy=DeliverPolicy.NEW,
        manual_ack=True,
    )
    try:
        request = BackfillRequest(
            integration_id=integration_id, from_period=periods[0], to_period=periods[-1]
        )
        console.print(
            f"scheduler: backfilling {integration_id} {periods[0]} .. {periods[-1]} "
            "(warm-up, then request)"
        )
        reply_msg = await nc.request(t.SCHEDULER_BACKFILL, request.to_bytes(), timeout=timeout)
        reply = BackfillReply.from_bytes(reply_msg.data)
        if reply.error is not None:
            raise DemoError(f"the scheduler refused the backfill: {reply.error.message}")
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            missing = [p for p in periods if p not in results]
            raise DemoError(
                f"no result within {timeout:.0f} s for {integration_id} {', '.join(missing)}; "
                "see the service logs"
            ) from None
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return results


def _row(result: SyncResult) -> DemoRow:
    duration = None
    if result.started_at is not None:
        duration = (result.finished_at - result.started_at).total_seconds()
    return DemoRow(
        period_id=result.period_id or "?",
        vouchers=result.vouchers,
        lines=result.lines,
        debit=result.debit_total,
        credit=result.credit_total,
        status=result.status.value,
        drift_ms=result.schedule_drift_ms,
        duration_s=duration,
        started_warm=result.started_warm,
        error=None
        if result.error is None
        else f"{result.error.error_class}: {result.error.message}",
    )


_TITLES = {"xledger": "Xledger", "business_central": "Business Central"}


def render(report: DemoReport, console: Console) -> None:
    targets = report.targets or (
        TargetReport(
            DEMO_INTEGRATION,
            "xledger",
            report.rows,
            report.expected_lines,
            report.posted_lines,
            report.lines_posted_more_than_once,
            report.lines_missing,
            report.ok,
        ),
    )
    for target in targets:
        _render_target(target, console)
    verdict = "[green]OK[/green]" if report.ok else "[red]FAILED[/red]"
    console.print(f"{verdict} ({report.elapsed_s:.1f} s in all)")


def _render_target(report: TargetReport, console: Console) -> None:
    vendor = _TITLES.get(report.vendor, report.vendor)
    table = Table(title=f"syncbus demo: SAF-T sample → {vendor} (fake), {report.integration_id}")
    for name, justify in [
        ("period", "left"),
        ("vouchers", "right"),
        ("lines", "right"),
        ("debit", "right"),
        ("credit", "right"),
        ("status", "left"),
        ("drift", "right"),
        ("duration", "right"),
        ("warm", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in report.rows:
        table.add_row(
            r.period_id,
            str(r.vouchers),
            str(r.lines),
            f"{r.debit:,.2f}",
            f"{r.credit:,.2f}",
            ("[green]" if r.status == "succeeded" else "[red]") + r.status,
            "-" if r.drift_ms is None else f"{r.drift_ms:.1f} ms",
            "-" if r.duration_s is None else f"{r.duration_s * 1000:.0f} ms",
            {True: "warm", False: "cold", None: "-"}[r.started_warm],
        )
    console.print(table)
    for r in report.rows:
        if r.error:
            console.print(f"[red]{r.period_id}: {r.error}[/red]")
    verdict = "[green]OK[/green]" if report.ok else "[red]FAILED[/red]"
    console.print(
        f"{verdict}: the {vendor} fake holds {report.posted_lines} of {report.expected_lines} "
        f"lines; {report.lines_posted_more_than_once} posted more than once, "
        f"{report.lines_missing} missing"
    )


def main(file: Path, state_dir: Path | None, *, as_json: bool, keep: bool) -> int:
    configure_logging("syncbus-demo", "WARNING")  # the stack's own logs go to its log files
    stream = sys.stderr if as_json else sys.stdout
    console = Console(file=stream, width=None if stream.isatty() else 110)
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            tmp = tempfile.mkdtemp(prefix="syncbus-demo-")
            state_dir = Path(tmp)
            if not keep:
                stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        try:
            report = asyncio.run(run_demo(file, state_dir, console=console))
        except (DemoError, StackError) as exc:
            console.print(f"[red]syncbus demo: {exc}[/red]")
            return 1
        except KeyboardInterrupt:
            console.print("[yellow]syncbus demo: interrupted[/yellow]")
            return 130
        if as_json:
            print(json.dumps(report.to_json()))
        else:
            render(report, console)
        if keep:
            console.print(f"[dim]state and logs kept in {state_dir}[/dim]")
        return 0 if report.ok else 1
