"""deploy/nats/syncbus-accounts.conf against a real nats-server: who may ask, listen and read.

Each denial is shown with real connections as the configured users: the server's refusal
arrives on the offending connection, and the party that would have heard the message got
nothing once a round trip to the server has completed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.errors import NoRespondersError
from nats.js.errors import APIError, NotFoundError
from nats_security_support import (
    Watched,
    connect_as,
    connected,
)

from syncbus_client import RequestReceipt, SyncbusClient
from syncbus_devstack import NatsServer
from syncbus_devstack.nats_users import USERS, NatsUsers
from syncbus_shared import topology as t
from syncbus_shared.contracts import SyncResult, SyncStatus, Voucher, VoucherLine
from syncbus_shared.staging import stage_vouchers

pytestmark = pytest.mark.asyncio(loop_scope="module")

Locked = tuple[NatsServer, NatsUsers]

CREDENTIAL_REQUESTERS = ("dispatcher", "health-monitor")
NOT_CREDENTIAL_REQUESTERS = tuple(u for u in USERS if u not in CREDENTIAL_REQUESTERS)
NOT_CREDENTIAL_SERVICE = tuple(u for u in USERS if u != "credentials")


async def _responder(server: NatsServer, users: NatsUsers) -> tuple[Watched, list[str]]:
    """A stand-in credential service: the `credentials` user in its queue group, answering."""
    heard: list[str] = []
    service = await connect_as(server, users, "credentials")

    async def answer(msg: object) -> None:
        heard.append(msg.subject)  # type: ignore[attr-defined]
        await msg.respond(b"answer")  # type: ignore[attr-defined]

    await service.nc.subscribe(t.CREDENTIALS_FILTER, queue=t.QUEUE_CREDENTIALS, cb=answer)
    await service.settle()
    return service, heard


@pytest.mark.parametrize("user", CREDENTIAL_REQUESTERS)
async def test_the_dispatcher_and_the_health_monitor_get_an_answer_to_a_credential_request(
    locked_nats: Locked, user: str, unique_id
):
    server, users = locked_nats
    service, heard = await _responder(server, users)
    subject = t.credentials_subject(unique_id("it"), f"_INBOX_{user}")
    async with connected(server, users, user) as [requester]:
        reply = await requester.nc.request(subject, b"{}", timeout=5)
        assert reply.data == b"answer"
        # The reply came back on the requester's own inbox prefix.
        assert reply.subject.startswith(f"_INBOX_{user}.")
        assert requester.violations() == []
    assert heard == [subject]
    await service.nc.close()


@pytest.mark.parametrize("user", NOT_CREDENTIAL_REQUESTERS)
async def test_any_other_user_asking_for_a_credential_is_refused_and_the_service_hears_nothing(
    locked_nats: Locked, user: str, unique_id
):
    server, users = locked_nats
    service, heard = await _responder(server, users)
    subject = t.credentials_subject(unique_id("it"), f"_INBOX_{user}")
    async with connected(server, users, user) as [requester]:
        await requester.nc.publish(subject, b"{}", reply=f"_INBOX_{user}.x")
        refusal = await requester.refused(subject)
        assert "publish" in refusal.lower()
        await service.settle()
    assert heard == []
    await service.nc.close()


@pytest.mark.parametrize(
    "reply", ["sync.result.x", "_INBOX_application.x", "_INBOX_scheduler.x", "$KV.integrations.x"]
)
async def test_a_credential_responder_that_answered_blindly_would_still_be_refused_by_the_server(
    locked_nats: Locked, reply: str, unique_id
):
    """The server's own layer, behind the service's check: only requesters' inboxes."""
    server, users = locked_nats
    service, heard = await _responder(server, users)  # answers whatever reply it is given
    subject = t.credentials_subject(unique_id("it"), "_INBOX_dispatcher")
    async with connected(server, users, "dispatcher") as [dispatcher]:
        await dispatcher.nc.publish(subject, b"{}", reply=reply)
        refusal = await service.refused(reply)
        assert "publish" in refusal.lower()
    assert heard == [subject]
    await service.nc.close()


