"""`syncbus import-saft` through typer's CliRunner, on a tiny app that registers the command.

Staging against a real NATS server lives with the `jetstream` fixture; here NATS is either not
reached at all (dry run, refused files, an unreachable server) or replaced by a recorder of what
would have been staged, to check what the command prints.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import syncbus_cli.import_saft as command
from syncbus_cli.import_saft import import_saft
from syncbus_shared.contracts import Voucher
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import StageReport

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "saft"
REAL = DATA / "SAF-T_Financial_888888888_20180228235959.xml"
XMLSPY = DATA / "SAF-T_Financial_v1.30_xmlspy_example.xml"


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("import-saft")(import_saft)

    @app.command("version")
    def version() -> None:  # a second command, so that the command name is part of the call
        typer.echo("0")

    return app


def run(*args: str) -> Any:
    return CliRunner().invoke(make_app(), ["import-saft", *args])


def expected_periods() -> dict[str, dict[str, Any]]:
    """Per period, from the XML text with regexes and Decimal, independently of the importer."""
    text = REAL.read_bytes().decode("utf-8")
    periods: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"<n1:Transaction>(.*?)</n1:Transaction>", text, flags=re.DOTALL):
        year = re.search(r"<n1:PeriodYear>(\d+)<", block)
        month = re.search(r"<n1:Period>(\d+)<", block)
        assert year
        assert month
        entry = periods.setdefault(
            f"{year.group(1)}-{int(month.group(1)):02d}",
            {"vouchers": 0, "lines": 0, "debit": Decimal(0), "credit": Decimal(0)},
        )
        entry["vouchers"] += 1
        entry["lines"] += block.count("<n1:Line>")
        for side, key in (("DebitAmount", "debit"), ("CreditAmount", "credit")):
            for amount in re.findall(rf"<n1:{side}>\s*<n1:Amount>([^<]*)<", block):
                entry[key] += Decimal(amount)
    return {
        period: {**entry, "debit": f"{entry['debit']:.2f}", "credit": f"{entry['credit']:.2f}"}
        for period, entry in sorted(periods.items())
    }


@pytest.fixture
def no_nats(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if the command tries to connect or stage; records any attempt."""
    attempts: list[str] = []

    async def connect(*_: Any, **__: Any) -> Any:
        attempts.append("connect")
        raise AssertionError("the command must not connect to NATS here")

    async def stage(*_: Any, **__: Any) -> StageReport:
        attempts.append("stage")
        raise AssertionError("the command must not stage here")

    monkeypatch.setattr(command, "connect", connect)
    monkeypatch.setattr(command, "stage_vouchers", stage)
    return attempts


class FakeConnection:
    def jetstream(self) -> object:
        return object()

    async def close(self) -> None:
        return None


@pytest.fixture
def recorded_ledger(monkeypatch: pytest.MonkeyPatch) -> dict[str, Voucher]:
    """Stands in for NATS: keeps staged vouchers by id, refusing a second copy like LEDGER does."""
    ledger: dict[str, Voucher] = {}

    async def connect(*_: Any, **__: Any) -> FakeConnection:
        return FakeConnection()

    async def stage(_js: object, integration_id: str, vouchers: Iterable[Voucher]) -> StageReport:
        staged = already = 0
        for voucher in vouchers:
            key = f"{integration_id}/{voucher.voucher_id}"
            if key in ledger:
                already += 1
            else:
                ledger[key] = voucher
                staged += 1
        return StageReport(staged=staged, already_staged=already)

    monkeypatch.setattr(command, "connect", connect)
    monkeypatch.setattr(command, "stage_vouchers", stage)
    return ledger


def test_dry_run_json_prints_one_object_of_exactly_the_documented_shape(no_nats: list[str]) -> None:
    result = run(str(REAL), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1
    document = json.loads(result.stdout)
    assert document == {"vouchers": 53, "lines": 170, "periods": expected_periods()}
    assert list(document) == ["vouchers", "lines", "periods"]
    assert list(document["periods"]) == ["2017-01", "2017-02", "2017-03", "2017-04"]
    for totals in document["periods"].values():
        assert list(totals) == ["vouchers", "lines", "debit", "credit"]
        assert isinstance(totals["debit"], str)
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}", totals["credit"])
        assert totals["debit"] == totals["credit"]
    assert no_nats == []


