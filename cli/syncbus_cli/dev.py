"""`syncbus dev`: the embedded stack with the demo integration configured, until Ctrl-C."""

from __future__ import annotations

import json
import sys
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


def ready_json(stack: Stack) -> dict[str, object]:
    """What `syncbus dev --json` prints once the stack is up: where everything runs."""
    return {
        "ready": True,
        "nats_url": stack.nats_url,
        "vault_url": stack.vault_url,
        "fakes": dict(stack.fake_urls),
        "probes": dict(stack.probe_urls),
        "integration": DEMO_INTEGRATION,
    }


async def run_dev(
    state_dir: Path, *, nats_port: int | None = None, fresh: bool = False, as_json: bool = False
) -> None:
    """With `as_json`, stdout gets one JSON object when the stack is ready (for scripts that
    start it), and the human lines go to stderr."""

    async def ready(stack: Stack) -> list[str]:
        lines = await _configure(stack)
        if as_json:
            sys.stdout.write(json.dumps(ready_json(stack)) + "\n")
            sys.stdout.flush()
        return lines

    def out(line: str) -> None:
        print(line, flush=True, file=sys.stderr if as_json else sys.stdout)

    await run_dev_stack(
        state_dir,
        **demo_stack_options(),
        nats_port=nats_port,
        fresh=fresh,
        on_ready=ready,
        out=out,
    )
