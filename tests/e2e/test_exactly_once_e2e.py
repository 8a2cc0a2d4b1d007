"""Exactly one export per key, and one final result per request, whatever goes wrong.

The damage is done for real: the dispatcher is SIGKILLed, nats-server is restarted on its
store, and the Xledger fake commits and then drops or stalls its answer. After each scenario
the fake must hold every line exactly once and every stored request must have one result.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from e2e_support import Integration, make_voucher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from typer.testing import CliRunner

from syncbus_cli.main import app as cli
from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import ErrorClass, RunRecord, SyncRequest, SyncResult, SyncStatus
from syncbus_shared.integrations import put_integration
from syncbus_shared.keys import encode_token
from syncbus_shared.settings import TopologySettings
from syncbus_shared.staging import stage_vouchers

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEASE_SECONDS = 2.0
ACK_WAIT_SECONDS = 3.0
WINDOW_SECONDS = 1.0
GRACE_SECONDS = 6.0
MAX_REQUEST_BYTES = 65_536


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Short leases, ack waits and windows, so crashes resume within seconds."""
    async with Stack(
        tmp_path_factory.mktemp("exactly-once"),
        services=("credentials", "dispatcher"),
        topology=TopologySettings(
            request_dedup_window_seconds=WINDOW_SECONDS,
            dispatcher_ack_wait_seconds=ACK_WAIT_SECONDS,
        ),
        extra_env={
            "SYNCBUS_DISPATCHER_LEASE_SECONDS": str(LEASE_SECONDS),
            "SYNCBUS_DISPATCHER_BACKOFF_INITIAL_SECONDS": "0.05",
            "SYNCBUS_DISPATCHER_BACKOFF_MAX_SECONDS": "0.4",
            "SYNCBUS_DISPATCHER_BATCH_ATTEMPTS": "4",
            "SYNCBUS_DISPATCHER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "SYNCBUS_DISPATCHER_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
        },
    ) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def fake_reset(stack: Stack) -> AsyncIterator[None]:
    yield
    # Faults are per test: clear them whatever the test left behind.
    async with httpx.AsyncClient(base_url=stack.fake_urls["xledger"]) as http:
        await http.post(
            "/_fake/faults",
            json=dict.fromkeys(
                (
                    "latency",
                    "stall_after_commit",
                    "drop_after_commit",
                    "http_error",
                    "insufficient_credits",
                    "stall",
                    "cold_start",
                )
            ),
        )
        await http.post("/_fake/accounts", json={"codes": None})


# --- helpers -------------------------------------------------------------------------------


