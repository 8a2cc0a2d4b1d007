"""A run deferred on every delivery still gets its one result: `failed`, with a dead letter.

Its own stack, whose dispatcher consumer allows 3 deliveries, so that running out takes seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from e2e_support import Integration, make_voucher

from syncbus_devstack import Stack
from syncbus_shared.contracts import ErrorClass, SyncRequest, SyncStatus
from syncbus_shared.dlq import list_dead_letters
from syncbus_shared.settings import TopologySettings
from syncbus_shared.staging import stage_vouchers

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("stack"),
        services=("credentials", "dispatcher"),
        topology=TopologySettings(dispatcher_max_deliver=3),
    ) as running:
        yield running


async def test_a_quota_that_never_resets_in_time_ends_in_one_failed_result_and_a_dead_letter(
    integration: Integration, stack: Stack
):
    await stage_vouchers(integration.js, integration.id, [make_voucher(integration.id, 1)])
    async with httpx.AsyncClient(base_url=stack.fake_urls["xledger"]) as fake:
        await fake.post("/_fake/faults", json={"insufficient_credits": {"reset_in_seconds": 2}})
        try:
            await integration.publish(
                SyncRequest(integration_id=integration.id, period_id="2017-01")
            )
            [result] = await integration.wait_results(1, timeout=60)
        finally:
            await fake.post("/_fake/faults", json={"insufficient_credits": None})

    assert result.status is SyncStatus.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.QUOTA
    assert "deferred on every delivery" in result.error.message
    [letter] = await list_dead_letters(integration.js, integration.id)
    assert letter.error_class == "quota"
    assert await integration.postings() == []
