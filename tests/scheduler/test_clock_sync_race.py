"""Scheduler replicas measuring the server's clock at once, on the one shared probe key."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from syncbus_scheduler.clock import Clock

pytestmark = pytest.mark.asyncio


async def test_replicas_syncing_their_clocks_at_once_never_fail_on_an_overtaken_probe(
    jetstream: JetStreamContext,
):
    # The bucket keeps one version of the probe key: a replica's probe may be replaced by
    # another's before it reads it back. That probe is skipped, never a crash at start-up.
    clocks = [Clock() for _ in range(6)]
    for _ in range(5):
        await asyncio.gather(*(clock.sync(jetstream) for clock in clocks))
    assert any(clock.last_probe is not None for clock in clocks)