async def _until(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll a real signal (the fake's postings, a KV entry) until it holds, bounded."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _stage(it: Integration, count: int, lines: int = 4) -> list[str]:
    vouchers = [make_voucher(it.id, n, "2017-01", lines) for n in range(count)]
    await stage_vouchers(it.js, it.id, vouchers)
    return [f"{v.voucher_id}#{line.record_id}" for v in vouchers for line in v.lines]


async def _faults(it: Integration, **faults: Any) -> None:
    response = await it.fake.post("/_fake/faults", json=faults)
    assert response.status_code == 200, response.text


async def _record(it: Integration, key: str) -> RunRecord | None:
    kv = await it.js.key_value(t.KV_SYNC_RUNS)
    try:
        entry = await kv.get(encode_token(key))
    except Exception:
        return None
    return RunRecord.from_bytes(entry.value) if entry.value else None


async def _first_batch_recorded(it: Integration, key: str) -> None:
    async def recorded() -> bool:
        record = await _record(it, key)
        return record is not None and len(record.exported_voucher_ids) > 0

    await _until(recorded, what="the first batch in the run ledger")


async def _assert_exactly_once(it: Integration, expected_clients: list[str]) -> None:
    posted = Counter(p["clientId"] for p in await it.postings())
    assert sorted(posted) == sorted(expected_clients)
    assert max(posted.values()) == 1, [c for c, n in posted.items() if n > 1][:5]


async def _stored_requests(it: Integration) -> int:
    info = await it.js.stream_info(t.STREAM_REQUESTS, subjects_filter=t.request_subject(it.id))
    return (info.state.subjects or {}).get(t.request_subject(it.id), 0)


async def _one_result_per_request(it: Integration, timeout: float = 60.0) -> list[SyncResult]:
    """Every stored request has its result, and none has two."""
    stored = await _stored_requests(it)
    results = await it.wait_results(stored, timeout=timeout)
    await asyncio.sleep(0.3)  # a second result would be a bug: give one the chance to show
    assert len(it.results) == stored, [(r.request_id, r.status) for r in it.results]
    assert len({r.request_id for r in results}) == len(results)
    return results


async def _period_request(it: Integration) -> SyncRequest:
    request = SyncRequest(integration_id=it.id, period_id="2017-01")
    await it.publish(request)
    return request


# --- crashes -------------------------------------------------------------------------------


async def _crash_and_resume(
    stack: Stack, it: Integration, clients: list[str], key: str
) -> SyncResult:
    await stack.kill_service("dispatcher")
    await _faults(it, latency=None, stall_after_commit=None)
    await stack.restart_service("dispatcher")
    [result] = await _one_result_per_request(it)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    await _assert_exactly_once(it, clients)
    record = await _record(it, key)
    assert record is not None
    assert record.attempt >= 2  # the second dispatcher took the lapsed lease over
    return result


async def test_a_dispatcher_killed_after_its_claim_resumes_and_exports_once(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 300)  # 1,200 lines: three calls
    await _faults(integration, latency={"seconds": 1.0})
    request = await _period_request(integration)

    async def claimed() -> bool:
        return await _record(integration, request.idempotency_key) is not None

    await _until(claimed, what="the claim in sync-runs")
    await _crash_and_resume(stack, integration, clients, request.idempotency_key)


async def test_a_dispatcher_killed_after_the_vendor_committed_a_batch_it_never_saw_resumes_without_resending_it(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 300)
    await _faults(integration, stall_after_commit={"seconds": 60, "count": 1})
    request = await _period_request(integration)

    async def committed() -> bool:
        return len(await integration.postings()) >= 500

    await _until(committed, what="the vendor to commit the first batch")
    record = await _record(integration, request.idempotency_key)
    assert record is not None
    assert record.exported_voucher_ids == ()  # the dispatcher has not seen the answer
    await _crash_and_resume(stack, integration, clients, request.idempotency_key)


async def test_a_dispatcher_killed_between_batches_resumes_from_the_run_ledger(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 300)
    await _faults(integration, latency={"seconds": 1.0})
    request = await _period_request(integration)

    await _first_batch_recorded(integration, request.idempotency_key)
    await _crash_and_resume(stack, integration, clients, request.idempotency_key)


async def test_sigterm_lets_the_run_finish_within_the_grace_period_or_leaves_it_to_resume(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 300)
    await _faults(integration, latency={"seconds": 0.5})
    request = await _period_request(integration)

    await _first_batch_recorded(integration, request.idempotency_key)
    dispatcher = stack.service("dispatcher")
    started = asyncio.get_running_loop().time()
    await dispatcher.stop(grace=GRACE_SECONDS + 5)
    assert asyncio.get_running_loop().time() - started < GRACE_SECONDS + 4
    await _faults(integration, latency=None)
    await stack.restart_service("dispatcher")
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)


async def test_a_nats_restart_in_the_middle_of_an_export_loses_nothing_and_duplicates_nothing(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 300)
    await _faults(integration, latency={"seconds": 0.7})
    request = await _period_request(integration)

    await _first_batch_recorded(integration, request.idempotency_key)
    await stack.nats.restart()
    await _faults(integration, latency=None)
    [result] = await _one_result_per_request(integration, timeout=90)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    await _assert_exactly_once(integration, clients)


async def test_two_hundred_copies_of_one_key_across_a_window_expiry_and_a_nats_restart_post_once(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 20)

    async def storm(n: int) -> None:
        await asyncio.gather(
            *(
                integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
                for _ in range(n)
            )
        )

    await storm(70)
    await integration.wait_results(1)
    await asyncio.sleep(WINDOW_SECONDS * 1.5)  # outlive the dedup window
    await storm(60)
    await stack.nats.restart()
    await storm(70)
    results = await _one_result_per_request(integration, timeout=90)
    assert Counter(r.status for r in results)[SyncStatus.SUCCEEDED] == 1
    assert all(r.status in (SyncStatus.SUCCEEDED, SyncStatus.DUPLICATE) for r in results)
    assert len(results) >= 2  # copies after the window were stored, and each got its answer
    await _assert_exactly_once(integration, clients)


async def test_a_run_longer_than_the_ack_wait_is_kept_alive_by_progress_acks_not_redelivered(
    integration: Integration,
):
    clients = await _stage(integration, 300)  # three calls of 1.5 s: longer than the ack wait
    await _faults(integration, latency={"seconds": 1.5})
    before = await integration.js.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    assert result.attempt == 1
    after = await integration.js.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    assert after.num_redelivered == before.num_redelivered
    await _assert_exactly_once(integration, clients)


# --- ambiguous answers ---------------------------------------------------------------------


async def test_a_connection_dropped_after_commit_is_reconciled_by_lookup_not_resent(
    integration: Integration,
):
    clients = await _stage(integration, 5)
    await _faults(integration, drop_after_commit={"count": 1})
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)


