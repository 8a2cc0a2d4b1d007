"""One trace follows a sync: the scheduler's fire, the request, the dispatcher, the credential
request and its handling, every vendor HTTP call and the result.

The in-memory exporter lives in this process, so the services' own apps (`build_app`) run here
too, against a real nats-server, a real OpenBao and the Xledger fake over real HTTP; the
scheduler's side is its one publish path, `Firer.publish_requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from syncbus_credentials.service import build_app as credentials_app
from syncbus_credentials.settings import CredentialSettings, VaultSettings
from syncbus_devstack import NatsServer, OpenBaoDev
from syncbus_dispatcher.service import build_app as dispatcher_app
from syncbus_dispatcher.settings import DispatcherSettings
from syncbus_fakes.business_central import BusinessCentralFakeSettings
from syncbus_fakes.business_central import create_app as create_bc_app
from syncbus_fakes.server import serve_app
from syncbus_fakes.xledger import XledgerFakeSettings, create_app
from syncbus_scheduler.firing import Fire, Firer
from syncbus_scheduler.settings import SchedulerSettings
from syncbus_scheduler.state import ScheduleStateStore
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    PeriodKind,
    Schedule,
    SyncResult,
    SyncStatus,
    Voucher,
    VoucherLine,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.logs import configure_logging
from syncbus_shared.settings import NatsSettings, ServiceSettings, TopologySettings
from syncbus_shared.staging import stage_vouchers
from syncbus_shared.tracing import TracingTransport, redacted_url

# --- an in-memory exporter on the process's tracer provider ----------------------------------


class _Arrivals(SpanProcessor):
    """Wakes waiters whenever a span ends (spans end on the event loop's thread)."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.set()


@dataclass
class Spans:
    exporter: InMemorySpanExporter
    arrivals: _Arrivals

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    async def wait_for(
        self, done: Callable[[list[ReadableSpan]], bool], timeout: float = 20.0
    ) -> list[ReadableSpan]:
        async with asyncio.timeout(timeout):
            while not done(spans := self.all()):
                self.arrivals.ended.clear()
                await self.arrivals.ended.wait()
        return spans


_installed: Spans | None = None


def _install() -> Spans:
    """The process's provider can be set once: add our processors to it, or set one."""
    global _installed  # noqa: PLW0603 - one exporter per test process
    if _installed is None:
        exporter, arrivals = InMemorySpanExporter(), _Arrivals()
        current = trace.get_tracer_provider()
        provider = current if isinstance(current, TracerProvider) else TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.add_span_processor(arrivals)
        if provider is not current:
            trace.set_tracer_provider(provider)
        _installed = Spans(exporter, arrivals)
    return _installed


@pytest.fixture
def spans() -> Iterator[Spans]:
    installed = _install()
    installed.exporter.clear()
    installed.arrivals.ended = asyncio.Event()  # bound to this test's loop
    yield installed
    installed.exporter.clear()


# --- the services, the vendor fake, one integration -------------------------------------------


@dataclass
class World:
    integration_id: str
    fake_url: str
    secrets: list[str]
    """Every secret value this world knows: none may appear in a span."""
    nc: Client
    js: JetStreamContext
    results: asyncio.Queue[SyncResult]


SCHEDULE = Schedule(cron="5 0 1 * *", timezone="Europe/Oslo", period=PeriodKind.MONTH)


def _vouchers(integration_id: str, count: int) -> list[Voucher]:
    return [
        Voucher(
            voucher_id=f"{integration_id}-v{n}",
            period_id="2017-01",
            transaction_date="2017-01-10",
            posting_date="2017-01-10",
            description=f"voucher {n}",
            lines=(
                VoucherLine(record_id="1", account_id="6300", debit=f"{100 + n}.50"),
                VoucherLine(record_id="2", account_id="1920", credit=f"{100 + n}.50"),
            ),
        )
        for n in range(count)
    ]


async def _start_services(
    stack: AsyncExitStack, nats_server: NatsServer, openbao: OpenBaoDev
) -> None:
    """The credential service and a dispatcher, each its own FastStream app, in this process."""
    nats = NatsSettings(url=nats_server.url)
    vault = VaultSettings(url=openbao.url, token=openbao.root_token.get_secret_value())
    apps = [
        credentials_app(nats, vault, CredentialSettings()),
        dispatcher_app(
            nats, DispatcherSettings(), TopologySettings(), ServiceSettings(instance_id="traced")
        ),
    ]
    for app in apps:
        await stack.enter_async_context(app.broker)  # type: ignore[arg-type]
        await app.start()
        stack.push_async_callback(app.stop)


async def _results(
    stack: AsyncExitStack, nc: Client, integration_id: str
) -> asyncio.Queue[SyncResult]:
    results: asyncio.Queue[SyncResult] = asyncio.Queue()

    async def on_result(msg: Msg) -> None:
        await results.put(SyncResult.from_bytes(msg.data))

    sub = await nc.subscribe(t.result_subject(integration_id), cb=on_result)
    stack.push_async_callback(sub.unsubscribe)
    return results


@pytest.fixture
async def world(
    nats_server: NatsServer,
    nc: Client,
    jetstream: JetStreamContext,
    openbao: OpenBaoDev,
    unique_id: Callable[..., str],
) -> AsyncIterator[World]:
    """An Xledger integration (a static API token in Vault) with January 2017 staged."""
    integration_id = unique_id("traced")
    token = secrets.token_urlsafe(18)
    async with AsyncExitStack() as stack:
        fake_url = await stack.enter_async_context(
            serve_app(create_app(XledgerFakeSettings(tokens=[token])))
        )
        await openbao.write_secret(f"integrations/{integration_id}", {"api_token": token})
        await put_integration(
            jetstream,
            IntegrationConfig(
                integration_id=integration_id,
                vendor="xledger",
                endpoint=f"{fake_url}/graphql",
                credentials_path=f"integrations/{integration_id}",
                timeout_seconds=5.0,
                schedule=SCHEDULE,
            ),
        )
        # 260 two-line vouchers: 520 lines, so two export calls of at most 500 lines.
        await stage_vouchers(jetstream, integration_id, _vouchers(integration_id, 260))
        await _start_services(stack, nats_server, openbao)
        results = await _results(stack, nc, integration_id)
        known = [token, openbao.root_token.get_secret_value()]
        yield World(integration_id, fake_url, known, nc, jetstream, results)


@pytest.fixture
async def bc_world(
    nats_server: NatsServer,
    nc: Client,
    jetstream: JetStreamContext,
    openbao: OpenBaoDev,
    unique_id: Callable[..., str],
) -> AsyncIterator[World]:
    """A Business Central integration: OAuth2 client credentials in Vault, tokens minted by
    the credential service at the fake's Entra-like token endpoint."""
    integration_id = unique_id("traced-bc")
    client_id, client_secret = f"app-{integration_id}", "bc-secret-" + secrets.token_urlsafe(16)
    settings = BusinessCentralFakeSettings(clients=[f"{client_id}:{client_secret}"])
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve_app(create_bc_app(settings)))
        async with httpx.AsyncClient(base_url=url) as control:
            listed = (await control.get("/_fake/companies")).json()
        tenant, company = listed["tenant_id"], listed["environments"]["production"][0]["id"]
        token_url = f"{url}/{tenant}/oauth2/v2.0/token"
        await openbao.write_secret(
            f"integrations/{integration_id}",
            {"client_id": client_id, "client_secret": client_secret, "token_url": token_url},
        )
        await put_integration(
            jetstream,
            IntegrationConfig(
                integration_id=integration_id,
                vendor="business_central",
                endpoint=f"{url}/v2.0/{tenant}/production/api/v2.0/companies({company})",
                credentials_path=f"integrations/{integration_id}",
                timeout_seconds=10.0,
                options={"company_id": company},
                schedule=SCHEDULE,
            ),
        )
        await stage_vouchers(jetstream, integration_id, _vouchers(integration_id, 3))
        await _start_services(stack, nats_server, openbao)
        results = await _results(stack, nc, integration_id)
        known = [client_secret, openbao.root_token.get_secret_value(), JWT_HEADER]
        yield World(integration_id, token_url, known, nc, jetstream, results)


