"""The health-monitor service: a FastStream app around `HealthMonitor`.

It follows `sync.result.*` with an ordered ephemeral JetStream consumer (the last result of
each integration first, so evidence from while it was down is not lost) and runs the probe
loop. Run one replica.
"""

from __future__ import annotations

import asyncio
import contextlib

from faststream import FastStream
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from syncbus_shared.logs import get_logger
from syncbus_shared.settings import NatsSettings

from .monitor import HealthMonitor, stop_task
from .settings import HealthSettings

log = get_logger()


def build_app(
    nats: NatsSettings | None = None, settings: HealthSettings | None = None
) -> FastStream:
    nats = nats or NatsSettings()
    settings = settings or HealthSettings()
    broker = NatsBroker(nats.servers, max_reconnect_attempts=-1, logger=None)
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
    tasks: list[asyncio.Task[None]] = []
    subscriptions: list[JetStreamContext.PushSubscription] = []
    app = FastStream(broker)

    @app.after_startup
    async def start() -> None:
        monitor = await HealthMonitor.open(broker.connection, settings)
        subscriptions.append(await monitor.follow_results())
        tasks.append(asyncio.create_task(monitor.run()))
        log.info("health.ready")

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            await stop_task(task)
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    return app
