"""`syncbus dev`: the embedded stack with the demo integration configured, until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

from syncbus_devstack import Stack, run_dev_stack
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings

from .embedded import DEMO_INTEGRATION, configure_demo, demo_stack_options


async def _configure(stack: Stack) -> list[str]:
    nc = await connect(NatsSettings(url=stack.nats_url), "syncbus-dev")
    try:
        await configure_demo(nc.jetstream(), stack)
    finally:
        await nc.close()
    return [
        f"integration {DEMO_INTEGRATION} is configured (monthly at 00:05 Europe/Oslo)",
        f"try: export SYNCBUS_NATS_URL={stack.nats_url}",
        "     syncbus import-saft FILE",
        f"     syncbus backfill {DEMO_INTEGRATION} 2017-01 2017-04",
    ]


async def run_dev(state_dir: Path, *, nats_port: int | None = None, fresh: bool = False) -> None:
    await run_dev_stack(
        state_dir,
        **demo_stack_options(),
        nats_port=nats_port,
        fresh=fresh,
        on_ready=_configure,
        out=lambda line: print(line, flush=True),
    )
