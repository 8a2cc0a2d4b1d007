"""`syncbus import-saft FILE`: stage a SAF-T Financial file's transactions as vouchers.

The file is imported whole or not at all. It is read and checked completely first
(`syncbus_shared.saft`); if anything is wrong, each problem is printed as one line on stderr,
nothing is staged, NATS is not even contacted, and the exit code is 1. Otherwise every voucher
is staged on its own `ledger.<integration>.<period>.<voucher>` subject, where a voucher that is
already there is refused by the stream, so importing the same file again stages nothing new
and says so. Should staging stop half-way (NATS gone), running the same command again finishes
the job.

Exit codes: 0 done, 1 the file has problems or staging failed, 2 usage (no such file, bad
integration id). `--dry-run` reads and checks the file and connects to nothing. `--json` prints
one JSON object on stdout:

    {"vouchers": 53, "lines": 170,
     "periods": {"2017-01": {"vouchers": 14, "lines": 41, "debit": "...", "credit": "..."}, ...}}

preceded, when staging, by `"staged"` and `"already_staged"` counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import structlog
import typer
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NoStreamResponseError
from rich.console import Console
from rich.table import Table

from syncbus_shared.contracts import Voucher
from syncbus_shared.keys import is_integration_id
from syncbus_shared.natsclient import connect
from syncbus_shared.saft import SaftImport, money_text, read_saft
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import StageReport, stage_vouchers

__all__ = ["import_saft"]

DEFAULT_INTEGRATION = "toyen-xledger"
_CLIENT_NAME = "syncbus-cli-import-saft"


class _StagingError(Exception):
    """Staging could not be done; the message is the one sentence the user sees."""


def import_saft(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=True,
            dir_okay=False,
            readable=True,
            help="A SAF-T Financial XML file.",
        ),
    ],
    integration: Annotated[
        str,
        typer.Option("--integration", help="The integration whose ledger the vouchers join."),
    ] = DEFAULT_INTEGRATION,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read and check the file only; connect to nothing."),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object instead of a table."),
    ] = False,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats-url",
            help="NATS server URL(s), comma-separated.",
            show_default="$SYNCBUS_NATS_URL, else nats://127.0.0.1:4222",
        ),
    ] = None,
) -> None:
    """Import a SAF-T Financial file as vouchers: all of it, or nothing if anything is wrong."""
    if not is_integration_id(integration):
        raise typer.BadParameter(
            "an integration id is 1-64 letters, digits, '-' or '_'", param_hint="--integration"
        )
    try:
        result = read_saft(file)
    except OSError as exc:
        _error(f"{file}: cannot be read ({exc.strerror or type(exc).__name__})")
        raise typer.Exit(2) from None

    if not result.ok:
        for problem in result.problems:
            _error(f"{file}: {problem}")
        count = len(result.problems)
        _error(
            f"{file}: refused, nothing staged: {count} problem{'' if count == 1 else 's'} "
            "(a file is imported whole or not at all)"
        )
        raise typer.Exit(1)

    if dry_run:
        _report(result, None, json_output=json_output, dry_run=True, integration=integration)
        return

    settings = NatsSettings() if nats_url is None else NatsSettings(url=nats_url)
    try:
        with _quiet_logs():
            report = asyncio.run(_stage(settings, integration, result.vouchers))
    except _StagingError as exc:
        _error(f"{file}: {exc}")
        raise typer.Exit(1) from None
    except Exception as exc:  # one line, never a traceback
        _error(f"{file}: staging failed ({type(exc).__name__}: {exc})")
        raise typer.Exit(1) from None
    _report(result, report, json_output=json_output, dry_run=False, integration=integration)


# --- staging ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Only errors are logged while staging, and the logging setup is put back afterwards.

    The shared NATS client logs a warning for every failed connection attempt, which would
    bury the one sentence this command prints (and, with structlog unconfigured, land on
    stdout, where `--json` output goes).
    """
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


