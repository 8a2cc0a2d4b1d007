"""The embedded stack as `syncbus dev` and `syncbus demo` run it, with the demo integrations.

`toyen-xledger` points at the local Xledger fake; its API token is made up at start, given to
the fake as a valid token and written to OpenBao (KV v2, `secret/`) — the only place the
services can read it from, through the credential service.

`toyen-bc` points at the local Business Central fake (company "Tøyen Lekefabrikk AS"); an app
registration (client id and a made-up secret) is added to the fake's Entra endpoint once it is
up, and the client id, secret and token URL are written to OpenBao. The credential service mints
the access tokens; the dispatcher only ever sees those.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
from nats.js import JetStreamContext

from syncbus_devstack import Stack
from syncbus_shared.contracts import HealthConfig, IntegrationConfig, PeriodKind, Schedule
from syncbus_shared.integrations import put_integration

DEMO_INTEGRATION = "toyen-xledger"
DEMO_SECRET_PATH = f"integrations/{DEMO_INTEGRATION}"
DEMO_BC_INTEGRATION = "toyen-bc"
DEMO_BC_SECRET_PATH = f"integrations/{DEMO_BC_INTEGRATION}"
DEMO_BC_CLIENT_ID = "syncbus-demo-app"
DEMO_BC_COMPANY = "Tøyen Lekefabrikk AS"
DEMO_BC_ENVIRONMENT = "production"
DEMO_FAKES = ("xledger", "business_central")
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
    # The Business Central fake's one company.
    "SYNCBUS_FAKE_BUSINESS_CENTRAL_COMPANIES": DEMO_BC_COMPANY,
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
    """The demo's stack: both fakes (`syncbus dev` runs the default fakes only)."""
    return Stack(state_dir, **demo_stack_options(token), fakes=DEMO_FAKES)


def demo_integration(xledger_url: str) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id=DEMO_INTEGRATION,
        vendor="xledger",
        endpoint=f"{xledger_url.rstrip('/')}/graphql",
        credentials_path=DEMO_SECRET_PATH,
        schedule=DEMO_SCHEDULE,
        health=HealthConfig(),
    )


async def configure_demo(
    js: JetStreamContext, stack: Stack, *, bc_client_secret: str | None = None
) -> IntegrationConfig:
    """Configure `toyen-xledger` (returned) and, when its fake runs, `toyen-bc`."""
    config = demo_integration(stack.fake_urls["xledger"])
    await put_integration(js, config)
    if "business_central" in stack.fake_urls:
        await configure_demo_business_central(js, stack, client_secret=bc_client_secret)
    return config


async def configure_demo_business_central(
    js: JetStreamContext, stack: Stack, *, client_secret: str | None = None
) -> IntegrationConfig:
    """Register the demo app at the fake, write its credentials to OpenBao, add `toyen-bc`.

    `client_secret` is made up when not given; it goes to the fake and to OpenBao only.
    """
    client_secret = client_secret or secrets.token_urlsafe(24)
    fake = stack.fake_urls["business_central"]
    async with httpx.AsyncClient(base_url=fake, timeout=10.0) as http:
        added = await http.post(
            "/_fake/clients",
            json={"client_id": DEMO_BC_CLIENT_ID, "client_secret": client_secret},
        )
        added.raise_for_status()
        listed = (await http.get("/_fake/companies")).json()
    tenant = listed["tenant_id"]
    company = next(
        c["id"] for c in listed["environments"][DEMO_BC_ENVIRONMENT] if c["name"] == DEMO_BC_COMPANY
    )
    await stack.vault.write_secret(
        DEMO_BC_SECRET_PATH,
        {
            "client_id": DEMO_BC_CLIENT_ID,
            "client_secret": client_secret,
            "token_url": f"{fake}/{tenant}/oauth2/v2.0/token",
        },
    )
    api_root = f"{fake}/v2.0/{tenant}/{DEMO_BC_ENVIRONMENT}/api/v2.0"
    config = IntegrationConfig(
        integration_id=DEMO_BC_INTEGRATION,
        vendor="business_central",
        endpoint=f"{api_root}/companies({company})",
        credentials_path=DEMO_BC_SECRET_PATH,
        schedule=DEMO_SCHEDULE,
        health=HealthConfig(),
        options={"company_id": company},
    )
    await put_integration(js, config)
    return config
