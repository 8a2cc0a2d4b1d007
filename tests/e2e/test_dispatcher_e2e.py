"""The dispatcher as a real process, over real NATS JetStream, OpenBao and the Xledger fake."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from e2e_support import DEDUP_WINDOW_SECONDS, Integration, make_voucher

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    ErrorClass,
    HealthState,
    HealthStatus,
    SyncRequest,
    SyncStatus,
    WarmUp,
)
from syncbus_shared.dlq import list_dead_letters, replay_dead_letter
from syncbus_shared.health import FAILED_FAST_CODE
from syncbus_shared.probe_budget import ProbeBudget
from syncbus_shared.staging import stage_vouchers

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _stage(it: Integration, count: int, period: str = "2017-01", lines: int = 2) -> int:
    vouchers = [make_voucher(it.id, n, period, lines) for n in range(count)]
    await stage_vouchers(it.js, it.id, vouchers)
    return sum(len(v.lines) for v in vouchers)


async def test_a_staged_period_is_exported_once_with_one_succeeded_result(integration: Integration):
    lines = await _stage(integration, 12, lines=3)
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    assert (result.vouchers, result.lines) == (12, lines)
    assert result.debit_total == result.credit_total
    postings = await integration.postings()
    assert len(postings) == lines
    assert Counter(p["clientId"] for p in postings).most_common(1)[0][1] == 1
    # Amounts reach Xledger as decimal strings; Norwegian letters and quotes byte for byte.
    node = postings[0]["node"]
    assert isinstance(node["amount"], str)
    assert "«0»" in node["text"]
    assert '"quoted" \\' in node["text"]


async def test_a_period_with_nothing_staged_fails_without_using_its_key_up(
    integration: Integration,
):
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    [empty] = await integration.wait_results(1)
    assert empty.status is SyncStatus.FAILED
    assert empty.error is not None
    assert "no vouchers are staged" in empty.error.message
    lines = await _stage(integration, 2)
    [letter] = await list_dead_letters(integration.js, integration.id)
    await replay_dead_letter(integration.js, letter.seq)
    _, exported = await integration.wait_results(2)
    assert exported.status is SyncStatus.SUCCEEDED
    assert exported.lines == lines
    assert len(await integration.postings()) == lines


async def test_a_period_larger_than_one_call_is_sent_in_batches_of_at_most_500_lines(
    integration: Integration,
):
    await _stage(integration, 130, lines=4)  # 520 lines: two calls
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    calls = Counter(p["call"] for p in await integration.postings())
    assert len(calls) == 2
    assert max(calls.values()) <= 500
    assert sum(calls.values()) == 520


async def test_the_same_key_published_twice_is_stored_once_by_the_broker(integration: Integration):
    await _stage(integration, 2)
    first = await integration.publish(
        SyncRequest(integration_id=integration.id, period_id="2017-01")
    )
    second = await integration.publish(
        SyncRequest(integration_id=integration.id, period_id="2017-01")
    )
    assert not first.duplicate
    assert second.duplicate
    assert second.seq == first.seq
    stored = await integration.js.stream_info(
        t.STREAM_REQUESTS, subjects_filter=t.request_subject(integration.id)
    )
    assert stored.state.subjects == {t.request_subject(integration.id): 1}
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.SUCCEEDED


async def test_a_key_published_again_after_the_dedup_window_gets_a_duplicate_result_and_posts_nothing(
    integration: Integration,
):
    lines = await _stage(integration, 3)
    first = SyncRequest(integration_id=integration.id, period_id="2017-01")
    await integration.publish(first)
    [done] = await integration.wait_results(1)
    assert done.status is SyncStatus.SUCCEEDED
    # Publish the same key until the broker stores it again: then the window has passed.
    # A copy the broker drops is not a request anyone sees.
    # The window is a span of time, so waiting for it is waiting on the clock (bounded).
    deadline = asyncio.get_running_loop().time() + 10 * DEDUP_WINDOW_SECONDS
    while True:
        again = SyncRequest(integration_id=integration.id, period_id="2017-01")
        ack = await integration.publish(again)
        if not ack.duplicate:
            break
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("the dedup window never passed")
        await asyncio.sleep(DEDUP_WINDOW_SECONDS / 10)
    results = await integration.wait_results(2)
    assert results[1].request_id == again.request_id
    assert results[1].status is SyncStatus.DUPLICATE
    assert results[1].duplicate_of == first.request_id
    assert len(await integration.postings()) == lines


BAD_BODIES = [
    (b"not json at all", "not JSON"),
    (b"[1, 2, 3]", "JSON object"),
    (
        json.dumps({"type": "syncbus.sync_request.v1", "integration_id": 7}).encode(),
        "integration_id",
    ),
    (
        json.dumps({"type": "syncbus.sync_request.v1", "period_id": "2017-01"}).encode(),
        "integration_id",
    ),
    (b"\xff\xfe\x00garbage", "UTF-8"),
]


@pytest.mark.parametrize(("body", "says"), BAD_BODIES)
async def test_a_malformed_request_is_rejected_with_a_reason_and_the_next_request_is_still_served(
    integration: Integration, body: bytes, says: str
):
    await _stage(integration, 1)
    await integration.publish_raw(body)
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    rejected, served = await integration.wait_results(2)
    assert rejected.status is SyncStatus.REJECTED
    assert rejected.error is not None
    assert says in rejected.error.message
    assert served.status is SyncStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"oops", {"content-type": "application/json"}, "not JSON"),
        (b"[" * 5000 + b"]" * 5000, {}, "JSON"),
        (b"{" + b'"a":' * 3000 + b"1" + b"}" * 3000, {}, "JSON"),
        (b"1" + b"0" * 5000, {}, "not JSON a parser accepts"),
        (b"\xff\xfe", {"content-type": "text/plain"}, "UTF-8"),
    ],
    ids=["json-content-type", "deep-array", "deep-object", "huge-integer", "binary-text-plain"],
)
async def test_a_body_that_chokes_a_json_parser_is_rejected_and_the_next_request_is_still_served(
    integration: Integration, body: bytes, headers: dict[str, str], says: str
):
    await _stage(integration, 1)
    await integration.publish_raw(body, headers=headers)
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    rejected, served = await integration.wait_results(2)
    assert rejected.status is SyncStatus.REJECTED
    assert rejected.error is not None
    assert says in rejected.error.message
    assert served.status is SyncStatus.SUCCEEDED


async def test_a_request_whose_body_names_another_integration_is_rejected_and_posts_nothing(
    integration: Integration,
):
    await _stage(integration, 1)
    body = SyncRequest(integration_id="someone-else", period_id="2017-01").to_bytes()
    await integration.publish_raw(body)
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.REJECTED
    assert result.error is not None
    assert "someone-else" in result.error.message
    assert await integration.postings() == []


async def test_a_voucher_with_a_float_amount_is_rejected_before_anything_is_sent(
    integration: Integration,
):
    voucher = json.loads(make_voucher(integration.id, 1).to_bytes())
    voucher["lines"][0]["debit"] = 101.5
    voucher["lines"][1]["credit"] = 101.5
    body = {
        "type": "syncbus.sync_request.v1",
        "integration_id": integration.id,
        "idempotency_key": f"{integration.id}:inline-1",
        "vouchers": [voucher],
    }
    await integration.publish_raw(
        json.dumps(body).encode(), headers={"Nats-Msg-Id": body["idempotency_key"]}
    )
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.REJECTED
    assert result.error is not None
    assert "decimal string" in result.error.message
    assert await integration.postings() == []


async def test_a_request_for_an_unknown_integration_is_rejected(integration: Integration):
    unknown = f"{integration.id}-nope"
    sub = await integration.js.subscribe(t.result_subject(unknown))
    await integration.publish_raw(
        SyncRequest(integration_id=unknown, period_id="2017-01").to_bytes(),
        subject=t.request_subject(unknown),
    )
    msg = await sub.next_msg(timeout=20)
    assert b'"rejected"' in msg.data
    assert b"not configured" in msg.data
    await sub.unsubscribe()


async def test_a_request_whose_integration_cannot_be_read_gets_its_result_on_invalid(
    integration: Integration,
):
    sub = await integration.js.subscribe(t.result_subject(t.INVALID_INTEGRATION))
    await integration.publish_raw(b"{}", subject="sync.request.bad=token")
    msg = await sub.next_msg(timeout=20)
    assert b'"rejected"' in msg.data
    await sub.unsubscribe()


async def test_a_warm_up_makes_the_following_sync_start_warm(integration: Integration):
    await _stage(integration, 2)
    key = f"{integration.id}:2017-01"
    await integration.nc.publish(
        t.warmup_subject(integration.id),
        WarmUp(
            integration_id=integration.id,
            idempotency_key=key,
            period_id="2017-01",
            scheduled_for=datetime.now(UTC),
        ).to_bytes(),
    )
    await integration.nc.flush()
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.SUCCEEDED
    assert result.started_warm is True


async def test_a_warm_up_spends_from_the_probe_budget_and_records_its_outcome(
    integration: Integration,
):
    budget = await ProbeBudget.open(integration.js)
    before = await budget.usage(integration.id)
    key = f"{integration.id}:2017-01"
    await integration.nc.publish(
        t.warmup_subject(integration.id),
        WarmUp(
            integration_id=integration.id,
            idempotency_key=key,
            period_id="2017-01",
            scheduled_for=datetime.now(UTC),
        ).to_bytes(),
    )
    deadline = asyncio.get_running_loop().time() + 20
    while (usage := await budget.usage(integration.id)).last_warmup is None:
        assert asyncio.get_running_loop().time() < deadline, "the warm-up never ran"
        await asyncio.sleep(0.05)
    assert usage.month_used == before.month_used + 1
    assert usage.month_by_kind.get("warmup") == 1
    assert usage.last_warmup.ok


async def test_an_integration_unhealthy_for_an_auth_reason_fails_fast_without_calling_the_vendor(
    integration: Integration,
):
    await _stage(integration, 2)
    kv = await integration.js.key_value(t.KV_HEALTH)
    await kv.put(
        integration.id,
        HealthStatus(
            integration_id=integration.id,
            state=HealthState.UNHEALTHY,
            reason="auth: token refused",
            error_class=ErrorClass.AUTH,
        ).to_bytes(),
    )
    before = (await integration.fake.get("/_fake/stats")).json()["requests_total"]
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.AUTH
    assert result.error.vendor_code == FAILED_FAST_CODE
    assert "recheck" in result.error.message
    assert (await integration.fake.get("/_fake/stats")).json()["requests_total"] == before


async def test_a_sync_without_a_warm_up_starts_cold_and_a_slow_first_call_is_counted_as_a_cold_start(
    integration: Integration,
):
    await _stage(integration, 2)
    await integration.fake.post(
        "/_fake/faults", json={"cold_start": {"idle_seconds": 0, "extra_seconds": 1.2}}
    )
    try:
        await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
        [result] = await integration.wait_results(1)
    finally:
        await integration.fake.post("/_fake/faults", json={"cold_start": None})
    assert result.status is SyncStatus.SUCCEEDED
    assert result.started_warm is False
    assert result.cold_start is True