def test_dry_run_without_json_prints_a_table_and_stages_nothing(no_nats: list[str]) -> None:
    result = run(str(REAL), "--dry-run")
    assert result.exit_code == 0, result.output
    for period in ("2017-01", "2017-02", "2017-03", "2017-04"):
        assert period in result.stdout
    assert "9487049.35" in result.stdout
    assert "Tøyen Lekefabrikk AS" in result.stdout
    assert "nothing staged" in result.stdout
    assert no_nats == []


def test_an_unbalanced_file_exits_1_naming_the_transaction_on_stderr_and_stages_nothing(
    tmp_path: Path, no_nats: list[str]
) -> None:
    text = REAL.read_bytes().decode("utf-8")
    marker = "<n1:TransactionID>1001</n1:TransactionID>"
    start = text.index(marker)
    text = text[:start] + text[start:].replace(
        "<n1:Amount>12500</n1:Amount>", "<n1:Amount>12501</n1:Amount>", 1
    )
    bad = tmp_path / "unbalanced.xml"
    bad.write_bytes(text.encode("utf-8"))

    result = run(str(bad))  # not a dry run: it would stage if the file were good
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any("transaction 1001" in line and "does not balance" in line for line in lines)
    assert "nothing staged" in lines[-1]
    assert all(line.startswith(str(bad)) for line in lines)
    assert "Traceback" not in result.output
    assert no_nats == []


def test_a_file_that_is_not_xml_exits_1_with_one_clear_line(
    tmp_path: Path, no_nats: list[str]
) -> None:
    bad = tmp_path / "notes.xml"
    bad.write_text("dette er ikke XML", encoding="utf-8")
    result = run(str(bad), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    first, summary = result.stderr.splitlines()
    assert "not a SAF-T Financial file" in first
    assert "nothing staged" in summary
    assert no_nats == []


def test_the_xmlspy_example_exits_1_naming_its_transaction_without_a_traceback(
    no_nats: list[str],
) -> None:
    result = run(str(XMLSPY), "--dry-run")
    assert result.exit_code == 1
    assert "transaction a" in result.stderr
    assert "Period '0'" in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert no_nats == []


def test_a_missing_file_is_a_usage_error_exit_2(tmp_path: Path, no_nats: list[str]) -> None:
    result = run(str(tmp_path / "missing.xml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert no_nats == []


def test_an_integration_id_that_cannot_be_a_subject_token_is_a_usage_error_exit_2(
    no_nats: list[str],
) -> None:
    result = run(str(REAL), "--integration", "toyen.xledger")
    assert result.exit_code == 2
    assert "integration" in result.stderr
    assert no_nats == []


def test_json_after_staging_adds_staged_and_already_staged_and_a_second_import_stages_nothing(
    recorded_ledger: dict[str, Voucher],
) -> None:
    first = run(str(REAL), "--json", "--integration", "toyen-xledger")
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert list(document) == ["staged", "already_staged", "vouchers", "lines", "periods"]
    assert document["staged"] == 53
    assert document["already_staged"] == 0
    assert document["periods"] == expected_periods()
    assert len(recorded_ledger) == 53

    second = run(str(REAL), "--json")
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert (again["staged"], again["already_staged"]) == (0, 53)
    assert len(recorded_ledger) == 53


def test_human_output_after_staging_says_how_many_were_staged_and_already_staged(
    recorded_ledger: dict[str, Voucher],
) -> None:
    run(str(REAL))
    result = run(str(REAL))
    assert result.exit_code == 0, result.output
    assert "staged 0 vouchers, 53 were already staged" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_nats_is_one_sentence_exit_1_and_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNCBUS_NATS_CONNECT_TIMEOUT_SECONDS", "0.5")
    url = f"nats://importer:hemmelig-passord@127.0.0.1:{free_port()}"
    result = run(str(REAL), "--nats-url", url, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "NATS is unreachable" in line
    assert "nothing was staged" in line
    assert "127.0.0.1" in line
    assert "hemmelig" not in result.output
    assert "Traceback" not in result.output


def test_the_nats_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCBUS_NATS_CONNECT_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("SYNCBUS_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    port = NatsSettings().url.rsplit(":", 1)[1]
    result = run(str(REAL))
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.stderr
