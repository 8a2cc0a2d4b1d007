"""Reading and writing integration configs in the `integrations` KV bucket."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from . import topology as t
from .contracts import IntegrationConfig


async def put_integration(js: JetStreamContext, config: IntegrationConfig) -> int:
    kv = await js.key_value(t.KV_INTEGRATIONS)
    return await kv.put(config.integration_id, config.to_bytes())


async def get_integration(js: JetStreamContext, integration_id: str) -> IntegrationConfig | None:
    kv = await js.key_value(t.KV_INTEGRATIONS)
    try:
        entry = await kv.get(integration_id)
    except KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    return IntegrationConfig.from_bytes(entry.value)


async def list_integrations(js: JetStreamContext) -> list[IntegrationConfig]:
    kv = await js.key_value(t.KV_INTEGRATIONS)
    try:
        keys = await kv.keys()
    except Exception:  # nats-py raises NoKeysError on an empty bucket
        return []
    configs = []
    for key in keys:
        config = await get_integration(js, key)
        if config is not None:
            configs.append(config)
    return configs
