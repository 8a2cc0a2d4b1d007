"""The one explicit provisioning step: create or update every stream, consumer and KV bucket.

Services never declare NATS state themselves. FastStream's `declare=True` silently rewrites an
existing stream's settings, and nats-py's subscribe never updates an existing durable consumer,
so both would leave a running system with settings nobody chose. `provision()` is run by
`syncbus dev`, by the tests' fixture and by an operator (`syncbus provision`) before services
start; running it again applies changed settings and is otherwise a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from . import topology as t
from .logs import get_logger
from .settings import TopologySettings

log = get_logger()

_DAY = 86_400.0


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def stream_configs(settings: TopologySettings) -> list[StreamConfig]:
    r = settings.replicas
    return [
        StreamConfig(
            name=t.STREAM_REQUESTS,
            description="Sync requests; Nats-Msg-Id is the idempotency key.",
            subjects=[t.REQUEST_FILTER],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_age=settings.request_max_age_days * _DAY,
            duplicate_window=settings.request_dedup_window_seconds,
            discard=DiscardPolicy.OLD,
        ),
        StreamConfig(
            name=t.STREAM_RESULTS,
            description="Exactly one final result per request; Nats-Msg-Id is the request id.",
            subjects=[t.RESULT_FILTER],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_age=settings.result_max_age_days * _DAY,
            duplicate_window=3600.0,
        ),
        StreamConfig(
            name=t.STREAM_LEDGER,
            description="Staged vouchers, one subject each; immutable, a second copy is refused.",
            subjects=["ledger.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_msgs_per_subject=1,
            discard=DiscardPolicy.NEW,
            discard_new_per_subject=True,
            duplicate_window=7200.0,
        ),
        StreamConfig(
            name=t.STREAM_DLQ,
            description="Requests that exhausted their attempts, for `syncbus dlq list|replay`.",
            subjects=["sync.dlq.*"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_age=settings.dlq_max_age_days * _DAY,
        ),
        StreamConfig(
            name=t.STREAM_ALERTS,
            description="Drift, cold start, missed period and quota alerts.",
            subjects=["alerts.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_age=settings.alert_max_age_days * _DAY,
        ),
    ]


def dispatcher_consumer_config(settings: TopologySettings) -> ConsumerConfig:
    return ConsumerConfig(
        name=t.CONSUMER_DISPATCHER,
        durable_name=t.CONSUMER_DISPATCHER,
        description="The dispatchers' shared pull consumer of sync requests.",
        filter_subject=t.REQUEST_FILTER,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.dispatcher_ack_wait_seconds,
        max_deliver=settings.dispatcher_max_deliver,
        max_ack_pending=256,
        num_replicas=0,
    )


def bucket_configs(settings: TopologySettings) -> list[KeyValueConfig]:
    r = settings.replicas
    return [
        KeyValueConfig(
            bucket=t.KV_INTEGRATIONS,
            history=5,
            replicas=r,
            description="One entry per integration.",
        ),
        KeyValueConfig(
            bucket=t.KV_SYNC_RUNS,
            history=1,
            replicas=r,
            description="Run ledger: idempotency key -> claim, progress, result.",
        ),
        KeyValueConfig(
            bucket=t.KV_SCHEDULE_STATE,
            history=1,
            replicas=r,
            description="Last fired period per schedule.",
        ),
        KeyValueConfig(
            bucket=t.KV_HEALTH, history=1, replicas=r, description="Current health per integration."
        ),
        KeyValueConfig(
            bucket=t.KV_PROBE_BUDGET,
            history=1,
            replicas=r,
            description="Health-check calls spent per integration, per hour and month.",
        ),
        KeyValueConfig(
            bucket=t.KV_EXPORTED_VOUCHERS,
            history=1,
            replicas=r,
            description="Voucher ledger: <integration>.<period>.<voucher> -> claimed or exported, "
            "by which key.",
        ),
    ]


async def _ensure_stream(
    js: JetStreamContext, config: StreamConfig, report: ProvisionReport
) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        report.created.append(f"stream {config.name}")
        return
    await js.update_stream(config)
    report.updated.append(f"stream {config.name}")


async def _ensure_bucket(
    js: JetStreamContext, config: KeyValueConfig, report: ProvisionReport
) -> None:
    try:
        await js.key_value(config.bucket)
    except BucketNotFoundError:
        await js.create_key_value(config)
        report.created.append(f"bucket {config.bucket}")
        return
    # A bucket is a stream named KV_<bucket>; apply the settings we own (history, replicas).
    info = await js.stream_info(f"KV_{config.bucket}")
    current = info.config
    if current.max_msgs_per_subject != config.history or current.num_replicas != config.replicas:
        current.max_msgs_per_subject = config.history
        current.num_replicas = config.replicas
        await js.update_stream(current)
    report.updated.append(f"bucket {config.bucket}")


async def provision(
    js: JetStreamContext, settings: TopologySettings | None = None
) -> ProvisionReport:
    """Create what is missing and update what exists, so that NATS holds the settings we chose."""
    settings = settings or TopologySettings()
    report = ProvisionReport()
    for config in stream_configs(settings):
        await _ensure_stream(js, config, report)
    consumer = dispatcher_consumer_config(settings)
    # CONSUMER.CREATE with a name creates it or updates an existing one's editable settings.
    await js.add_consumer(t.STREAM_REQUESTS, consumer)
    report.updated.append(f"consumer {t.STREAM_REQUESTS}/{t.CONSUMER_DISPATCHER}")
    for bucket in bucket_configs(settings):
        await _ensure_bucket(js, bucket, report)
    log.info("provision.done", created=report.created, updated=len(report.updated))
    return report
