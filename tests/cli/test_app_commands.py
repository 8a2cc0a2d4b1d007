"""`syncbus request`, `runs` and `watch` against real servers: their output, JSON and exit codes.

Most run in-process through typer's CliRunner against a module-scoped stack (NATS, OpenBao, the
Xledger fake, the credential service and the dispatcher); `watch` runs as its own process, so
that it can be interrupted like a person would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from typer.testing import CliRunner

from syncbus_cli.main import app
from syncbus_devstack import NatsServer, Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    RunRecord,
    RunState,
    SyncResult,
    SyncStatus,
    Voucher,
    VoucherLine,
    utc_now,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.keys import encode_token
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import stage_vouchers


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("stack"), services=("credentials", "dispatcher")
    ) as running:
        yield running


async def _configured(stack: Stack, integration_id: str, vouchers: int = 3) -> None:
    token = secrets.token_urlsafe(18)
    fake_url = stack.fake_urls["xledger"]
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": token})
    async with httpx.AsyncClient(base_url=fake_url) as fake:
        (await fake.post("/_fake/tokens", json={"token": token})).raise_for_status()
    nc = await connect(NatsSettings(url=stack.nats_url), "pytest-cli")
    try:
        js = nc.jetstream()
        await put_integration(
            js,
            IntegrationConfig(
                integration_id=integration_id,
                vendor="xledger",
                endpoint=f"{fake_url}/graphql",
                credentials_path=f"integrations/{integration_id}",
            ),
        )
        await stage_vouchers(
            js,
            integration_id,
            [
                Voucher(
                    voucher_id=f"{integration_id}-v{n}",
                    period_id="2017-02",
                    transaction_date="2017-02-01",  # type: ignore[arg-type]
                    posting_date="2017-02-01",  # type: ignore[arg-type]
                    lines=(
                        VoucherLine(record_id="1", account_id="6300", debit="10.00"),  # type: ignore[arg-type]
                        VoucherLine(record_id="2", account_id="1920", credit="10.00"),  # type: ignore[arg-type]
                    ),
                )
                for n in range(vouchers)
            ],
        )
    finally:
        await nc.close()


# --- request ----------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
async def test_request_prints_the_receipt_and_the_same_key_again_is_a_duplicate(
    stack: Stack, unique_id: Callable[..., str]
):
    integration = unique_id("cli")
    first = await asyncio.to_thread(
        cli, "request", integration, "--period", "2017-02", "--json", "--nats-url", stack.nats_url
    )
    assert first.exit_code == 0, first.stderr
    receipt = json.loads(first.stdout)
    assert receipt == {
        "request_id": receipt["request_id"],
        "idempotency_key": f"{integration}:2017-02",
        "duplicate": False,
    }
    again = await asyncio.to_thread(
        cli, "request", integration, "--period", "2017-02", "--nats-url", stack.nats_url
    )
    assert again.exit_code == 0
    assert again.stdout.strip() == (
        f"already requested: {integration}:2017-02 is held by request {receipt['request_id']} "
        "(nothing new was published)"
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_request_with_wait_prints_the_result_and_exits_0_when_it_succeeds(
    stack: Stack, unique_id: Callable[..., str]
):
    integration = unique_id("cli")
    await _configured(stack, integration)
    done = await asyncio.to_thread(
        cli, "request", integration, "-p", "2017-02", "--wait", "60", "--nats-url", stack.nats_url
    )
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"requested {integration}:2017-02 (request ")
    assert lines[1].startswith(f"succeeded  {integration}:2017-02  3 voucher(s), 6 line(s)")
    assert "debit 30.00 / credit 30.00" in lines[1]


@pytest.mark.asyncio(loop_scope="module")
async def test_request_with_wait_exits_3_when_the_request_is_rejected(
    stack: Stack, unique_id: Callable[..., str]
):
    integration = unique_id("unconfigured")
    done = await asyncio.to_thread(
        cli, "request", integration, "-p", "2017-02", "--wait", "60", "--json",
        "--nats-url", stack.nats_url,
    )  # fmt: skip
    assert done.exit_code == 3
    body = json.loads(done.stdout)
    assert body["result"]["status"] == "rejected"
    assert "is not configured" in body["result"]["error"]["message"]


async def test_request_with_wait_exits_4_when_no_result_arrives_in_time(
    nats_server: NatsServer, jetstream: JetStreamContext
):
    # No dispatcher runs here: nothing answers.
    done = await asyncio.to_thread(
        cli, "request", "nobody", "-p", "2017-02", "--wait", "1", "--nats-url", nats_server.url
    )
    assert done.exit_code == 4
    assert "no result for request" in done.stderr
    assert "within 1 s" in done.stderr


def test_an_invalid_period_exits_2_with_one_sentence_and_publishes_nothing():
    done = cli("request", "toyen", "--period", "January", "--nats-url", "nats://127.0.0.1:1")
    assert done.exit_code == 2
    message = done.stderr.strip()
    assert message.startswith("syncbus request: invalid request: period_id: a period id")
    assert "\n" not in message


def test_an_unreachable_nats_exits_1_with_one_sentence():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = cli("runs", "--nats-url", f"nats://127.0.0.1:{port}")
    assert done.exit_code == 1
    assert done.stderr.strip().startswith(
        f"syncbus runs: cannot reach NATS at nats://127.0.0.1:{port} within"
    )


# --- runs -------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
async def test_runs_lists_recent_results_newest_first_with_status_drift_and_duration(
    stack: Stack, unique_id: Callable[..., str]
):
    integration = unique_id("cli")
    await _configured(stack, integration, vouchers=2)
    # 2017-03 has nothing staged: that request does not succeed (exit 3).
    for period, code in (("2017-02", 0), ("2017-03", 3)):
        done = await asyncio.to_thread(
            cli, "request", integration, "-p", period, "--wait", "60", "--nats-url", stack.nats_url
        )
        assert done.exit_code == code, done.stderr
    listed = await asyncio.to_thread(
        cli, "runs", "--integration", integration, "--json", "--nats-url", stack.nats_url
    )
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["idempotency_key"] for r in rows] == [
        f"{integration}:2017-03",
        f"{integration}:2017-02",
    ]
    assert rows[0]["status"] in {"failed", "rejected"}
    assert rows[0]["error"]["message"]
    assert rows[1]["status"] == "succeeded"
    assert rows[1]["vouchers"] == 2
    assert rows[1]["duration_ms"] > 0
    limited = await asyncio.to_thread(
        cli, "runs", "-i", integration, "--limit", "1", "--json", "--nats-url", stack.nats_url
    )
    assert [r["idempotency_key"] for r in json.loads(limited.stdout)] == [f"{integration}:2017-03"]
    table = await asyncio.to_thread(cli, "runs", "-i", integration, "--nats-url", stack.nats_url)
    assert table.exit_code == 0
    for column in ("finished", "status", "drift", "duration"):
        assert column in table.stdout
    assert "succeeded" in table.stdout


async def test_runs_shows_a_run_in_progress_from_the_run_ledger(
    nats_server: NatsServer, jetstream: JetStreamContext
):
    key = "busy:2017-02"
    record = RunRecord(
        idempotency_key=key,
        integration_id="busy",
        request_id="r-busy",
        state=RunState.CLAIMED,
        owner="dispatcher-1",
        lease_until=utc_now() + timedelta(minutes=5),
        attempt=2,
    )
    kv = await jetstream.key_value(t.KV_SYNC_RUNS)
    await kv.put(encode_token(key), record.to_bytes())
    done = SyncResult(request_id="r-old", integration_id="busy", status=SyncStatus.FAILED)
    await jetstream.publish(t.result_subject("busy"), done.to_bytes())
    listed = await asyncio.to_thread(cli, "runs", "--json", "--nats-url", nats_server.url)
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["status"], r["request_id"]) for r in rows] == [
        ("running", "r-busy"),
        ("failed", "r-old"),
    ]
    assert rows[0]["attempt"] == 2


async def test_runs_with_nothing_to_show_says_so_and_exits_0(
    nats_server: NatsServer, jetstream: JetStreamContext
):
    done = await asyncio.to_thread(cli, "runs", "--nats-url", nats_server.url)
    assert done.exit_code == 0
    assert done.stdout.strip() == "no runs yet"


# --- watch ------------------------------------------------------------------------------------


async def _start_watch(nats_url: str, *args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncbus_cli", "watch", *args, "--nats-url", nats_url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), 60)).decode()


@pytest.mark.asyncio(loop_scope="module")
async def test_watch_prints_progress_then_the_result_and_stops_after_until_results(
    stack: Stack, unique_id: Callable[..., str]
):
    integration = unique_id("cli")
    await _configured(stack, integration, vouchers=4)
    watch = await _start_watch(stack.nats_url, integration, "--json", "--until-results", "1")
    watching = json.loads(await _line(watch))
    assert watching == {
        "event": "watching",
        "subjects": [f"sync.progress.{integration}", f"sync.result.{integration}"],
    }
    requested = await asyncio.to_thread(
        cli, "request", integration, "-p", "2017-02", "--nats-url", stack.nats_url
    )
    assert requested.exit_code == 0
    events = []
    while not events or events[-1]["event"] != "result":
        events.append(json.loads(await _line(watch)))
    assert await asyncio.wait_for(watch.wait(), 30) == 0
    progress = [e for e in events if e["event"] == "progress"]
    assert progress, "the dispatcher reports progress per batch"
    assert progress[-1]["vouchers_done"] == progress[-1]["vouchers_total"] == 4
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["idempotency_key"] == f"{integration}:2017-02"


@pytest.mark.asyncio(loop_scope="module")
async def test_watch_stops_on_ctrl_c_with_exit_130(stack: Stack):
    watch = await _start_watch(stack.nats_url)
    first = await _line(watch)
    assert first.startswith("watching sync.progress.* and sync.result.*")
    watch.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(watch.wait(), 30) == 130


@pytest.mark.asyncio(loop_scope="module")
async def test_watch_with_a_timeout_exits_4_when_the_results_asked_for_do_not_come(stack: Stack):
    watch = await _start_watch(stack.nats_url, "quiet", "--until-results", "1", "--timeout", "1")
    assert await asyncio.wait_for(watch.wait(), 60) == 4
    assert watch.stderr is not None
    assert "fewer than 1 result(s) within 1 s" in (await watch.stderr.read()).decode()


# --- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["request", "runs", "watch", "asyncapi"])
def test_every_command_explains_itself_and_its_exit_codes(command: str):
    done = cli(command, "--help")
    assert done.exit_code == 0
    text = " ".join(done.stdout.split())
    assert "Exit 0" in text
    assert "--json" in text


def test_a_result_line_says_how_many_vouchers_another_key_had_exported_already():
    from syncbus_cli.app_commands import result_line  # noqa: PLC0415

    result = SyncResult(
        request_id="r1",
        integration_id="toyen",
        idempotency_key="toyen:2017-01",
        status=SyncStatus.SUCCEEDED,
        vouchers=1,
        lines=2,
        already_exported=14,
    )
    assert "(14 left out: exported under another key)" in result_line(result)