async def _stage(
    settings: NatsSettings, integration: str, vouchers: Sequence[Voucher]
) -> StageReport:
    where = _shown_url(settings.url)
    try:
        # `connect` retries for ever, as services should; a command waits a bounded time.
        nc = await asyncio.wait_for(
            connect(settings, _CLIENT_NAME), timeout=settings.connect_timeout_seconds
        )
    except TimeoutError:
        raise _StagingError(
            f"NATS is unreachable at {where}: no connection within "
            f"{settings.connect_timeout_seconds:g} s; nothing was staged"
        ) from None
    except (OSError, NatsError) as exc:
        raise _StagingError(
            f"NATS is unreachable at {where} ({type(exc).__name__}); nothing was staged"
        ) from None
    staged = already = 0
    try:
        js = nc.jetstream()
        for voucher in vouchers:
            try:
                one = await stage_vouchers(js, integration, [voucher])
            except (NoRespondersError, NoStreamResponseError) as exc:
                if staged + already == 0:
                    raise _StagingError(
                        f"NATS at {where} has no JetStream stream for ledger subjects (is it "
                        "provisioned? `syncbus dev` does that); nothing was staged"
                    ) from None
                raise _StagingError(_stopped(staged + already, len(vouchers), exc)) from None
            except (TimeoutError, NatsError, JetStreamError) as exc:
                raise _StagingError(_stopped(staged + already, len(vouchers), exc)) from None
            staged += one.staged
            already += one.already_staged
    finally:
        with contextlib.suppress(TimeoutError, NatsError):
            await asyncio.wait_for(nc.close(), timeout=settings.connect_timeout_seconds)
    return StageReport(staged=staged, already_staged=already)


def _stopped(done: int, total: int, exc: Exception) -> str:
    return (
        f"staging stopped after {done} of {total} vouchers "
        f"({type(exc).__name__}: {_one_line(str(exc))}); run the same command again, "
        "vouchers already staged are skipped"
    )


def _shown_url(url: str) -> str:
    """The server URL(s) without any user or password in them: CLI output never shows secrets."""
    shown: list[str] = []
    for part in url.split(","):
        text = part.strip()
        if not text:
            continue
        parts = urlsplit(text if "://" in text else f"nats://{text}")
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:
            port = None
        netloc = f"{host}:{port}" if port is not None else host
        shown.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    return ",".join(shown) or "(no server)"


# --- output -----------------------------------------------------------------------------------


def _error(message: str) -> None:
    typer.echo(_one_line(message), err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _report(
    result: SaftImport,
    report: StageReport | None,
    *,
    json_output: bool,
    dry_run: bool,
    integration: str,
) -> None:
    summary = result.summary()
    if json_output:
        document: dict[str, Any] = {}
        if report is not None:
            document = {"staged": report.staged, "already_staged": report.already_staged}
        document.update(summary)
        typer.echo(json.dumps(document, ensure_ascii=False))
        return

    console = Console(highlight=False)
    table = Table(
        title=f"{result.company_name or result.company_id} ({result.company_id})",
        caption=f"SAF-T {Path(result.source).name}",
    )
    table.add_column("period")
    table.add_column("vouchers", justify="right")
    table.add_column("lines", justify="right")
    table.add_column(f"debit {result.currency or ''}".strip(), justify="right")
    table.add_column(f"credit {result.currency or ''}".strip(), justify="right")
    for period, totals in summary["periods"].items():
        table.add_row(
            period,
            str(totals["vouchers"]),
            str(totals["lines"]),
            totals["debit"],
            totals["credit"],
        )
    table.add_section()
    table.add_row(
        "total",
        str(summary["vouchers"]),
        str(summary["lines"]),
        money_text(result.debit_total),
        money_text(result.credit_total),
    )
    console.print(table)
    if dry_run or report is None:
        console.print(f"dry run: {summary['vouchers']} vouchers checked, nothing staged")
    else:
        console.print(
            f"integration {integration}: staged {report.staged} vouchers, "
            f"{report.already_staged} were already staged"
        )