JWT_HEADER = "eyJ0eXAiOiAiSldUIi"
"""How every access token the Business Central fake mints begins (`{"typ": "JWT", ...}`)."""


async def _fire(world: World) -> SyncResult:
    """The scheduler's fire of 1 February 2017 00:05 in Oslo, which exports January 2017."""
    states = ScheduleStateStore(await world.js.key_value(t.KV_SCHEDULE_STATE))
    firer = Firer(world.nc, world.js, states, SchedulerSettings())
    fire = Fire(world.integration_id, SCHEDULE, datetime(2017, 1, 31, 23, 5, tzinfo=UTC))
    (report,) = await firer.publish_requests([fire])
    assert report.error is None
    assert not report.duplicate
    return await asyncio.wait_for(world.results.get(), 60)


# --- helpers over finished spans -------------------------------------------------------------


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names: list[str] = []
    parent = _parent_id(span)
    while parent is not None and parent in by_id:
        names.append(by_id[parent].name)
        parent = _parent_id(by_id[parent])
    return names


def _every_value(span: ReadableSpan) -> Iterator[str]:
    yield span.name
    for value in (span.attributes or {}).values():
        yield str(value)
    for event in span.events:
        yield event.name
        for value in (event.attributes or {}).values():
            yield str(value)
    for link in span.links:
        for value in (link.attributes or {}).values():
            yield str(value)
    if span.status.description:
        yield span.status.description


