"""The real credential service, running as NATS user `credentials`, answers only into the
inbox of the user who asked, whatever reply subject a request names.

A stack with `secure_nats=True` runs nats-server with deploy/nats/syncbus-accounts.conf, OpenBao
and the credential service as its own process. A request names its requester's inbox prefix in
its subject (which the server lets each user do only for its own); one whose reply subject lies
elsewhere, another requester's inbox included, is refused by the service
(`credentials.reply_refused` in its log), and the party listening there receives nothing.
Behind that, the server would refuse the service's publish to anything but the requesters'
inboxes (`tests/security/test_nats_permissions.py` shows it with a responder that answers
blindly).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from nats.js.errors import NotFoundError
from nats_security_support import Watched, connect_as

from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import CredentialRequest, IntegrationConfig
from syncbus_shared.credentials_client import fetch_credential
from syncbus_shared.integrations import put_integration

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTEGRATION = "toyen-locked"
SECRET = f"xl-locked-{secrets.token_urlsafe(12)}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("locked-stack"),
        services=("credentials",),
        fakes=(),
        secure_nats=True,
        secrets={f"integrations/{INTEGRATION}": {"api_token": SECRET}},
    ) as running:
        operator = await _as(running, "operator")
        config = IntegrationConfig(
            integration_id=INTEGRATION,
            vendor="xledger",
            endpoint="http://127.0.0.1:9/graphql",
            credentials_path=f"integrations/{INTEGRATION}",
        )
        await put_integration(operator.nc.jetstream(), config)
        await operator.nc.close()
        yield running


async def service_logged(stack: Stack, *fragments: str, timeout: float = 10.0) -> str:
    """The first line of the credential service's log holding every fragment, once written."""
    path = stack.log_dir / "credentials.log"
    async with asyncio.timeout(timeout):
        while True:
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            for line in text.splitlines():
                if all(f in line for f in fragments):
                    return line
            await asyncio.sleep(0.02)  # polling the service's own log line, not guessing a delay


async def _as(stack: Stack, user: str) -> Watched:
    assert stack.nats_users is not None
    return await connect_as(stack.nats, stack.nats_users, user)


def _request() -> bytes:
    return CredentialRequest(integration_id=INTEGRATION, purpose="sync").to_bytes()


@pytest.mark.parametrize("user", ["dispatcher", "health-monitor"])
async def test_the_dispatcher_and_the_health_monitor_get_the_secret_on_their_own_inbox(
    stack: Stack, user: str
):
    requester = await _as(stack, user)
    try:
        credential = await fetch_credential(requester.nc, INTEGRATION, purpose="sync", timeout=10)
        assert credential.secret.get_secret_value() == SECRET
        assert requester.nc._inbox_prefix.decode() == f"_INBOX_{user}"
        assert requester.violations() == []
    finally:
        await requester.nc.close()


@pytest.mark.parametrize(
    ("reply", "stream"),
    [
        (t.result_subject(INTEGRATION), t.STREAM_RESULTS),
        (f"ledger.{INTEGRATION}.2017-01.stolen", t.STREAM_LEDGER),
        (f"$KV.{t.KV_INTEGRATIONS}.{INTEGRATION}", f"KV_{t.KV_INTEGRATIONS}"),
        (t.health_subject(INTEGRATION), None),
        ("_INBOX_application.stolen", None),
        ("_INBOX_scheduler.stolen", None),
        ("_INBOX_ingress.stolen", None),
    ],
)
async def test_a_request_naming_another_subject_as_its_reply_gets_no_answer_there(
    stack: Stack, reply: str, stream: str | None
):
    dispatcher = await _as(stack, "dispatcher")
    operator = await _as(stack, "operator")
    heard: list[bytes] = []

    async def record(msg: object) -> None:
        heard.append(msg.data)  # type: ignore[attr-defined]

    try:
        js = operator.nc.jetstream()
        before = await _last_seq(js, stream, reply)
        await operator.nc.subscribe(reply, cb=record)
        await operator.settle()
        subject = t.credentials_subject(INTEGRATION, "_INBOX_dispatcher")
        await dispatcher.nc.publish(subject, _request(), reply=reply)
        await dispatcher.settle()
        line = await service_logged(
            stack, "credentials.reply_refused", reply.rsplit(".", 1)[0], subject
        )
        assert SECRET not in line
        assert dispatcher.violations() == []  # the dispatcher may ask under its own prefix
        await operator.settle()
        assert heard == []
        assert await _last_seq(js, stream, reply) == before
        # The service is still there and still answers the dispatcher properly.
        credential = await fetch_credential(dispatcher.nc, INTEGRATION, purpose="sync", timeout=10)
        assert credential.secret.get_secret_value() == SECRET
    finally:
        await dispatcher.nc.close()
        await operator.nc.close()
    assert stack.service("credentials").running


async def _last_seq(js: object, stream: str | None, subject: str) -> int | None:
    """The sequence of the last message stored on `subject` (None: none, or no stream)."""
    if stream is None:
        return None
    try:
        msg = await js.get_last_msg(stream, subject)  # type: ignore[attr-defined]
    except NotFoundError:
        return None
    return int(msg.seq)


async def test_a_dispatcher_naming_the_health_monitors_inbox_as_its_reply_gets_no_answer_there(
    stack: Stack,
):
    dispatcher = await _as(stack, "dispatcher")
    health = await _as(stack, "health-monitor")
    heard: list[bytes] = []
    arrived = asyncio.Condition()

    async def record(msg: object) -> None:
        async with arrived:
            heard.append(msg.data)  # type: ignore[attr-defined]
            arrived.notify_all()

    victim = "_INBOX_health-monitor.victim"
    try:
        await health.nc.subscribe(victim, cb=record)
        await health.settle()
        subject = t.credentials_subject(INTEGRATION, "_INBOX_dispatcher")
        await dispatcher.nc.publish(subject, _request(), reply=victim)
        await service_logged(stack, "credentials.reply_refused", "_INBOX_health-monitor", subject)
        # The refusal is logged before anything would have been sent; give a wrong answer
        # every chance to arrive anyway.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2), arrived:
                await arrived.wait_for(lambda: bool(heard))
        assert heard == []
    finally:
        await dispatcher.nc.close()
        await health.nc.close()
