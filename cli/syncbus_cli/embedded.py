"""The embedded stack as `syncbus dev` and `syncbus demo` run it, with the demo integration.

One integration, `toyen-xledger`, points at the local Xledger fake; its API token is made up at
start, given to the fake as a valid token and written to OpenBao (KV v2, `secret/`) — the only
place the services can read it from, through the credential service.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from syncbus_devstack import Stack
from syncbus_shared.contracts import HealthConfig, IntegrationConfig, PeriodKind, Schedule
from syncbus_shared.integrations import put_integration

DEMO_INTEGRATION = "toyen-xledger"
DEMO_SECRET_PATH = f"integrations/{DEMO_INTEGRATION}"
DEMO_SCHEDULE = Schedule(
    cron="5 0 1 * *",  # 00:05 on the 1st: "last month is in Xledger by 00:05, Oslo time"
    timezone="Europe/Oslo",
    period=PeriodKind.MONTH,
    period_offset=-1,
    lead_seconds=30,
)

DEMO_ENV = {
    # Late fires (backfill, catch-up) wait this long between warm-up and request.
    "SYNCBUS_SCHEDULER_CATCHUP_LEAD_SECONDS": "1.0",
    # The fake's cold first request takes 800 ms; flag anything slower than 500 ms.
    "SYNCBUS_DISPATCHER_COLD_START_THRESHOLD_MS": "500",
}


def demo_stack_options(token: str | None = None) -> dict[str, Any]:
    """The `Stack` options of the demo; `token` (made up when not given) is the Xledger token."""
    token = token or secrets.token_urlsafe(24)
    return {
        "xledger_tokens": [token],
        "secrets": {DEMO_SECRET_PATH: {"api_token": token}},
        "extra_env": dict(DEMO_ENV),
    }


def demo_stack(state_dir: Path, *, token: str | None = None) -> Stack:
    return Stack(state_dir, **demo_stack_options(token))


def demo_integration(xledger_url: str) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id=DEMO_INTEGRATION,
        vendor="xledger",
        endpoint=f"{xledger_url.rstrip('/')}/graphql",
        credentials_path=DEMO_SECRET_PATH,
        schedule=DEMO_SCHEDULE,
        health=HealthConfig(),
    )


async def configure_demo(js: JetStreamContext, stack: Stack) -> IntegrationConfig:
    config = demo_integration(stack.fake_urls["xledger"])
    await put_integration(js, config)
    return config
