"""The main job end to end: `syncbus demo` on the real SAF-T sample, and no secret anywhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from syncbus_cli.demo import DEFAULT_SAFT, render, run_demo

DISTINCTIVE_TOKEN = "xl-TOKEN-must-never-leak-7f3b9c1d2e"
DISTINCTIVE_BC_SECRET = "bc-CLIENT-SECRET-must-never-leak-4a8e6f"


def _everything_written(state_dir: Path) -> list[Path]:
    return [p for p in state_dir.rglob("*") if p.is_file()]


@pytest.mark.e2e
async def test_the_demo_exports_every_line_once_and_the_token_appears_nowhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    out = io.StringIO()
    report = await run_demo(
        DEFAULT_SAFT,
        tmp_path,
        console=Console(file=out, width=120),
        token=DISTINCTIVE_TOKEN,
        bc_client_secret=DISTINCTIVE_BC_SECRET,
    )
    assert report.ok, out.getvalue()
    assert [r.period_id for r in report.rows] == ["2017-01", "2017-02", "2017-03", "2017-04"]
    assert sum(r.vouchers for r in report.rows) == 53
    assert sum(r.lines for r in report.rows) == 170
    assert all(r.debit == r.credit for r in report.rows)
    assert report.posted_lines == 170
    assert report.lines_posted_more_than_once == 0
    # Each scheduled sync was preceded by its warm-up and started warm.
    assert all(r.started_warm for r in report.rows)
    # The token was in OpenBao and the fake; it must be in no log line, no stored message
    # (the JetStream store is scanned byte for byte) and no console output.
    written = _everything_written(tmp_path)
    assert any(p.name == "dispatcher.log" for p in written)
    for path in written:
        data = path.read_bytes()
        assert DISTINCTIVE_TOKEN.encode() not in data, path
        assert DISTINCTIVE_BC_SECRET.encode() not in data, path
    captured = capfd.readouterr()
    for text in (out.getvalue(), captured.out, captured.err):
        assert DISTINCTIVE_TOKEN not in text
        assert DISTINCTIVE_BC_SECRET not in text


@pytest.mark.e2e
async def test_the_demo_posts_the_same_sample_to_business_central_each_line_once(tmp_path: Path):
    out = io.StringIO()
    report = await run_demo(DEFAULT_SAFT, tmp_path, console=Console(file=out, width=120))
    assert report.ok, out.getvalue()
    assert [t.integration_id for t in report.targets] == ["toyen-xledger", "toyen-bc"]
    bc = report.targets[1]
    assert bc.vendor == "business_central"
    assert bc.ok
    assert [r.period_id for r in bc.rows] == ["2017-01", "2017-02", "2017-03", "2017-04"]
    assert all(r.status == "succeeded" for r in bc.rows)
    assert sum(r.vouchers for r in bc.rows) == 53
    assert (bc.expected_lines, bc.posted_lines) == (170, 170)
    assert bc.lines_posted_more_than_once == bc.lines_missing == 0
    assert all(r.started_warm for r in bc.rows)
    shown = io.StringIO()
    render(report, Console(file=shown, width=200))
    assert "Xledger (fake), toyen-xledger" in shown.getvalue()
    assert "Business Central (fake), toyen-bc" in shown.getvalue()


@pytest.mark.e2e
def test_syncbus_demo_exits_0_and_prints_the_report_as_json(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    done = subprocess.run(
        [sys.executable, "-m", "syncbus_cli", "demo", "--json", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["posted_lines"] == 170
    assert {p["period"]: p["status"] for p in report["periods"]} == {
        "2017-01": "succeeded",
        "2017-02": "succeeded",
        "2017-03": "succeeded",
        "2017-04": "succeeded",
    }
    targets = {t["integration"]: t for t in report["targets"]}
    assert set(targets) == {"toyen-xledger", "toyen-bc"}
    assert targets["toyen-bc"]["ok"] is True
    assert targets["toyen-bc"]["posted_lines"] == 170


@pytest.mark.e2e
def test_syncbus_demo_on_a_missing_file_says_so_in_one_line_and_exits_1(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "syncbus_cli", "demo", "--file", str(tmp_path / "nope.xml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "SAF-T file not found" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
