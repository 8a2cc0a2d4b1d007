"""The health-monitor service: a FastStream app around `HealthMonitor`."""

from __future__ import annotations

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker

from syncbus_shared import topology as t
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
    tasks: list[asyncio.Task[None]] = []
    app = FastStream(broker)

    @app.after_startup
    async def start() -> None:
        nc = broker.connection
        js = nc.jetstream()
        monitor = HealthMonitor(nc, js, await js.key_value(t.KV_HEALTH), settings)
        tasks.append(asyncio.create_task(monitor.run()))
        log.info("health.ready")

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            await stop_task(task)

    return app