async def test_an_answer_stalled_past_the_client_timeout_after_commit_is_reconciled_by_lookup(
    integration: Integration,
):
    await put_integration(
        integration.js, integration.config.model_copy(update={"timeout_seconds": 1.0})
    )
    clients = await _stage(integration, 5)
    await _faults(integration, stall_after_commit={"seconds": 5, "count": 1})
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)


# --- failure classes -----------------------------------------------------------------------


async def test_a_passing_5xx_is_retried_with_backoff_and_the_export_succeeds(
    integration: Integration,
):
    clients = await _stage(integration, 3)
    await _faults(integration, http_error={"status": 503, "count": 2})
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)


async def test_the_vendors_retry_after_is_honoured(stack: Stack, integration: Integration):
    await _stage(integration, 1)
    await _faults(integration, http_error={"status": 503, "count": 1, "retry_after_seconds": 1})
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    retries = [
        json.loads(line)
        for line in (stack.log_dir / "dispatcher.log").read_text().splitlines()
        if '"dispatcher.retry_scheduled"' in line
    ]
    assert any(r["delay_s"] == 1.0 for r in retries)


async def test_a_request_that_exhausts_its_attempts_fails_lands_in_the_dlq_and_a_replay_exports_it_once(
    stack: Stack, integration: Integration
):
    clients = await _stage(integration, 3)
    await _faults(integration, http_error={"status": 503, "count": 20})
    request = await _period_request(integration)
    [failed] = await _one_result_per_request(integration)
    assert failed.status is SyncStatus.FAILED
    assert failed.error is not None
    assert failed.error.error_class is ErrorClass.RETRYABLE
    assert "4 attempts" in failed.error.message
    assert failed.vouchers == 3  # the period's figures, also in a failed result
    runner = CliRunner()

    async def syncbus(*args: str) -> Any:  # the CLI runs its own event loop: give it a thread
        return await asyncio.to_thread(runner.invoke, cli, [*args, "--nats-url", stack.nats_url])

    listed = await syncbus("dlq", "list", "--json", "--integration", integration.id)
    assert listed.exit_code == 0, listed.output
    [letter] = json.loads(listed.stdout)
    assert letter["idempotency_key"] == request.idempotency_key
    assert letter["error_class"] == "retryable"
    await _faults(integration, http_error=None)
    replayed = await syncbus("dlq", "replay", str(letter["id"]))
    assert replayed.exit_code == 0, replayed.output
    results = await integration.wait_results(2)
    assert results[1].status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)
    # A replay of a key that meanwhile succeeded posts nothing.
    again = await syncbus("dlq", "replay", str(letter["id"]))
    assert again.exit_code == 0
    results = await integration.wait_results(3)
    assert results[2].status is SyncStatus.DUPLICATE
    await _assert_exactly_once(integration, clients)
    assert (await syncbus("dlq", "replay", "999999")).exit_code == 1


async def test_spent_credits_defer_the_run_until_the_reset_and_it_then_succeeds(
    integration: Integration,
):
    clients = await _stage(integration, 2)
    await _faults(integration, insufficient_credits={"reset_in_seconds": 2, "count": 1})
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)


async def test_a_refused_credential_is_refreshed_once_then_the_run_fails_with_an_auth_error(
    integration: Integration,
):
    await _stage(integration, 2)
    await integration.fake.post("/_fake/tokens/revoke", json={"token": integration.token})
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.AUTH
    assert integration.token not in result.to_bytes().decode()
    assert await integration.postings() == []


