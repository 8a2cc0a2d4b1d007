"""TLS to Vault: a real OpenBao serving a certificate from a CA made in the test; the service
trusts exactly SYNCBUS_VAULT_CA_CERT (also through hvac's custom session), presents a client
certificate when asked, and refuses a certificate from another CA with a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from credentials_support import Sessions, secret_of
from pydantic import ValidationError

from syncbus_credentials.errors import VaultTlsError
from syncbus_credentials.settings import VaultSettings
from syncbus_credentials.vault import VaultReader
from syncbus_devstack import OpenBaoDev
from syncbus_devstack.ports import free_port
from throwaway_ca import ThrowawayCA

pytestmark = pytest.mark.usefixtures("no_vault_env")


@dataclass
class TlsVault:
    bao: OpenBaoDev
    url: str
    """HTTPS, server certificate only."""
    mtls_url: str
    """HTTPS, and the client must present a certificate from the same CA."""
    ca: ThrowawayCA
    ca_file: Path
    dir: Path

    def settings(self, url: str | None = None, **overrides: object) -> VaultSettings:
        values: dict[str, object] = {
            "url": url or self.url,
            "token": self.bao.root_token,
            "ca_cert": self.ca_file,
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return VaultSettings(**values)  # type: ignore[arg-type]

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path


@pytest.fixture
async def tls_vault(tmp_path: Path) -> AsyncIterator[TlsVault]:
    ca = ThrowawayCA()
    server = ca.issue("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    (tmp_path / "server.pem").write_bytes(server.cert_pem)
    (tmp_path / "server-key.pem").write_bytes(server.key_pem)
    tls_port = free_port(also_free_above=1)
    mtls_port = free_port(also_free_above=1)
    config = tmp_path / "tls-listeners.hcl"
    config.write_text(
        f"""
listener "tcp" {{
  address       = "127.0.0.1:{tls_port}"
  tls_cert_file = "{tmp_path / "server.pem"}"
  tls_key_file  = "{tmp_path / "server-key.pem"}"
}}
listener "tcp" {{
  address                            = "127.0.0.1:{mtls_port}"
  tls_cert_file                      = "{tmp_path / "server.pem"}"
  tls_key_file                       = "{tmp_path / "server-key.pem"}"
  tls_require_and_verify_client_cert = true
  tls_client_ca_file                 = "{ca_file}"
}}
"""
    )
    bao = OpenBaoDev(log_path=tmp_path / "openbao.log", config_files=[config])
    await bao.start()
    try:
        yield TlsVault(
            bao,
            f"https://127.0.0.1:{tls_port}",
            f"https://127.0.0.1:{mtls_port}",
            ca,
            ca_file,
            tmp_path,
        )
    finally:
        await bao.stop()


async def test_the_service_reads_vault_over_tls_trusting_the_configured_ca(
    tls_vault: TlsVault, make_session: Sessions
):
    await tls_vault.bao.write_secret("integrations/tls-1", {"api_token": "over-tls-1"})
    session = make_session(tls_vault.settings())

    secret = await VaultReader(session).read("integrations/tls-1")

    assert secret.data == {"api_token": "over-tls-1"}
    assert session.state.health().ready is True


def test_the_ca_setting_survives_hvacs_custom_session(tls_vault: TlsVault, make_session: Sessions):
    """hvac takes a custom session's `verify` over its own `verify=`: the CA must be on both."""
    session = make_session(tls_vault.settings())
    adapter = session.client.adapter
    assert adapter.session.verify == str(tls_vault.ca_file)
    assert adapter._kwargs["verify"] == str(tls_vault.ca_file)


async def test_a_certificate_from_another_ca_is_refused_with_a_clear_error(
    tls_vault: TlsVault, make_session: Sessions
):
    other = tls_vault.write("other-ca.pem", ThrowawayCA("someone else's CA").cert_pem)
    session = make_session(tls_vault.settings(ca_cert=other))

    with pytest.raises(VaultTlsError) as caught:
        await VaultReader(session).read("integrations/tls-1")

    message = str(caught.value)
    assert "not trusted" in message
    assert str(other) in message
    assert tls_vault.url in message
    health = session.state.health()
    assert (health.vault_reachable, health.ready) == (False, False)
    assert "not trusted" in health.detail


async def test_without_a_ca_setting_the_error_says_to_set_one(
    tls_vault: TlsVault, make_session: Sessions
):
    session = make_session(tls_vault.settings(ca_cert=None))

    with pytest.raises(VaultTlsError, match="SYNCBUS_VAULT_CA_CERT"):
        await session.login()


async def test_mutual_tls_presents_the_client_certificate(
    tls_vault: TlsVault, make_session: Sessions
):
    client = tls_vault.ca.issue("syncbus-credentials", client=True)
    cert = tls_vault.write("client.pem", client.cert_pem)
    key = tls_vault.write("client-key.pem", client.key_pem)
    await tls_vault.bao.write_secret("integrations/mtls-1", {"api_token": "over-mtls-1"})

    without = make_session(tls_vault.settings(tls_vault.mtls_url))
    with pytest.raises(VaultTlsError):
        await without.login()

    with_cert = make_session(
        tls_vault.settings(tls_vault.mtls_url, client_cert=cert, client_key=key)
    )
    secret = await VaultReader(with_cert).read("integrations/mtls-1")
    assert secret.data == {"api_token": "over-mtls-1"}


def test_a_missing_ca_file_is_a_settings_error_that_names_the_setting(tmp_path: Path):
    with pytest.raises(ValidationError, match="ca_cert"):
        VaultSettings(ca_cert=tmp_path / "no-such-ca.pem")  # type: ignore[arg-type]


async def test_the_credential_service_answers_with_a_secret_read_over_tls(
    tls_vault: TlsVault, start_service, unique_id
):
    running = await start_service(tls_vault.settings())
    key = unique_id("tls")
    path = f"integrations/{key}"
    await tls_vault.bao.write_secret(path, {"api_token": "served-over-tls"})
    await running.add_integration(key, path)

    assert secret_of(await running.ask(key)) == "served-over-tls"