@pytest.mark.parametrize(
    ("user", "other"), [("dispatcher", "health-monitor"), ("health-monitor", "dispatcher")]
)
async def test_a_requester_may_not_ask_in_the_other_requesters_name(
    locked_nats: Locked, user: str, other: str, unique_id
):
    server, users = locked_nats
    service, heard = await _responder(server, users)
    subject = t.credentials_subject(unique_id("it"), f"_INBOX_{other}")
    async with connected(server, users, user) as [requester]:
        await requester.nc.publish(subject, b"{}", reply=f"_INBOX_{other}.stolen")
        refusal = await requester.refused(subject)
        assert "publish" in refusal.lower()
        await service.settle()
    assert heard == []
    await service.nc.close()


@pytest.mark.parametrize("user", NOT_CREDENTIAL_SERVICE)
@pytest.mark.parametrize(
    "subject",
    [
        "credentials.get.*.*",
        "credentials.get._INBOX_dispatcher.toyen-xledger",
        "credentials.invalidate.*",
    ],
)
async def test_no_user_but_the_credential_service_may_listen_to_credential_subjects(
    locked_nats: Locked, user: str, subject: str
):
    server, users = locked_nats
    async with connected(server, users, user) as [listener]:
        await listener.nc.subscribe(subject)
        refusal = await listener.refused(subject)
        assert "subscription" in refusal.lower()


async def test_the_credential_service_may_listen_to_its_requests_and_invalidations(
    locked_nats: Locked,
):
    server, users = locked_nats
    async with connected(server, users, "credentials") as [service]:
        await service.nc.subscribe(t.CREDENTIALS_FILTER, queue=t.QUEUE_CREDENTIALS)
        await service.nc.subscribe("credentials.invalidate.*")
        await service.settle()
        assert service.violations() == []


async def test_an_operator_listening_to_everything_still_hears_no_credential_request(
    locked_nats: Locked, unique_id
):
    server, users = locked_nats
    service, heard = await _responder(server, users)
    seen: list[str] = []

    async def record(msg: object) -> None:
        seen.append(msg.subject)  # type: ignore[attr-defined]

    subject = t.credentials_subject(unique_id("it"), "_INBOX_dispatcher")
    async with connected(server, users, "operator", "dispatcher") as [operator, dispatcher]:
        await operator.nc.subscribe(">", cb=record)
        await operator.settle()
        await dispatcher.nc.request(subject, b"{}", timeout=5)
        await operator.settle()
    assert heard == [subject]
    assert not [s for s in seen if s.startswith(("credentials.", "_INBOX_dispatcher."))]
    await service.nc.close()


@pytest.mark.parametrize("user", NOT_CREDENTIAL_REQUESTERS)
async def test_nobody_but_the_requester_may_listen_on_its_inbox(locked_nats: Locked, user: str):
    server, users = locked_nats
    async with connected(server, users, user) as [listener]:
        for inbox in ("_INBOX_dispatcher.>", "_INBOX_health-monitor.>"):
            await listener.nc.subscribe(inbox)
            await listener.refused(inbox)


# --- the application user: stage, request, read results; nothing else ----------------------


async def test_an_application_connecting_with_the_client_as_its_user_and_inbox_can_request(
    locked_nats: Locked, unique_id
):
    server, users = locked_nats
    password = users.client_env("application")["SYNCBUS_NATS_PASSWORD"]
    async with SyncbusClient.connect(
        server.url, user="application", password=password, inbox_prefix="_INBOX_application"
    ) as client:
        receipt = await client.request_sync(unique_id("it"), period_id="2017-01")
        again = await client.request_sync(receipt.integration_id, period_id="2017-01")
    assert again.duplicate


async def test_the_application_stages_requests_and_reads_its_result_through_the_client(
    locked_nats: Locked, unique_id
):
    """The client library's whole path (JetStream publish, request lookup, result scan)."""
    server, users = locked_nats
    integration_id = unique_id("it")
    async with connected(server, users, "application", "dispatcher") as [app, dispatcher]:
        client = SyncbusClient(app.nc)
        receipt = await client.request_sync(integration_id, period_id="2017-01")
        again = await client.request_sync(integration_id, period_id="2017-01")
        assert again.duplicate  # looked the first one up in SYNC_REQUESTS
        result = _result_for(receipt)
        await dispatcher.nc.jetstream().publish(
            t.result_subject(integration_id),
            result.to_bytes(),
            headers={"Nats-Msg-Id": str(receipt.stream_seq)},
        )
        found = await client.await_result(receipt, timeout=10)
        assert found.status is SyncStatus.SUCCEEDED
        recent = await client.recent_results(integration_id)
        assert [r.request_id for r in recent] == [receipt.request_id]
        async with client.results(integration_id, idle_timeout=2) as feed:
            assert [r.request_id async for r in feed] == [receipt.request_id]
        async with client.results(integration_id, durable=unique_id("feed"), idle_timeout=2) as d:
            assert [r.request_id async for r in d] == [receipt.request_id]
        staged = await stage_vouchers(
            app.nc.jetstream(), integration_id, [_voucher(integration_id)]
        )
        assert staged.staged == 1
        assert app.violations() == []


