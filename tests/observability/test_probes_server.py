"""The shared probe server (`syncbus_shared.probes`) in this process, around a real FastStream
app on a real nats-server: ports, readiness through the app's life, failing checks."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from faststream import FastStream
from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from syncbus_devstack import NatsServer
from syncbus_shared.probes import DEFAULT_PORTS, ProbeBindError, Probes, ProbeSettings, nats_check

LOCAL = ProbeSettings(host="127.0.0.1", port=0)


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as http:
        return await http.get(url)


def _free_to_bind(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_each_service_has_its_own_fixed_default_port_and_zero_means_any():
    assert len(set(DEFAULT_PORTS.values())) == 4
    assert ProbeSettings().port_for("dispatcher") == DEFAULT_PORTS["dispatcher"]
    assert ProbeSettings(port=0).port_for("dispatcher") == 0
    assert ProbeSettings(port=9400).port_for("scheduler") == 9400


async def test_port_zero_picks_a_free_port_and_livez_answers_from_the_event_loop():
    probes = Probes("dispatcher", CollectorRegistry(), LOCAL)
    await probes.start()
    try:
        assert probes.url is not None
        assert probes.url.startswith("http://127.0.0.1:")
        live = await _get(f"{probes.url}/livez")
        assert live.status_code == 200
        assert live.json()["status"] == "alive"
        assert live.json()["loop_lag_seconds"] >= 0
    finally:
        await probes.stop()
    assert _free_to_bind(probes.url)


async def test_a_probe_port_in_use_stops_the_start_with_a_sentence_naming_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        probes = Probes(
            "scheduler", CollectorRegistry(), ProbeSettings(host="127.0.0.1", port=port)
        )
        with pytest.raises(ProbeBindError, match=rf"127\.0\.0\.1:{port}.*SYNCBUS_PROBE_PORT"):
            await probes.start()
        await probes.stop()


async def test_disabled_probes_open_no_port():
    probes = Probes("credentials", CollectorRegistry(), ProbeSettings(enabled=False))
    await probes.start()
    try:
        assert probes.url is None
    finally:
        await probes.stop()


async def test_a_check_that_raises_makes_the_service_not_ready_instead_of_breaking_readyz():
    def broken() -> str | None:
        raise RuntimeError("boom")

    probes = Probes("dispatcher", CollectorRegistry(), LOCAL)
    probes.add_check("vault", broken)
    await probes.start()
    try:
        answer = await _get(f"{probes.url}/readyz")
    finally:
        await probes.stop()
    assert answer.status_code == 503
    assert answer.json()["checks"]["vault"] == "check failed: RuntimeError"


async def test_metrics_serve_the_services_own_registry_in_the_prometheus_text_format():
    registry = CollectorRegistry()
    counter = Counter("syncbus_dispatcher_things", "Things.", ("status",), registry=registry)
    counter.labels("ok").inc(3)
    probes = Probes("dispatcher", registry, LOCAL)
    refreshed: list[bool] = []

    async def refresh() -> None:
        refreshed.append(True)

    probes.add_refresh(refresh)
    await probes.start()
    try:
        answer = await _get(f"{probes.url}/metrics")
    finally:
        await probes.stop()
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    [sample] = [
        s for s in families["syncbus_dispatcher_things"].samples if s.name.endswith("_total")
    ]
    assert (sample.labels, sample.value) == ({"status": "ok"}, 3.0)
    assert families["syncbus_dispatcher_ready"].samples[0].value == 0.0  # not started
    assert refreshed == [True]


async def test_readiness_follows_the_app_and_its_nats_connection_and_the_port_closes_with_it(
    nats_server: NatsServer,
):
    broker = NatsBroker(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=1)
    app = FastStream(broker)
    probes = Probes("health-monitor", CollectorRegistry(), LOCAL)
    probes.add_check("nats", nats_check(broker))
    assert probes.readiness() == (False, {"service": "starting", "nats": "not connected yet"})
    probes.attach(app)
    await app.start()
    try:
        assert probes.url is not None
        ready = await _get(f"{probes.url}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        await nats_server.stop()
        down = await _get(f"{probes.url}/readyz")
        assert down.status_code == 503
        assert down.json()["reason"].startswith("nats: ")
        assert (await _get(f"{probes.url}/livez")).status_code == 200
        await nats_server.start()  # the same port: the client reconnects by itself
        async with asyncio.timeout(20):
            while (await _get(f"{probes.url}/readyz")).status_code != 200:
                await asyncio.sleep(0.1)
    finally:
        await app.stop()
    assert _free_to_bind(probes.url)
