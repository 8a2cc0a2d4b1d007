"""The dispatcher service: consumes sync requests, runs exports, publishes exactly one result each.

Per request message:

1. read it (`intake`): a malformed request gets a `rejected` result and is terminated;
2. claim its key in the run ledger: a key that already succeeded gets a `duplicate` result and
   posts nothing; a key another dispatcher is working on is retried after its lease;
3. run the export (`export`), renewing the lease and the JetStream ack deadline meanwhile;
4. write the outcome to the ledger, publish the result (Nats-Msg-Id = request id, so a
   republish after a crash is dropped by the stream), then ack.

A crash anywhere before the ack leaves the message to be redelivered; the ledger then says
what was already done, so nothing is exported twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from faststream import AckPolicy, FastStream
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from syncbus_adapters import AdapterError
from syncbus_shared import dlq
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    ErrorClass,
    ErrorInfo,
    IntegrationConfig,
    RunState,
    SyncProgress,
    SyncRequest,
    SyncResult,
    SyncStatus,
    Voucher,
    WarmUp,
    utc_now,
)
from syncbus_shared.credentials_client import CredentialUnavailableError
from syncbus_shared.faststream_support import raw_body
from syncbus_shared.health import current_health, fail_fast_error
from syncbus_shared.integrations import get_integration
from syncbus_shared.logs import get_logger
from syncbus_shared.natsclient import broker_options, pull_inbox_prefix
from syncbus_shared.probe_budget import ProbeBudget, budget_limits
from syncbus_shared.probes import Probes, ProbeSettings, nats_check
from syncbus_shared.settings import NatsSettings, ServiceSettings, TopologySettings
from syncbus_shared.staging import read_period, read_staged
from syncbus_shared.tracing import NatsTracingMiddleware, publish_span

from .export import Exporter, RunDeferredError, RunFailedError, RunPlan
from .intake import Rejection, read_request
from .metrics import DispatcherMetrics
from .run_context import bind_run, bound, run_scope
from .run_ledger import Claim, ClaimOutcome, LeaseLostError, RunLedger
from .sessions import SessionPool
from .settings import DispatcherSettings
from .voucher_ledger import VoucherLedger

log = get_logger()


def _header_text(text: str, limit: int = 300) -> str:
    """A header value: one line of printable ASCII (NATS headers are not for free text)."""
    flat = " ".join(text.split())
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in flat)[:limit]


def instance_name(settings: ServiceSettings) -> str:
    base = settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{base}-{uuid.uuid4().hex[:6]}"


@dataclass
class Dispatcher:
    nc: Client
    js: JetStreamContext
    settings: DispatcherSettings
    topology: TopologySettings
    ledger: RunLedger
    sessions: SessionPool
    exporter: Exporter
    budget: ProbeBudget
    metrics: DispatcherMetrics = field(default_factory=DispatcherMetrics)

    # --- results -------------------------------------------------------------------------
    async def publish_result(self, msg: Msg, result: SyncResult) -> None:
        """Publish the one final result of the request message `msg`.

        Its Nats-Msg-Id is the request message's stream sequence: a redelivery of the same
        message (after a crash between publishing and acking) publishes a copy the stream drops,
        while every stored request message, whatever request id it carries, gets its own result.
        """
        subject, body = t.result_subject(result.integration_id), result.to_bytes()
        msg_id = {"Nats-Msg-Id": f"result:{msg.metadata.sequence.stream}"}
        with publish_span(subject, body, msg_id) as headers:
            await self.js.publish(subject, body, headers=headers)
        self.metrics.result(result, bound("integration_type"))
        log.info(
            "dispatcher.result_published",
            integration_id=result.integration_id,
            key=result.idempotency_key,
            request_id=result.request_id,
            status=result.status.value,
            vouchers=result.vouchers,
        )

    async def _reject(self, msg: Msg, rejection: Rejection) -> None:
        log.warning(
            "dispatcher.request_rejected",
            integration_id=rejection.integration_id,
            request_id=rejection.request_id,
            reason=rejection.message,
        )
        await self.publish_result(
            msg,
            SyncResult(
                request_id=rejection.request_id,
                integration_id=rejection.integration_id,
                idempotency_key=rejection.idempotency_key,
                period_id=rejection.period_id,
                status=SyncStatus.REJECTED,
                error=ErrorInfo(error_class=ErrorClass.INVALID_REQUEST, message=rejection.message),
            ),
        )
        await msg.term()

    # --- requests ------------------------------------------------------------------------
    async def handle_safely(self, msg: Msg) -> None:
        """One request message in a run scope: its key is on every log line (`run_context`)."""
        with run_scope():
            await self._handle_safely(msg)

    async def _handle_safely(self, msg: Msg) -> None:
        """`handle`, and whatever it raises never kills the consumer nor loses the request.

        An unexpected error leaves the message to be redelivered with a growing delay; on its
        last allowed delivery the request gets a `failed` result instead, so that every request
        still gets one final result.
        """
        try:
            await self.handle(msg)
        except Exception as exc:
            delivered = msg.metadata.num_delivered or 1
            log.exception(
                "dispatcher.request_crashed", error=type(exc).__name__, delivered=delivered
            )
            if delivered < self.topology.dispatcher_max_deliver:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=min(60.0, 2.0**delivered))
                return
            with contextlib.suppress(Exception):
                parsed = read_request(
                    msg.subject,
                    msg.data,
                    dict(msg.headers or {}),
                    fallback_id=f"seq-{msg.metadata.sequence.stream}",
                    max_bytes=self.settings.max_request_bytes,
                )
                integration = (
                    parsed.integration_id
                    if isinstance(parsed, SyncRequest | Rejection)
                    else t.INVALID_INTEGRATION
                )
                await self.publish_result(
                    msg,
                    SyncResult(
                        request_id=parsed.request_id,
                        integration_id=integration,
                        idempotency_key=getattr(parsed, "idempotency_key", None),
                        status=SyncStatus.FAILED,
                        error=ErrorInfo(
                            error_class=ErrorClass.RETRYABLE,
                            message=f"gave up after {delivered} deliveries: "
                            f"{type(exc).__name__} (see the dispatcher log)",
                        ),
                    ),
                )
                await msg.term()

    async def handle(self, msg: Msg) -> None:
        meta = msg.metadata
        fallback_id = f"seq-{meta.sequence.stream}"
        parsed = read_request(
            msg.subject,
            msg.data,
            dict(msg.headers or {}),
            fallback_id=fallback_id,
            max_bytes=self.settings.max_request_bytes,
        )
        bind_run(
            key=parsed.idempotency_key,
            request_id=parsed.request_id,
            integration_id=parsed.integration_id,
        )
        if isinstance(parsed, Rejection):
            await self._reject(msg, parsed)
            return
        request = parsed
        config = await get_integration(self.js, request.integration_id)
        if config is not None:
            bind_run(integration_type=config.vendor)
        if config is None:
            await self._reject(
                msg,
                Rejection(
                    request.integration_id,
                    request.request_id,
                    f"integration {request.integration_id!r} is not configured",
                    request.idempotency_key,
                    request.period_id,
                ),
            )
            return
        claim = await self.ledger.claim(request)
        if claim.outcome is ClaimOutcome.SUCCEEDED_BEFORE:
            await self._already_done(msg, request, claim)
            return
        if claim.outcome is ClaimOutcome.BUSY:
            if (msg.metadata.num_delivered or 1) >= self.topology.dispatcher_max_deliver - 1:
                # Out of deliveries while another run holds the key: answer now, or never.
                await self._already_done(msg, request, claim)
                return
            wait = max(1.0, (claim.record.lease_until - utc_now()).total_seconds() + 1.0)
            log.info("dispatcher.key_busy", key=request.idempotency_key, retry_in_s=round(wait, 1))
            await msg.nak(delay=wait)
            return
        health = await current_health(self.js, request.integration_id)
        if health is not None and health.fails_fast():
            # The vendor refused this credential already; calling again only hammers it.
            log.warning("dispatcher.failed_fast", key=request.idempotency_key, reason=health.reason)
            await self._finish(
                msg,
                claim,
                RunState.FAILED,
                SyncResult(
                    request_id=request.request_id,
                    integration_id=request.integration_id,
                    idempotency_key=request.idempotency_key,
                    period_id=request.period_id,
                    status=SyncStatus.FAILED,
                    error=fail_fast_error(health),
                    attempt=claim.record.attempt,
                    scheduled_for=request.scheduled_for,
                    published_at=request.published_at,
                    schedule_drift_ms=request.schedule_drift_ms,
                ),
                dead_letter=True,
            )
            return
        await self._run(msg, request, config, claim)

    async def _already_done(self, msg: Msg, request: SyncRequest, claim: Claim) -> None:
        record = claim.record
        if record.request_id == request.request_id and record.result is not None:
            # Our own run finished but the ack was lost: publish the same result again
            # (the stream drops it if the first copy arrived) and ack.
            await self.publish_result(msg, record.result)
        else:
            await self.publish_result(
                msg,
                SyncResult(
                    request_id=request.request_id,
                    integration_id=request.integration_id,
                    idempotency_key=request.idempotency_key,
                    period_id=request.period_id,
                    status=SyncStatus.DUPLICATE,
                    duplicate_of=record.request_id,
                    vouchers=record.result.vouchers if record.result else 0,
                    lines=record.result.lines if record.result else 0,
                    scheduled_for=request.scheduled_for,
                    published_at=request.published_at,
                ),
            )
        await msg.ack()

    async def _run(
        self, msg: Msg, request: SyncRequest, config: IntegrationConfig, claim: Claim
    ) -> None:
        started_at = utc_now()
        log.info(
            "dispatcher.run_started",
            integration_id=request.integration_id,
            key=request.idempotency_key,
            request_id=request.request_id,
            claim=claim.outcome.value,
            attempt=claim.record.attempt,
        )
        heartbeat = asyncio.create_task(self._heartbeat(msg, claim))

        async def progress(done: int, total: int, vdone: int, vtotal: int) -> None:
            with contextlib.suppress(Exception):
                await self.nc.publish(
                    t.progress_subject(request.integration_id),
                    SyncProgress(
                        integration_id=request.integration_id,
                        request_id=request.request_id,
                        idempotency_key=request.idempotency_key,
                        batches_done=done,
                        batches_total=total,
                        vouchers_done=vdone,
                        vouchers_total=vtotal,
                    ).to_bytes(),
                )

        base: dict[str, object] = {
            "request_id": request.request_id,
            "integration_id": request.integration_id,
            "idempotency_key": request.idempotency_key,
            "period_id": request.period_id,
            "attempt": claim.record.attempt,
            "scheduled_for": request.scheduled_for,
            "published_at": request.published_at,
            "started_at": started_at,
            "schedule_drift_ms": request.schedule_drift_ms,
        }
        plan = RunPlan(())
        try:
            plan = await self.exporter.plan(request, config, claim)
            base.update(
                already_exported=plan.already_exported,
                vouchers=len(plan.vouchers),
                lines=plan.lines,
                debit_total=plan.debit,
                credit_total=plan.credit,
            )
            outcome = await self.exporter.run(config, claim, plan, progress)
        except LeaseLostError as exc:
            log.warning("dispatcher.lease_lost", key=request.idempotency_key, detail=str(exc))
            await msg.nak(delay=self.settings.lease_seconds)
            return
        except RunDeferredError as exc:
            if (msg.metadata.num_delivered or 1) >= self.topology.dispatcher_max_deliver - 1:
                # Out of deliveries: a result now (and a dead letter to replay), or never one.
                log.warning("dispatcher.run_deferred_too_often", key=request.idempotency_key)
                result = SyncResult(
                    status=SyncStatus.FAILED,
                    error=ErrorInfo(
                        error_class=exc.error_class,
                        message=f"deferred on every delivery, last because {exc.message}; "
                        "replay the dead letter once the cause is gone",
                    ),
                    vendor_refs=claim.record.vendor_refs,
                    **base,
                )
                await self._finish(msg, claim, RunState.FAILED, result, dead_letter=True)
                return
            log.warning(
                "dispatcher.run_deferred",
                key=request.idempotency_key,
                delay_s=exc.delay,
                detail=exc.message,
            )
            await self._release(claim)
            await msg.nak(delay=exc.delay)
            return
        except (RunFailedError, CredentialUnavailableError) as exc:
            result = SyncResult(
                status=SyncStatus.FAILED,
                error=ErrorInfo(
                    error_class=exc.error_class,
                    message=exc.message,
                    vendor_code=getattr(exc, "vendor_code", None),
                ),
                vendor_refs=claim.record.vendor_refs,
                **base,
            )
            await self._finish(msg, claim, RunState.FAILED, result, dead_letter=True)
            return
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat
        result = SyncResult(
            status=SyncStatus.SUCCEEDED,
            vendor_refs=outcome.vendor_refs,
            started_warm=outcome.started_warm,
            cold_start=outcome.cold_start,
            **base,
        )
        await self._finish(msg, claim, RunState.SUCCEEDED, result, dead_letter=False)

    async def _finish(
        self, msg: Msg, claim: Claim, state: RunState, result: SyncResult, *, dead_letter: bool
    ) -> None:
        try:
            await self.ledger.finish(claim, state, result)
        except LeaseLostError:
            log.warning("dispatcher.lease_lost_at_finish", key=result.idempotency_key)
            await msg.nak(delay=self.settings.lease_seconds)
            return
        await self.publish_result(msg, result)
        if dead_letter:
            dlq_subject = t.dlq_subject(result.integration_id)
            with publish_span(
                dlq_subject,
                msg.data,
                {
                    "Nats-Msg-Id": f"dlq:{msg.metadata.sequence.stream}",
                    dlq.HEADER_REQUEST_ID: result.request_id,
                    dlq.HEADER_ERROR_CLASS: result.error.error_class.value if result.error else "",
                    dlq.HEADER_ERROR: _header_text(result.error.message if result.error else ""),
                    dlq.HEADER_SUBJECT: msg.subject,
                },
            ) as headers:
                await self.js.publish(dlq_subject, msg.data, headers=headers)
        await msg.ack()

    async def _release(self, claim: Claim) -> None:
        """Give a claim back early (deferred run): the next delivery re-claims it."""
        with contextlib.suppress(LeaseLostError):
            await self.ledger.release(claim)

    async def _heartbeat(self, msg: Msg, claim: Claim) -> None:
        interval = min(self.settings.lease_seconds, self.topology.dispatcher_ack_wait_seconds) / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
                await self.ledger.renew(claim)
            except LeaseLostError:
                return
            except Exception as exc:
                log.warning("dispatcher.heartbeat_failed", error=type(exc).__name__)

    # --- warm-ups ------------------------------------------------------------------------
    async def warm_up(self, body: bytes) -> None:
        """One warm-up in a run scope: its key is on every log line (`run_context`)."""
        with run_scope():
            await self._warm_up(body)

    async def _warm_up(self, body: bytes) -> None:
        warmup = WarmUp.from_bytes(body)
        bind_run(key=warmup.idempotency_key, integration_id=warmup.integration_id)
        config = await get_integration(self.js, warmup.integration_id)
        if config is None:
            self.metrics.warmup(None, "unknown_integration")
            log.warning(
                "dispatcher.warmup_unknown_integration", integration_id=warmup.integration_id
            )
            return
        bind_run(integration_type=config.vendor)
        record = await self.ledger.get(warmup.idempotency_key)
        if record is not None and record.state is RunState.SUCCEEDED:
            self.metrics.warmup(config.vendor, "skipped_exported")
            log.info(
                "dispatcher.warmup_skipped", key=warmup.idempotency_key, reason="already exported"
            )
            return
        # A warm-up is a vendor call like a probe: it spends from the same budget, and its
        # outcome tells the health monitor as much as a probe would.
        spent = await self.budget.try_spend(
            config.integration_id, kind="warmup", limits=budget_limits(config)
        )
        if not spent:
            self.metrics.warmup(config.vendor, "skipped_budget")
            log.info("dispatcher.warmup_skipped", key=warmup.idempotency_key, reason="budget spent")
            return
        try:
            async with self.sessions.warming(config.integration_id):
                session = await self.sessions.session(config, purpose="warmup")
                probe = await session.adapter.warm_up()
                session.warmed_at = session.last_call_at = time.monotonic()
        except (AdapterError, CredentialUnavailableError) as exc:
            self.metrics.warmup(config.vendor, "failed")
            await self.budget.record_warmup(
                config.integration_id,
                ok=False,
                error_class=exc.error_class,
                vendor_code=getattr(exc, "vendor_code", None),
                message=exc.message,
            )
            raise
        await self.budget.record_warmup(config.integration_id, ok=True)
        self.metrics.warmup(config.vendor, "succeeded")
        log.info(
            "dispatcher.warmed_up",
            integration_id=warmup.integration_id,
            key=warmup.idempotency_key,
            latency_ms=round(probe.latency_ms, 1),
            cold=probe.latency_ms > self.settings.cold_start_threshold_ms,
        )


async def _as_provisioned(js: JetStreamContext, topology: TopologySettings) -> TopologySettings:
    """The consumer's own delivery limit, not this process's setting: the last delivery is
    where a request must get its result, and only the consumer knows which one that is."""
    try:
        info = await js.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    except Exception as exc:  # provisioning decides; fall back to our setting meanwhile
        log.warning("dispatcher.consumer_info_failed", error=type(exc).__name__)
        return topology
    max_deliver = info.config.max_deliver
    if max_deliver is None or max_deliver < 1:
        return topology
    return topology.model_copy(update={"dispatcher_max_deliver": max_deliver})


def build_app(
    nats: NatsSettings | None = None,
    settings: DispatcherSettings | None = None,
    topology: TopologySettings | None = None,
    service: ServiceSettings | None = None,
    probes: ProbeSettings | None = None,
) -> FastStream:
    """The dispatcher app; with `probes`, it serves /livez, /readyz and /metrics too."""
    nats = nats or NatsSettings()
    settings = settings or DispatcherSettings()
    metrics = DispatcherMetrics()
    topology = topology or TopologySettings()
    owner = instance_name(service or ServiceSettings())
    broker = NatsBroker(
        **broker_options(nats),
        logger=None,
        graceful_timeout=settings.shutdown_grace_seconds,
        middlewares=(NatsTracingMiddleware,),
    )
    holder: dict[str, Dispatcher] = {}
    started = asyncio.Event()

    @broker.subscriber(
        t.REQUEST_FILTER,
        stream=JStream(t.STREAM_REQUESTS, declare=False),
        durable=t.CONSUMER_DISPATCHER,
        pull_sub=PullSub(batch_size=1, timeout=settings.fetch_timeout_seconds),
        inbox_prefix=pull_inbox_prefix(nats),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="sync.request.*",
        description="Sync requests (JetStream SYNC_REQUESTS, Nats-Msg-Id = idempotency key).",
    )
    async def on_request(msg: NatsMessage) -> None:
        raw = msg.raw_message
        await started.wait()
        await holder["dispatcher"].handle_safely(raw)

    @broker.subscriber(
        t.WARMUP_FILTER,
        queue=t.QUEUE_DISPATCHER_WARMUP,
        decoder=raw_body,
        title="sync.warmup.*",
        description="Warm-ups sent ahead of scheduled syncs.",
    )
    async def on_warmup(msg: NatsMessage) -> None:
        await started.wait()
        try:
            await holder["dispatcher"].warm_up(msg.body)
        except Exception as exc:
            log.warning("dispatcher.warmup_failed", error=type(exc).__name__, detail=str(exc)[:300])

    app = FastStream(broker)

    @app.after_startup
    async def ready() -> None:
        nc = broker.connection
        js = nc.jetstream()
        ledger = RunLedger(await js.key_value(t.KV_SYNC_RUNS), owner, settings.lease_seconds)
        sessions = SessionPool(nc, settings, metrics=metrics)

        async def load(integration_id: str, period_id: str) -> list[Voucher]:
            return await read_period(js, integration_id, period_id)

        async def load_staged(integration_id: str) -> list[Voucher]:
            return await read_staged(js, integration_id)

        budget = await ProbeBudget.open(js, on_spend=metrics.budget_spend)
        metrics.follow_consumer(lambda: consumer_pending(js))
        holder["dispatcher"] = Dispatcher(
            nc=nc,
            js=js,
            settings=settings,
            topology=await _as_provisioned(js, topology),
            ledger=ledger,
            sessions=sessions,
            exporter=Exporter(
                settings=settings,
                ledger=ledger,
                sessions=sessions,
                load_period=load,
                load_staged=load_staged,
                voucher_ledger=VoucherLedger(await js.key_value(t.KV_EXPORTED_VOUCHERS)),
            ),
            budget=budget,
            metrics=metrics,
        )
        started.set()
        log.info("dispatcher.ready", owner=owner)

    @app.on_shutdown
    async def close() -> None:
        dispatcher = holder.get("dispatcher")
        if dispatcher is not None:
            await dispatcher.sessions.aclose()

    if probes is not None:
        server = Probes("dispatcher", metrics.registry, probes)
        server.add_check("nats", nats_check(broker))
        server.add_refresh(metrics.refresh_consumer_lag)
        server.attach(app)
    return app


async def consumer_pending(js: JetStreamContext) -> tuple[int, int]:
    """(num_pending, num_ack_pending) of the dispatchers' durable consumer: one API request."""
    info = await js.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER, timeout=1.0)
    return info.num_pending or 0, info.num_ack_pending or 0
