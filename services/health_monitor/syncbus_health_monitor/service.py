"""The health-monitor service: a FastStream app around `HealthMonitor`.

It follows `sync.result.*` with an ordered ephemeral JetStream consumer (the last result of
each integration first, so evidence from while it was down is not lost) and runs the probe
loop. Run one replica.
"""

from __future__ import annotations

import asyncio
import contextlib

from faststream import FastStream
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.subscription import Subscription

from syncbus_shared import topology as t
from syncbus_shared.logs import get_logger
from syncbus_shared.natsclient import broker_options
from syncbus_shared.probes import Probes, ProbeSettings, nats_check
from syncbus_shared.settings import NatsSettings
from syncbus_shared.tracing import NatsTracingMiddleware

from .metrics import CountingProber, HealthMetrics
from .monitor import HealthMonitor, stop_task
from .prober import AdapterProber
from .settings import HealthSettings

log = get_logger()


def build_app(
    nats: NatsSettings | None = None,
    settings: HealthSettings | None = None,
    probes: ProbeSettings | None = None,
) -> FastStream:
    """The health-monitor app; with `probes`, it serves /livez, /readyz and /metrics too."""
    nats = nats or NatsSettings()
    settings = settings or HealthSettings()
    metrics = HealthMetrics()
    broker = NatsBroker(**broker_options(nats), logger=None, middlewares=(NatsTracingMiddleware,))
    # Declared for the AsyncAPI document; the monitor publishes through the connection.
    broker.publisher(
        "health.status.{integration_id}",
        title="health.status.*",
        description="Health state changes of one integration (also in KV integration-health).",
    )
    broker.publisher(
        "alerts.quota.{integration_id}",
        title="alerts.quota.* (health)",
        description="A vendor rate-limited a probe (its integrations went passive) or a quota "
        "is used up.",
    )
    holder: dict[str, HealthMonitor] = {}
    started = asyncio.Event()

    @broker.subscriber(
        t.HEALTH_RECHECK_FILTER,
        title="health.recheck.*",
        description="Request/reply: probe one integration now (the interval floor and the "
        "budget still hold); the reply is its HealthStatus.",
    )
    async def on_recheck(msg: NatsMessage) -> bytes:
        await started.wait()
        integration_id = msg.raw_message.subject.rsplit(".", 1)[-1]
        return (await holder["monitor"].answer_recheck(integration_id)).to_bytes()

    tasks: list[asyncio.Task[None]] = []
    subscriptions: list[Subscription] = []
    app = FastStream(broker)

    @app.after_startup
    async def start() -> None:
        prober = AdapterProber(broker.connection, settings, metrics.vendor_request)
        monitor = await HealthMonitor.open(
            broker.connection, settings, prober=CountingProber(prober, metrics)
        )
        monitor.budget.on_spend = metrics.budget_spend
        holder["monitor"] = monitor
        subscriptions.append(await monitor.follow_results())
        tasks.append(asyncio.create_task(monitor.run()))
        started.set()
        log.info("health.ready")

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            await stop_task(task)
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    if probes is not None:
        server = Probes("health-monitor", metrics.registry, probes)
        server.add_check("nats", nats_check(broker))
        server.attach(app)
    return app