def _finished_sync(integration_id: str) -> Callable[[list[ReadableSpan]], bool]:
    names = {"process sync.request.*", f"publish sync.result.{integration_id}"}

    def done(spans: list[ReadableSpan]) -> bool:
        return names <= {s.name for s in spans}

    return done


# --- the chain -------------------------------------------------------------------------------


async def test_one_trace_follows_a_sync_from_the_scheduler_fire_to_its_result(
    world: World, spans: Spans
) -> None:
    result = await _fire(world)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    finished = await spans.wait_for(_finished_sync(world.integration_id))

    iid = world.integration_id
    fire = _one(finished, f"publish sync.request.{iid}")
    trace_id = _trace_id(fire)
    chain = [s for s in finished if _trace_id(s) == trace_id]
    by_id = {_span_id(s): s for s in chain}

    # The fire is the root; everything of the sync hangs below it.
    assert fire.parent is None
    assert fire.kind is SpanKind.PRODUCER
    assert all(s is fire or _parent_id(s) in by_id for s in chain)

    process = _one(chain, "process sync.request.*")
    assert process.kind is SpanKind.CONSUMER
    assert _parent_id(process) == _span_id(fire)

    request = _one(chain, f"request {t.credentials_subject(iid)}")
    assert request.kind is SpanKind.CLIENT
    assert "process sync.request.*" in _ancestors(request, by_id)

    serve = _one(chain, f"process {t.credentials_subject('*')}")
    assert serve.kind is SpanKind.SERVER
    assert _parent_id(serve) == _span_id(request)

    vendor_calls = [s for s in chain if s.kind is SpanKind.CLIENT and s.name == "POST"]
    async with httpx.AsyncClient(base_url=world.fake_url) as control:  # untraced: not in spans
        stats = (await control.get("/_fake/stats")).json()
    assert len(vendor_calls) == stats["requests_total"] >= 2  # two batches of at most 500 lines
    for call in vendor_calls:
        assert "process sync.request.*" in _ancestors(call, by_id)

    published = _one(chain, f"publish sync.result.{iid}")
    assert published.kind is SpanKind.PRODUCER
    assert _parent_id(published) == _span_id(process)

    # No span of this sync strayed into another trace.
    for span in finished:
        if iid in span.name or span.kind is SpanKind.CLIENT:
            assert _trace_id(span) == trace_id, span.name


