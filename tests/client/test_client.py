"""The client library against a real nats-server: publishing, awaiting, feeds, errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from client_support import publish_result, voucher
from nats.js import JetStreamContext

import syncbus_client
from syncbus_client import (
    ConnectError,
    DurableConflictError,
    InvalidRequestError,
    RequestReceipt,
    ResultTimeoutError,
    SyncbusClient,
    SyncProgress,
    SyncRequest,
    SyncStatus,
)
from syncbus_devstack import NatsServer
from syncbus_shared import topology as t
from syncbus_shared.staging import read_period


async def _stored_request(js: JetStreamContext, receipt: RequestReceipt) -> SyncRequest:
    stored = await js.get_msg(t.STREAM_REQUESTS, receipt.stream_seq)
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == receipt.idempotency_key
    return SyncRequest.from_bytes(stored.data or b"")


def test_every_public_name_is_listed_in_all_and_the_package_is_typed():
    for name in syncbus_client.__all__:
        assert hasattr(syncbus_client, name), name
    public = {n for n in dir(syncbus_client) if not n.startswith("_")}
    assert public - set(syncbus_client.__all__) <= {"annotations"}
    assert syncbus_client.__file__ is not None
    assert Path(syncbus_client.__file__).with_name("py.typed").is_file()


async def test_a_request_is_stored_with_its_key_as_nats_msg_id(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    receipt = await client.request_sync(integration, period_id="2017-01")
    assert receipt.idempotency_key == f"{integration}:2017-01"
    assert receipt.duplicate is False
    assert receipt.as_dict() == {
        "request_id": receipt.request_id,
        "idempotency_key": receipt.idempotency_key,
        "duplicate": False,
    }
    stored = await _stored_request(jetstream, receipt)
    assert stored.request_id == receipt.request_id
    assert stored.origin.value == "application"


async def test_the_same_key_again_is_a_duplicate_that_points_at_the_stored_request(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    first = await client.request_sync(integration, period_id="2017-02")
    again = await client.request_sync(integration, period_id="2017-02")
    assert again.duplicate is True
    assert again.request_id == first.request_id
    assert again.stream_seq == first.stream_seq
    assert again.published_at == first.published_at
    # The first request's result answers the duplicate too.
    await publish_result(jetstream, integration, first.request_id, key=first.idempotency_key)
    result = await client.await_result(again, timeout=10)
    assert result.request_id == first.request_id


async def test_a_caller_chosen_key_guards_inline_vouchers(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    receipt = await client.request_sync(
        integration,
        vouchers=[voucher("v1"), voucher("v2").model_dump(mode="json")],
        idempotency_key=f"{integration}:invoice-4711",
    )
    stored = await _stored_request(jetstream, receipt)
    assert stored.vouchers is not None
    assert [v.voucher_id for v in stored.vouchers] == ["v1", "v2"]
    assert stored.idempotency_key == f"{integration}:invoice-4711"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"integration_id": "has.dot", "period_id": "2017-01"}, "integration_id"),
        ({"integration_id": "ok", "period_id": "January"}, "period_id: a period id"),
        ({"integration_id": "ok"}, "needs a period_id or inline vouchers"),
        (
            {"integration_id": "ok", "vouchers": [voucher("v1")]},
            "inline vouchers needs an idempotency_key",
        ),
    ],
)
async def test_an_invalid_request_is_refused_with_a_specific_problem_and_nothing_is_published(
    client: SyncbusClient, jetstream: JetStreamContext, kwargs: dict[str, object], says: str
):
    before = (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages
    integration = kwargs.pop("integration_id")
    with pytest.raises(InvalidRequestError) as caught:
        await client.request_sync(integration, **kwargs)  # type: ignore[arg-type]
    assert says in str(caught.value)
    assert caught.value.problems
    assert (await jetstream.stream_info(t.STREAM_REQUESTS)).state.messages == before


async def test_a_float_amount_in_a_voucher_is_refused_naming_the_line(client: SyncbusClient):
    body = voucher("v1").model_dump(mode="json")
    body["lines"][0]["debit"] = 125.0
    body["lines"][1]["credit"] = 125.0
    with pytest.raises(InvalidRequestError) as caught:
        await client.stage_vouchers("app", [body])
    problem = caught.value.problems[0]
    assert problem.field == "vouchers.0.lines.0.debit"
    assert "not a JSON number" in problem.message


async def test_staging_the_same_vouchers_again_stages_nothing_new(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    first = await client.stage_vouchers(integration, [voucher("v1"), voucher("v2")])
    again = await client.stage_vouchers(integration, [voucher("v1"), voucher("v2")])
    assert (first.staged, first.already_staged) == (2, 0)
    assert (again.staged, again.already_staged) == (0, 2)
    staged = await read_period(jetstream, integration, "2017-01")
    assert [v.voucher_id for v in staged] == ["v1", "v2"]


async def test_a_result_published_before_await_result_was_called_is_found(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    receipt = await client.request_sync(integration, period_id="2017-01")
    await publish_result(jetstream, integration, "someone-else")
    await publish_result(jetstream, integration, receipt.request_id, SyncStatus.FAILED)
    result = await client.await_result(receipt, timeout=10)
    assert result.request_id == receipt.request_id
    assert result.status is SyncStatus.FAILED


async def test_another_process_can_await_a_result_knowing_only_the_request_id(
    client: SyncbusClient,
    nats_server: NatsServer,
    jetstream: JetStreamContext,
    unique_id: Callable[..., str],
):
    integration = unique_id("app")
    receipt = await client.request_sync(integration, period_id="2017-01")
    async with SyncbusClient.connect(nats_server.url) as other:
        waiting = asyncio.create_task(other.await_result(receipt.request_id, timeout=30))
        await publish_result(jetstream, integration, receipt.request_id)
        result = await waiting
    assert result.request_id == receipt.request_id


async def test_await_result_gives_up_after_its_timeout_naming_the_request(
    client: SyncbusClient, unique_id: Callable[..., str]
):
    receipt = await client.request_sync(unique_id("app"), period_id="2017-01")
    with pytest.raises(ResultTimeoutError) as caught:
        await client.await_result(receipt, timeout=1.0)
    assert caught.value.request_id == receipt.request_id
    assert isinstance(caught.value, TimeoutError)


async def test_a_durable_feed_resumes_after_the_last_acknowledged_result_when_the_application_restarts(
    nats_server: NatsServer, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    durable = unique_id("billing")
    for n in range(3):
        await publish_result(jetstream, integration, f"r{n}")
    async with SyncbusClient.connect(nats_server.url) as app:
        seen = []
        async with app.results(integration, durable=durable) as feed:
            async for result in feed:
                seen.append(result.request_id)
                if len(seen) == 2:
                    break
        assert seen == ["r0", "r1"]
    # The application is gone; results keep arriving meanwhile.
    await publish_result(jetstream, integration, "r3")
    async with SyncbusClient.connect(nats_server.url) as restarted:
        feed = restarted.results(integration, durable=durable, idle_timeout=2.0)
        assert [r.request_id async for r in feed] == ["r2", "r3"]


async def test_the_result_being_handled_when_the_application_failed_comes_again(
    nats_server: NatsServer, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    durable = unique_id("billing")
    await publish_result(jetstream, integration, "r0")

    async def application_that_fails() -> None:
        async with (
            SyncbusClient.connect(nats_server.url) as app,
            app.results(integration, durable=durable, ack_wait=1.0) as feed,
        ):
            async for _result in feed:
                raise RuntimeError("the application failed while handling it")

    with pytest.raises(RuntimeError):
        await application_that_fails()
    async with SyncbusClient.connect(nats_server.url, name="restarted") as restarted:
        # Not acknowledged: it is redelivered once its ack wait (1 s here) has passed.
        feed = restarted.results(integration, durable=durable, idle_timeout=8.0)
        assert [r.request_id async for r in feed] == ["r0"]


async def test_a_new_durable_can_start_with_results_from_now_on(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    await publish_result(jetstream, integration, "old")
    async with client.results(integration, durable=unique_id("d"), start="new") as feed:
        await publish_result(jetstream, integration, "fresh")
        result = await anext(feed)
    assert result.request_id == "fresh"


async def test_a_durable_name_already_following_another_integration_is_refused(
    client: SyncbusClient, unique_id: Callable[..., str]
):
    durable = unique_id("d")
    async with client.results(unique_id("a"), durable=durable):
        pass
    with pytest.raises(DurableConflictError, match="already follows"):
        async with client.results(unique_id("b"), durable=durable):
            pass
    assert await client.delete_results_durable(durable) is True
    assert await client.delete_results_durable(durable) is False


async def test_a_durable_feed_carries_on_after_nats_restarts(
    nats_server: NatsServer, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    integration = unique_id("app")
    await publish_result(jetstream, integration, "before")
    async with (
        SyncbusClient.connect(nats_server.url) as app,
        app.results(integration, durable=unique_id("d")) as feed,
    ):
        assert (await anext(feed)).request_id == "before"
        await nats_server.restart()
        await publish_result(jetstream, integration, "after")
        assert (await asyncio.wait_for(anext(feed), 60)).request_id == "after"


async def test_recent_results_are_the_last_ones_oldest_first(
    client: SyncbusClient, jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    mine, other = unique_id("app"), unique_id("other")
    for n in range(5):
        await publish_result(jetstream, mine, f"m{n}")
        await publish_result(jetstream, other, f"o{n}")
    assert [r.request_id for r in await client.recent_results(mine, limit=3)] == ["m2", "m3", "m4"]
    assert [r.request_id for r in await client.recent_results(limit=2)] == ["m4", "o4"]


async def test_progress_is_delivered_live(client: SyncbusClient, unique_id: Callable[..., str]):
    integration = unique_id("app")
    async with client.progress(integration) as feed:
        sent = SyncProgress(
            integration_id=integration,
            request_id="r1",
            idempotency_key="k",
            batches_done=1,
            batches_total=2,
            vouchers_done=5,
            vouchers_total=10,
        )
        await client.nc.publish(t.progress_subject(integration), sent.to_bytes())
        received = await asyncio.wait_for(anext(aiter(feed)), 10)
    assert received == sent


async def test_connecting_to_a_port_where_nothing_listens_fails_within_the_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError, match=f"cannot reach NATS at nats://127.0.0.1:{port}"):
        await SyncbusClient.connect(f"nats://app:s3cret@127.0.0.1:{port}", connect_timeout=1.5)


async def test_a_url_password_never_appears_in_a_connect_error():
    with pytest.raises(ConnectError) as caught:
        await SyncbusClient.connect("nats://app:s3cret@127.0.0.1:1", connect_timeout=1.0)
    assert "s3cret" not in str(caught.value)
