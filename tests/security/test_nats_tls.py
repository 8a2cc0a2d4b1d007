"""TLS to NATS with a CA made in the test: services verify the server, a wrong CA is refused.

nats-server runs with a `tls {}` block (so it accepts TLS connections only) and the deploy
configuration's users; connections are made the way services make them, from `NatsSettings`:
`natsclient.connect()` (CLI, client, devstack) and a FastStream broker built from
`broker_options()` (the four services).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from faststream.nats import NatsBroker, NatsMessage
from nats_tls_support import Issued, ThrowawayCa, tls_server_config

from syncbus_devstack import NatsServer
from syncbus_devstack.nats_users import NatsUsers
from syncbus_shared.natsclient import (
    NatsTlsConfigError,
    NatsUnreachableError,
    broker_options,
    connect,
)
from syncbus_shared.settings import NatsSettings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[ThrowawayCa, Issued, ThrowawayCa]:
    folder = tmp_path_factory.mktemp("pki")
    ca = ThrowawayCa.make(folder / "ca", "syncbus test CA")
    server = ca.issue("nats-server", ips=("127.0.0.1",), dns=("localhost",))
    other = ThrowawayCa.make(folder / "other", "somebody else's CA")
    return ca, server, other


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls_nats(
    tmp_path_factory: pytest.TempPathFactory, certs: tuple[ThrowawayCa, Issued, ThrowawayCa]
) -> AsyncIterator[tuple[NatsServer, NatsUsers]]:
    _, server_cert, _ = certs
    folder = tmp_path_factory.mktemp("tls-nats")
    users = NatsUsers.generate()
    server = NatsServer(
        folder / "store",
        config_file=tls_server_config(folder, server_cert),
        env=users.server_env(),
        log_path=folder / "nats-server.log",
    )
    async with server:
        yield server, users


def _settings(server: NatsServer, users: NatsUsers, user: str, **tls: object) -> NatsSettings:
    base = users.settings(user, server.url)
    return base.model_copy(update=tls)


async def test_a_service_connection_verifies_the_server_against_the_configured_ca(
    tls_nats: tuple[NatsServer, NatsUsers], certs: tuple[ThrowawayCa, Issued, ThrowawayCa]
):
    server, users = tls_nats
    ca, _, _ = certs
    settings = _settings(server, users, "operator", tls_ca_file=ca.cert_file)
    nc = await connect(settings, "pytest-tls", first_connect_timeout=10)
    try:
        assert nc._server_info["tls_required"] is True
        sub = await nc.subscribe("tls.check")
        await nc.publish("tls.check", b"over TLS")
        assert (await sub.next_msg(timeout=5)).data == b"over TLS"
    finally:
        await nc.close()


async def test_a_faststream_broker_from_broker_options_connects_over_tls_with_its_inbox(
    tls_nats: tuple[NatsServer, NatsUsers], certs: tuple[ThrowawayCa, Issued, ThrowawayCa]
):
    server, users = tls_nats
    ca, _, _ = certs
    settings = _settings(server, users, "operator", tls_ca_file=ca.cert_file)
    broker = NatsBroker(**broker_options(settings), logger=None)
    replies: list[str] = []

    @broker.subscriber("tls.echo")
    async def echo(msg: NatsMessage) -> bytes:
        replies.append(msg.raw_message.reply)
        return b"echo " + msg.body

    async with broker:
        await broker.start()
        answer = await broker.request(b"hello", "tls.echo", timeout=5)
        assert answer.body == b"echo hello"
    assert replies[0].startswith("_INBOX_operator.")


async def test_a_server_certificate_from_another_ca_is_refused_with_a_clear_error(
    tls_nats: tuple[NatsServer, NatsUsers], certs: tuple[ThrowawayCa, Issued, ThrowawayCa]
):
    server, users = tls_nats
    _, _, other = certs
    settings = _settings(server, users, "operator", tls_ca_file=other.cert_file)
    with pytest.raises(NatsUnreachableError) as refused:
        await connect(settings, "pytest-wrong-ca", first_connect_timeout=3)
    message = str(refused.value)
    assert "TLS: the server's certificate was refused" in message
    assert "unable to get local issuer certificate" in message
    assert users.passwords["operator"].get_secret_value() not in message


async def test_a_faststream_broker_with_another_ca_never_connects_and_logs_why(
    tls_nats: tuple[NatsServer, NatsUsers],
    certs: tuple[ThrowawayCa, Issued, ThrowawayCa],
    capsys: pytest.CaptureFixture[str],
):
    server, users = tls_nats
    _, _, other = certs
    settings = _settings(server, users, "operator", tls_ca_file=other.cert_file)
    broker = NatsBroker(**broker_options(settings), logger=None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(broker.connect(), 3)
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "nats.error" in text
    assert "SSLCertVerificationError" in text
    assert users.passwords["operator"].get_secret_value() not in text


async def test_a_connection_without_tls_settings_is_not_let_in_to_a_tls_server(
    tls_nats: tuple[NatsServer, NatsUsers],
):
    server, users = tls_nats
    with pytest.raises(NatsUnreachableError, match="TLS"):
        await connect(
            users.settings("operator", server.url), "pytest-no-tls", first_connect_timeout=3
        )


async def test_a_missing_ca_file_is_named_in_a_clear_error_before_any_connection(
    tls_nats: tuple[NatsServer, NatsUsers], tmp_path: Path
):
    server, users = tls_nats
    missing = tmp_path / "no-such-ca.pem"
    settings = _settings(server, users, "operator", tls_ca_file=missing)
    with pytest.raises(
        NatsTlsConfigError, match=re.escape(f"cannot load the NATS CA file {missing}")
    ):
        broker_options(settings)
    with pytest.raises(NatsTlsConfigError, match=r"no-such-ca\.pem"):
        await connect(settings, "pytest-missing-ca")


async def test_mutual_tls_lets_in_a_client_with_a_certificate_from_the_ca_and_no_other(
    tmp_path: Path, certs: tuple[ThrowawayCa, Issued, ThrowawayCa]
):
    ca, server_cert, other = certs
    users = NatsUsers.generate()
    config = tls_server_config(tmp_path / "conf", server_cert, client_ca=ca.cert_file)
    good = ca.issue("dispatcher-client", client=True)
    stranger = other.issue("stranger", client=True)
    async with NatsServer(tmp_path / "store", config_file=config, env=users.server_env()) as server:
        base = users.settings("dispatcher", server.url)
        with_cert = base.model_copy(
            update={
                "tls_ca_file": ca.cert_file,
                "tls_cert_file": good.cert_file,
                "tls_key_file": good.key_file,
            }
        )
        nc = await connect(with_cert, "pytest-mtls", first_connect_timeout=10)
        await nc.flush()
        await nc.close()
        for update in (
            {"tls_ca_file": ca.cert_file},
            {
                "tls_ca_file": ca.cert_file,
                "tls_cert_file": stranger.cert_file,
                "tls_key_file": stranger.key_file,
            },
        ):
            with pytest.raises(NatsUnreachableError):
                await connect(
                    base.model_copy(update=update), "pytest-mtls-no", first_connect_timeout=3
                )


async def test_with_handshake_first_no_byte_is_exchanged_before_tls_and_a_plain_start_fails(
    tmp_path: Path, certs: tuple[ThrowawayCa, Issued, ThrowawayCa]
):
    ca, server_cert, _ = certs
    users = NatsUsers.generate()
    config = tls_server_config(tmp_path / "conf", server_cert, handshake_first=True)
    async with NatsServer(tmp_path / "store", config_file=config, env=users.server_env()) as server:
        base = users.settings("operator", server.url).model_copy(
            update={"tls_ca_file": ca.cert_file}
        )
        first = base.model_copy(update={"tls_handshake_first": True})
        nc = await connect(first, "pytest-handshake-first", first_connect_timeout=10)
        await nc.flush()
        await nc.close()
        with pytest.raises(NatsUnreachableError):
            await connect(base, "pytest-info-first", first_connect_timeout=3)