async def test_the_spans_carry_the_messaging_and_http_semantic_conventions(
    world: World, spans: Spans
) -> None:
    await _fire(world)
    finished = await spans.wait_for(_finished_sync(world.integration_id))
    iid = world.integration_id
    key = f"{iid}:2017-01"

    fire = _one(finished, f"publish sync.request.{iid}").attributes or {}
    assert fire["messaging.system"] == "nats"
    assert fire["messaging.destination.name"] == f"sync.request.{iid}"
    assert fire["messaging.destination.template"] == "sync.request.*"
    assert fire["messaging.operation.name"] == "publish"
    assert fire["messaging.operation.type"] == "send"
    assert fire["messaging.message.id"] == key
    assert isinstance(fire["messaging.message.body.size"], int)
    assert fire["messaging.message.body.size"] > 0

    process = _one(finished, "process sync.request.*").attributes or {}
    assert process["messaging.system"] == "nats"
    assert process["messaging.destination.name"] == f"sync.request.{iid}"
    assert process["messaging.operation.type"] == "process"
    assert process["messaging.consumer.group.name"] == t.CONSUMER_DISPATCHER
    assert process["messaging.message.id"] == key

    request = _one(finished, f"request {t.credentials_subject(iid)}").attributes or {}
    assert request["messaging.destination.name"] == t.credentials_subject(iid)
    assert request["messaging.operation.type"] == "send"

    result = _one(finished, f"publish sync.result.{iid}").attributes or {}
    assert result["messaging.destination.name"] == f"sync.result.{iid}"
    assert str(result["messaging.message.id"]).startswith("result:")

    fake = httpx.URL(world.fake_url)
    calls = [s for s in finished if s.kind is SpanKind.CLIENT and s.name == "POST"]
    assert calls
    for call in calls:
        attributes = call.attributes or {}
        assert attributes["http.request.method"] == "POST"
        assert attributes["server.address"] == fake.host
        assert attributes["server.port"] == fake.port
        assert attributes["url.full"] == f"{world.fake_url}/graphql"
        assert attributes["http.response.status_code"] == 200
        assert attributes["network.protocol.version"] == "1.1"
        assert "error.type" not in attributes


async def test_no_span_of_a_sync_carries_a_secret_or_a_body(world: World, spans: Spans) -> None:
    await _fire(world)
    finished = await spans.wait_for(_finished_sync(world.integration_id))
    for span in finished:
        for value in _every_value(span):
            for secret in world.secrets:
                assert secret not in value, f"{span.name} carries a secret"
            assert "voucher 1" not in value  # no message body either
            assert "addGLImportItems" not in value  # nor a GraphQL document


