"""The `jetstream` fixture provisions; provisioning again is a no-op or applies changed settings."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from syncbus_shared import topology as t
from syncbus_shared.provision import bucket_configs, provision, stream_configs
from syncbus_shared.settings import TopologySettings


async def test_the_jetstream_fixture_provisions_every_stream_consumer_and_bucket(
    jetstream: JetStreamContext, topology_settings: TopologySettings
) -> None:
    names = {info.config.name for info in await jetstream.streams_info()}
    assert {c.name for c in stream_configs(topology_settings)} <= names
    assert {f"KV_{b.bucket}" for b in bucket_configs(topology_settings)} <= names
    consumer = await jetstream.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    assert consumer.config.ack_wait == topology_settings.dispatcher_ack_wait_seconds


async def test_provisioning_twice_is_a_no_op(
    jetstream: JetStreamContext, topology_settings: TopologySettings, unique_id
) -> None:
    await jetstream.publish(t.request_subject(unique_id("it")), b"{}")
    streams_before = {i.config.name: i for i in await jetstream.streams_info()}
    consumer_before = await jetstream.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)

    report = await provision(jetstream, topology_settings)

    assert report.created == []
    streams_after = {i.config.name: i for i in await jetstream.streams_info()}
    assert streams_after.keys() == streams_before.keys()
    for name, before in streams_before.items():
        assert streams_after[name].config == before.config, name
        assert streams_after[name].state.messages == before.state.messages, name
    consumer_after = await jetstream.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    assert consumer_after.config == consumer_before.config
    assert consumer_after.created == consumer_before.created
    assert consumer_after.num_pending == consumer_before.num_pending == 1


async def test_changed_settings_are_applied_to_the_existing_consumer_and_stream(
    jetstream: JetStreamContext, topology_settings: TopologySettings
) -> None:
    created = (await jetstream.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)).created
    changed = topology_settings.model_copy(
        update={"dispatcher_ack_wait_seconds": 123.0, "request_dedup_window_seconds": 10_800.0}
    )

    report = await provision(jetstream, changed)

    assert report.created == []
    consumer = await jetstream.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
    assert consumer.config.ack_wait == 123.0
    assert consumer.created == created  # updated in place, not replaced
    stream = await jetstream.stream_info(t.STREAM_REQUESTS)
    assert stream.config.duplicate_window == 10_800.0


class TestTheTopologyFixtureCanBeOverridden:
    @pytest.fixture
    def topology_settings(self) -> TopologySettings:
        return TopologySettings(dispatcher_ack_wait_seconds=42.0, dispatcher_max_deliver=3)

    async def test_the_jetstream_fixture_provisions_the_overridden_settings(
        self, jetstream: JetStreamContext
    ) -> None:
        consumer = await jetstream.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
        assert consumer.config.ack_wait == 42.0
        assert consumer.config.max_deliver == 3