def _result_for(receipt: RequestReceipt) -> SyncResult:
    now = datetime.now(UTC)
    return SyncResult(
        request_id=receipt.request_id,
        integration_id=receipt.integration_id,
        idempotency_key=receipt.idempotency_key,
        period_id="2017-01",
        status=SyncStatus.SUCCEEDED,
        published_at=now,
        finished_at=now,
    )


def _voucher(integration_id: str) -> Voucher:
    return Voucher(
        voucher_id=f"{integration_id}-v1",
        period_id="2017-01",
        transaction_date="2017-01-10",
        posting_date="2017-01-10",
        description="one voucher",
        lines=(
            VoucherLine(record_id="1", account_id="6300", debit="100.00"),
            VoucherLine(record_id="2", account_id="1920", credit="100.00"),
        ),
    )


@pytest.mark.parametrize(
    "subject",
    ["credentials.get.*.*", "credentials.>", "sync.warmup.*", "sync.request.*", "alerts.>"],
)
async def test_the_application_may_not_listen_to_credentials_warm_ups_or_requests(
    locked_nats: Locked, subject: str
):
    server, users = locked_nats
    async with connected(server, users, "application") as [app]:
        await app.nc.subscribe(subject)
        await app.refused(subject)


@pytest.mark.parametrize(
    "subject",
    ["sync.result.x", "sync.warmup.x", "sync.progress.x", "health.status.x", "alerts.drift.x"],
)
async def test_the_application_may_not_publish_results_warm_ups_or_anything_but_requests(
    locked_nats: Locked, subject: str
):
    server, users = locked_nats
    async with connected(server, users, "application") as [app]:
        await app.nc.publish(subject, b"{}")
        await app.refused(subject)


@pytest.mark.parametrize(
    "bucket", [t.KV_INTEGRATIONS, t.KV_SYNC_RUNS, t.KV_HEALTH, t.KV_SCHEDULE_STATE]
)
async def test_the_application_cannot_open_read_or_write_a_kv_bucket(
    locked_nats: Locked, bucket: str
):
    server, users = locked_nats
    async with connected(server, users, "application") as [app]:
        js = app.nc.jetstream(timeout=1.0)  # the refused API request gets no answer
        with pytest.raises((APIError, NotFoundError, NoRespondersError, TimeoutError)):
            await js.key_value(bucket)
        await app.refused(f"$JS.API.STREAM.INFO.KV_{bucket}")
        await app.nc.publish(f"$KV.{bucket}.anything", b"{}")
        await app.refused(f"$KV.{bucket}.anything")


async def test_the_operator_may_invalidate_a_cached_credential_and_the_service_hears_it(
    locked_nats: Locked, unique_id
):
    server, users = locked_nats
    subject = t.credentials_invalidate_subject(unique_id("it"))
    async with connected(server, users, "credentials", "operator") as [service, operator]:
        sub = await service.nc.subscribe(t.CREDENTIALS_INVALIDATE_FILTER)
        await service.settle()
        await operator.nc.publish(subject, b"")
        assert (await sub.next_msg(timeout=5)).subject == subject
        assert operator.violations() == []


@pytest.mark.parametrize("user", [u for u in USERS if u not in ("operator", "credentials")])
async def test_no_service_or_application_may_invalidate_a_cached_credential(
    locked_nats: Locked, user: str
):
    server, users = locked_nats
    subject = t.credentials_invalidate_subject("toyen-xledger")
    async with connected(server, users, user) as [someone]:
        await someone.nc.publish(subject, b"")
        await someone.refused(subject)