async def test_the_credential_services_token_endpoint_call_is_part_of_the_syncs_trace(
    bc_world: World, spans: Spans
) -> None:
    iid = bc_world.integration_id
    result = await _fire(bc_world)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    finished = await spans.wait_for(_finished_sync(iid))
    trace_id = _trace_id(_one(finished, f"publish sync.request.{iid}"))
    chain = [s for s in finished if _trace_id(s) == trace_id]
    by_id = {_span_id(s): s for s in chain}

    serve = _one(chain, f"process {t.credentials_subject('*')}")
    token_url = bc_world.fake_url
    (token_call,) = [s for s in chain if (s.attributes or {}).get("url.full") == token_url]
    assert token_call.kind is SpanKind.CLIENT
    assert token_call.name == "POST"
    assert _parent_id(token_call) == _span_id(serve)
    assert (token_call.attributes or {})["http.response.status_code"] == 200

    vendor_calls = [s for s in chain if s.kind is SpanKind.CLIENT and s is not token_call]
    vendor_calls = [s for s in vendor_calls if "http.request.method" in (s.attributes or {})]
    assert vendor_calls
    for call in vendor_calls:
        assert "process sync.request.*" in _ancestors(call, by_id)
        query = httpx.URL(str((call.attributes or {})["url.full"])).params
        assert all(value == "REDACTED" for value in query.values())

    for span in finished:
        for value in _every_value(span):
            for secret in bc_world.secrets:  # the client secret, Vault's token, access tokens
                assert secret not in value, f"{span.name} carries a secret"


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The services' JSON logging, into a buffer of this test's (undone when it ends)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        configure_logging("pytest")  # binds the stderr of this moment: the buffer

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    try:
        yield read
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_a_log_line_written_while_a_sync_runs_carries_its_trace_id(
    json_logs: Callable[[], list[dict[str, Any]]], world: World, spans: Spans
) -> None:
    await _fire(world)
    finished = await spans.wait_for(_finished_sync(world.integration_id))
    fire = _one(finished, f"publish sync.request.{world.integration_id}")
    key = f"{world.integration_id}:2017-01"
    run_lines = [line for line in json_logs() if line.get("key") == key]
    assert {line["event"] for line in run_lines} >= {
        "scheduler.request_published",
        "dispatcher.run_started",
        "dispatcher.result_published",
    }
    assert {line.get("trace_id") for line in run_lines} == {format(_trace_id(fire), "032x")}


# --- the HTTP span on its own ---------------------------------------------------------------


def test_a_url_keeps_its_query_names_and_loses_their_values_and_the_user_info() -> None:
    url = httpx.URL("https://user:pw@vendor.example:8443/api/v2/items?$filter=no eq '7'&sig=abc#x")
    assert (
        redacted_url(url)
        == "https://vendor.example:8443/api/v2/items?$filter=REDACTED&sig=REDACTED"
    )
    assert redacted_url(httpx.URL("http://h/p")) == "http://h/p"


async def test_a_failed_vendor_call_names_its_error_class_and_status_but_no_header(
    spans: Spans,
) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["traceparent"].startswith("00-")
        return httpx.Response(429, json={"error": "slow down"})

    transport = TracingTransport(httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get(
            "https://vendor.example/q?key=hidden-value", headers={"Authorization": "token hidden-1"}
        )
    assert response.status_code == 429
    (span,) = [s for s in spans.all() if s.kind is SpanKind.CLIENT]
    attributes: dict[str, Any] = dict(span.attributes or {})
    assert attributes["error.type"] == "429"
    assert attributes["url.full"] == "https://vendor.example/q?key=REDACTED"
    assert span.status.is_ok is False
    assert all("hidden" not in value for value in _every_value(span))


async def test_an_applications_own_trace_continues_through_the_client_into_the_dispatcher(
    spans: Spans, world: World
):
    from syncbus_client import SyncbusClient  # noqa: PLC0415

    tracer = trace.get_tracer("an-application")
    with tracer.start_as_current_span("month-end close") as root:
        client = SyncbusClient(world.nc)
        await client.request_sync(world.integration_id, period_id="2017-01")
    await asyncio.wait_for(world.results.get(), 60)
    iid = world.integration_id
    finished = await spans.wait_for(_finished_sync(iid))

    trace_id = root.get_span_context().trace_id
    chain = [s for s in finished if _trace_id(s) == trace_id]
    by_id = {_span_id(s): s for s in chain}
    publish = _one(chain, f"publish {t.request_subject(iid)}")
    assert _parent_id(publish) == root.get_span_context().span_id
    process = _one(chain, "process sync.request.*")
    assert _parent_id(process) == _span_id(publish)
    assert "month-end close" in _ancestors(_one(chain, f"publish {t.result_subject(iid)}"), by_id)
