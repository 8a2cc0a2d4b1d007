"""`syncbus backfill` against a running stack: one line per period with its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncbus_cli.demo import DEFAULT_SAFT
from syncbus_cli.embedded import DEMO_INTEGRATION, configure_demo, demo_stack
from syncbus_shared.natsclient import connect
from syncbus_shared.saft import read_saft
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import stage_vouchers


def _syncbus(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    return subprocess.run(
        [sys.executable, "-m", "syncbus_cli", *args, "--nats-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.e2e
async def test_backfill_prints_each_periods_result_and_refuses_an_empty_period(tmp_path: Path):
    async with demo_stack(tmp_path) as stack:
        nc = await connect(NatsSettings(url=stack.nats_url), "pytest")
        js = nc.jetstream()
        await configure_demo(js, stack)
        # Nothing staged yet: the export fails, and its key stays unused.
        empty = _syncbus(stack.nats_url, "backfill", DEMO_INTEGRATION, "2017-01", "2017-01")
        assert empty.returncode == 1
        assert "failed" in empty.stdout
        assert "no vouchers are staged" in empty.stdout
        await stage_vouchers(js, DEMO_INTEGRATION, read_saft(DEFAULT_SAFT).vouchers)
        await nc.close()
        done = _syncbus(stack.nats_url, "backfill", DEMO_INTEGRATION, "2017-02", "2017-03")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            f"{DEMO_INTEGRATION}:2017-02  succeeded  13 vouchers  42 lines",
            f"{DEMO_INTEGRATION}:2017-03  succeeded  13 vouchers  43 lines",
        ]
        again = _syncbus(stack.nats_url, "backfill", DEMO_INTEGRATION, "2017-02", "2017-02")
        assert again.returncode == 0
        assert "already requested" in again.stdout
        as_json = _syncbus(
            stack.nats_url, "backfill", DEMO_INTEGRATION, "2017-04", "2017-04", "--json"
        )
        assert as_json.returncode == 0, as_json.stderr
        report = json.loads(as_json.stdout)
        assert report["ok"] is True
        [period] = report["periods"]
        assert period["idempotency_key"] == f"{DEMO_INTEGRATION}:2017-04"
        assert period["status"] == "succeeded"
        assert period["result"]["lines"] == 44
        bad = _syncbus(stack.nats_url, "backfill", DEMO_INTEGRATION, "2017-13", "2017-14")
        assert bad.returncode == 2
        assert "real year, month" in bad.stderr
