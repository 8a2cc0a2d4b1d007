"""/livez, /readyz and /metrics of the four services, each a real process of the embedded stack,
while the real nats-server and OpenBao go away and come back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from syncbus_devstack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICES = ("credentials", "dispatcher", "scheduler", "health-monitor")
STATE_TIMEOUT = 30.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("probes"),
        extra_env={"SYNCBUS_VAULT_HEALTH_CHECK_INTERVAL_SECONDS": "0.5"},
    ) as running:
        yield running


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as http:
        return await http.get(url)


async def _readyz(stack: Stack, service: str) -> tuple[int, dict[str, Any]]:
    answer = await _get(f"{stack.probe_urls[service]}/readyz")
    return answer.status_code, answer.json()


async def _until(stack: Stack, service: str, status: int) -> dict[str, Any]:
    """/readyz of `service` once it answers `status` (the state changes on its own)."""
    async with asyncio.timeout(STATE_TIMEOUT):
        while True:
            code, body = await _readyz(stack, service)
            if code == status:
                return body
            await asyncio.sleep(0.1)


async def test_every_service_is_alive_and_ready_on_a_probe_port_of_its_own(stack: Stack):
    assert set(stack.probe_urls) == set(SERVICES)
    assert len(set(stack.probe_urls.values())) == len(SERVICES)
    for service in SERVICES:
        live = await _get(f"{stack.probe_urls[service]}/livez")
        assert (live.status_code, live.json()["status"]) == (200, "alive"), service
        assert await _readyz(stack, service) == (200, {"status": "ready"}), service
        metrics = await _get(f"{stack.probe_urls[service]}/metrics")
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        prefix = f"syncbus_{service.replace('-', '_')}_"
        assert families[f"{prefix}ready"].samples[0].value == 1.0, service
        up = {s.labels["dependency"]: s.value for s in families[f"{prefix}dependency_up"].samples}
        assert up == ({"nats": 1.0, "vault": 1.0} if service == "credentials" else {"nats": 1.0})
        assert all(name.startswith((prefix, "process_")) for name in families), service


async def test_every_service_is_not_ready_while_nats_is_down_and_ready_again_once_it_is_back(
    stack: Stack,
):
    await stack.nats.stop()
    try:
        for service in SERVICES:
            body = await _until(stack, service, 503)
            assert body["status"] == "not_ready"
            assert body["reason"].startswith("nats: "), body
            assert body["checks"]["service"] == "ok"
            live = await _get(f"{stack.probe_urls[service]}/livez")
            assert live.status_code == 200, service  # alive: restarting it would not help
    finally:
        await stack.nats.start()  # the same port and store: the services reconnect by themselves
    for service in SERVICES:
        assert await _until(stack, service, 200) == {"status": "ready"}


async def test_a_service_stopped_with_sigterm_closes_its_probe_port_and_a_restart_reopens_it(
    stack: Stack,
):
    url = stack.probe_urls["health-monitor"]
    assert await stack.service("health-monitor").stop() == 0
    with pytest.raises(httpx.ConnectError):
        await _get(f"{url}/livez")
    await stack.restart_service("health-monitor")
    assert stack.probe_urls["health-monitor"] == url
    assert await _until(stack, "health-monitor", 200) == {"status": "ready"}


async def test_the_credential_service_is_not_ready_while_vault_is_unreachable(stack: Stack):
    # Last in this module: the dev server keeps its secrets in memory, so it does not come back.
    await stack.vault.stop()
    body = await _until(stack, "credentials", 503)
    assert body["reason"].startswith("vault: "), body
    assert body["checks"]["nats"] == "ok"
    metrics = await _get(f"{stack.probe_urls['credentials']}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    assert families["syncbus_credentials_vault_reachable"].samples[0].value == 0.0
    assert families["syncbus_credentials_vault_outage_seconds"].samples[0].value >= 0.0
    assert (await _readyz(stack, "dispatcher"))[0] == 200  # only the credential service needs it