async def test_a_vendor_validation_error_fails_at_once_with_the_vendors_message(
    integration: Integration,
):
    await _stage(integration, 2)
    await integration.fake.post("/_fake/accounts", json={"codes": ["1920"]})  # 6300 is unknown
    before = (await integration.fake.get("/_fake/stats")).json()["requests_total"]
    await _period_request(integration)
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.DATA
    assert "6300" in result.error.message
    after = (await integration.fake.get("/_fake/stats")).json()["requests_total"]
    assert after - before <= 2  # the export (and no retries); a warm-up may not have happened
    assert await integration.postings() == []


# --- bad input -----------------------------------------------------------------------------


async def test_an_oversized_request_is_rejected_and_nothing_is_sent(integration: Integration):
    await integration.publish_raw(b'{"padding": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}')
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.REJECTED
    assert result.error is not None
    assert "bytes" in result.error.message
    assert await integration.postings() == []


async def test_an_unbalanced_inline_voucher_is_rejected_and_nothing_is_sent(
    integration: Integration,
):
    voucher = json.loads(make_voucher(integration.id, 1).to_bytes())
    voucher["lines"][0]["debit"] = "999.99"
    body = {
        "type": "syncbus.sync_request.v1",
        "integration_id": integration.id,
        "idempotency_key": f"{integration.id}:manual-1",
        "vouchers": [voucher],
    }
    await integration.publish_raw(
        json.dumps(body).encode(), headers={"Nats-Msg-Id": body["idempotency_key"]}
    )
    [result] = await _one_result_per_request(integration)
    assert result.status is SyncStatus.REJECTED
    assert result.error is not None
    assert "does not balance" in result.error.message
    assert await integration.postings() == []


async def test_headers_with_non_ascii_values_do_not_stop_the_dispatcher(integration: Integration):
    clients = await _stage(integration, 1)
    await integration.publish_raw(b"{}", headers={"X-Note": "Tøyen ✓", "Nats-Msg-Id": "nøkkel ✓"})
    await _period_request(integration)
    rejected, served = await _one_result_per_request(integration)
    assert rejected.status is SyncStatus.REJECTED
    assert served.status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)


async def test_rejected_requests_are_terminated_not_redelivered(
    integration: Integration, bus: Client
):
    for body in (b"nope", b"[]", b"{}"):
        await integration.publish_raw(body)
    await _one_result_per_request(integration)
    info = await integration.js.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    assert info.num_ack_pending == 0
    assert info.num_redelivered == 0


async def test_garbage_of_any_shape_on_the_real_subject_is_rejected_and_the_dispatcher_keeps_serving(
    integration: Integration,
):
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False)
        | st.integers()
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
        ),
        max_leaves=12,
    )
    request_shaped = st.fixed_dictionaries(
        {"type": st.just("syncbus.sync_request.v1")},
        optional={
            "integration_id": st.one_of(
                st.just(integration.id), st.text(max_size=10), st.integers()
            ),
            "period_id": st.one_of(st.text(max_size=10), st.integers()),
            "vouchers": json_values,
            "idempotency_key": st.text(max_size=30),
        },
    ).filter(
        lambda d: (
            not (
                d.get("integration_id") == integration.id
                and isinstance(d.get("period_id"), str)
                and len(d["period_id"]) == 7
                and d["period_id"][4:5] == "-"
            )
        )
    )
    bodies = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        request_shaped.map(lambda d: json.dumps(d).encode()),
    )
    sent: list[bytes] = []

    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(body=bodies)
    def collect(body: bytes) -> None:
        sent.append(body)

    collect()
    for body in sent:
        await integration.publish_raw(body)
    results = await _one_result_per_request(integration, timeout=90)
    assert len(results) == len(sent)
    assert all(r.status is SyncStatus.REJECTED for r in results), [
        r for r in results if r.status is not SyncStatus.REJECTED
    ][:2]
    assert all(r.error is not None and r.error.message for r in results)
    assert await integration.postings() == []
    clients = await _stage(integration, 2)
    await _period_request(integration)
    served = await integration.wait_results(len(sent) + 1)
    assert served[-1].status is SyncStatus.SUCCEEDED
    await _assert_exactly_once(integration, clients)
