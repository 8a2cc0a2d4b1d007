"""`syncbus dev`: the embedded stack with the demo integration, until Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings

from .embedded import DEMO_INTEGRATION, configure_demo, demo_stack


async def run_dev(state_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with demo_stack(state_dir) as stack:
        nc = await connect(NatsSettings(url=stack.nats_url), "syncbus-dev")
        try:
            await configure_demo(nc.jetstream(), stack)
        finally:
            await nc.close()
        print("syncbus dev: the embedded stack is running")
        for line in stack.describe():
            print(f"  {line}")
        print(f"  integration {DEMO_INTEGRATION} is configured (monthly, 00:05 Europe/Oslo)")
        print(f"  try: SYNCBUS_NATS_URL={stack.nats_url} syncbus import-saft FILE")
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
        print("syncbus dev: stopping ...", flush=True)
    print("syncbus dev: stopped, no process left behind", flush=True)
