"""The demo's syncs end to end with NATS locked down: every process connects as its own user.

nats-server runs with `deploy/nats/syncbus-accounts.conf` and a fresh password per user
(`Stack(secure_nats=True)`); the four services each run as their own user, provisioning and
the scheduler backfill as `operator`, staging, requests and results as `application` through
the client library. Everything must work, and the server must not have refused anything.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from syncbus_cli.demo import DEFAULT_SAFT
from syncbus_cli.embedded import (
    DEMO_BC_INTEGRATION,
    DEMO_FAKES,
    DEMO_INTEGRATION,
    DEMO_SECRET_PATH,
    configure_demo,
    demo_stack_options,
)
from syncbus_client import SyncbusClient
from syncbus_devstack import DEFAULT_SERVICES, Stack
from syncbus_ingress.auth import digest_of
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    BackfillReply,
    BackfillRequest,
    HealthStatus,
    IntegrationConfig,
    SyncResult,
    SyncStatus,
    Voucher,
    VoucherLine,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.saft import read_saft

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SAFT = read_saft(DEFAULT_SAFT)
PERIODS = sorted({v.period_id for v in SAFT.vouchers})
LINES = sum(len(v.lines) for v in SAFT.vouchers)
EXPECTED = {f"{v.voucher_id}#{line.record_id}" for v in SAFT.vouchers for line in v.lines}
TOKEN = f"xl-secure-{secrets.token_urlsafe(12)}"
API_KEY = secrets.token_urlsafe(24)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("secure-stack")
    options = demo_stack_options(TOKEN)
    options["extra_env"]["SYNCBUS_INGRESS_API_KEY_HASHES"] = f"pytest={digest_of(API_KEY)}"
    async with Stack(
        state,
        **options,
        services=(*DEFAULT_SERVICES, "ingress"),
        fakes=DEMO_FAKES,
        secure_nats=True,
    ) as running:
        operator = await connect(running.nats_settings("operator"), "pytest-operator")
        try:
            await configure_demo(operator.jetstream(), running)
        finally:
            await operator.close()
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def application(stack: Stack) -> AsyncIterator[SyncbusClient]:
    nc = await connect(stack.nats_settings("application"), "pytest-application")
    async with SyncbusClient(nc, close_connection=True) as client:
        yield client


def _violations(stack: Stack) -> list[str]:
    log = Path(stack.nats.log_path or "").read_text(encoding="utf-8", errors="replace")
    return [line for line in log.splitlines() if "Violation" in line or "Authorization" in line]


async def test_every_service_starts_under_its_own_user_and_the_server_refuses_none_of_them(
    stack: Stack,
):
    assert stack.nats_users is not None
    for service in (*DEFAULT_SERVICES, "ingress"):
        env = stack.service_env(service)
        assert env["SYNCBUS_NATS_USER"] == service
        assert env["SYNCBUS_NATS_INBOX_PREFIX"] == f"_INBOX_{service}"
        assert stack.service(service).running
    assert _violations(stack) == []


async def test_a_period_requested_by_the_application_is_exported_once_under_least_privilege(
    stack: Stack, application: SyncbusClient
):
    staged = await application.stage_vouchers(DEMO_BC_INTEGRATION, SAFT.vouchers)
    assert staged.staged == len(SAFT.vouchers)
    receipts = [
        await application.request_sync(DEMO_BC_INTEGRATION, period_id=period) for period in PERIODS
    ]
    results = [await application.await_result(r, timeout=90) for r in receipts]
    assert [r.status for r in results] == [SyncStatus.SUCCEEDED] * len(PERIODS), [
        r.error for r in results
    ]
    assert sum(r.lines for r in results) == LINES
    async with httpx.AsyncClient(base_url=stack.fake_urls["business_central"]) as http:
        counts = (await http.get("/_fake/postings/counts")).json()
    assert counts, "the Business Central fake received nothing"
    assert _violations(stack) == []


async def test_a_scheduled_backfill_warms_up_and_exports_every_period_under_least_privilege(
    stack: Stack, application: SyncbusClient
):
    staged = await application.stage_vouchers(DEMO_INTEGRATION, SAFT.vouchers)
    assert staged.staged == len(SAFT.vouchers)
    since = datetime.now(UTC)
    operator = await connect(stack.nats_settings("operator"), "pytest-operator")
    try:
        request = BackfillRequest(
            integration_id=DEMO_INTEGRATION, from_period=PERIODS[0], to_period=PERIODS[-1]
        )
        reply = BackfillReply.from_bytes(
            (await operator.request(t.SCHEDULER_BACKFILL, request.to_bytes(), timeout=30)).data
        )
        assert reply.error is None, reply.error
    finally:
        await operator.close()

    results: dict[str, SyncResult] = {}

    async def collect() -> None:
        async with application.results(DEMO_INTEGRATION, start=since) as feed:
            async for result in feed:
                if result.status is not SyncStatus.DUPLICATE and result.period_id:
                    results[result.period_id] = result
                if set(results) == set(PERIODS):
                    return

    await asyncio.wait_for(collect(), 120)
    assert all(r.status is SyncStatus.SUCCEEDED for r in results.values()), results
    assert all(r.started_warm for r in results.values())
    assert sum(r.lines for r in results.values()) == LINES
    async with httpx.AsyncClient(base_url=stack.fake_urls["xledger"]) as http:
        postings = (await http.get("/_fake/postings")).json()["postings"]
    # Each SAF-T line once: `<voucher>#<record>`, or its parts `<voucher>#<record>.<n>` once each.
    ours = {v.voucher_id for v in SAFT.vouchers}
    parts = Counter(str(p["clientId"]) for p in postings if p["extIdentifier"] in ours)
    assert max(parts.values()) == 1
    assert {c.split("#")[0] + "#" + c.split("#")[1].split(".")[0] for c in parts} == EXPECTED
    assert _violations(stack) == []


async def test_a_request_posted_to_the_ingress_is_exported_with_the_ingress_as_its_own_user(
    stack: Stack, application: SyncbusClient
):
    integration = "secure-http-erp"
    operator = await connect(stack.nats_settings("operator"), "pytest-operator")
    try:
        await put_integration(
            operator.jetstream(),
            IntegrationConfig(
                integration_id=integration,
                vendor="xledger",
                endpoint=f"{stack.fake_urls['xledger']}/graphql",
                credentials_path=DEMO_SECRET_PATH,
            ),
        )
    finally:
        await operator.close()
    vouchers = [
        Voucher(
            voucher_id=f"{integration}-v{n}",
            period_id="2017-03",
            transaction_date="2017-03-01",
            posting_date="2017-03-01",
            lines=(
                VoucherLine(record_id="1", account_id="6300", debit="10.00"),  # type: ignore[arg-type]
                VoucherLine(record_id="2", account_id="1920", credit="10.00"),  # type: ignore[arg-type]
            ),
        )
        for n in range(3)
    ]
    await application.stage_vouchers(integration, vouchers)
    info = stack.service("ingress").ready_info
    assert info is not None
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=info["url"], timeout=30.0) as http:
        posted = await http.post(
            "/v1/sync-requests",
            json={"integration_id": integration, "period_id": "2017-03"},
            headers=headers,
        )
        assert posted.status_code == 200, posted.text
        request_id = posted.json()["request_id"]
        # The ingress answers 404 until its result index has the result (it follows SYNC_RESULTS).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (
            found := await http.get(f"/v1/sync-results/{request_id}", headers=headers)
        ).status_code == 404:
            assert loop.time() < deadline, "no result within 60 s"
            await asyncio.sleep(0.2)
    assert found.status_code == 200
    assert (found.json()["status"], found.json()["vouchers"]) == ("succeeded", 3)
    assert _violations(stack) == []


async def test_no_nats_password_is_written_to_any_log_or_store_of_the_stack(stack: Stack):
    assert stack.nats_users is not None
    passwords = [p.get_secret_value().encode() for p in stack.nats_users.passwords.values()]
    written = [p for p in stack.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "nats-server.log" for p in written)
    for path in written:
        data = path.read_bytes()
        assert not [pw for pw in passwords if pw in data], path
    assert not [pw for pw in passwords if pw.decode() in "\n".join(stack.describe())]


async def test_the_health_monitor_answers_a_recheck_from_the_operator_under_its_own_user(
    stack: Stack,
):
    operator = await connect(stack.nats_settings("operator"), "pytest-operator")
    try:
        reply = await operator.request(t.health_recheck_subject(DEMO_INTEGRATION), b"", timeout=30)
    finally:
        await operator.close()
    status = HealthStatus.from_bytes(reply.data)
    assert status.integration_id == DEMO_INTEGRATION
    assert _violations(stack) == []
