"""The credential service against real OpenBao and NATS: it serves, refuses, and never leaks."""

from __future__ import annotations

import secrets

import pytest
from nats.aio.client import Client

from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    CredentialRequest,
    CredentialResponse,
    ErrorClass,
    IntegrationConfig,
)
from syncbus_shared.integrations import put_integration

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _configure(stack: Stack, bus: Client, integration_id: str) -> None:
    await put_integration(
        bus.jetstream(),
        IntegrationConfig(
            integration_id=integration_id,
            vendor="xledger",
            endpoint="http://127.0.0.1:9/graphql",
            credentials_path=f"integrations/{integration_id}",
        ),
    )


async def _ask(bus: Client, integration_id: str, body: bytes | None = None) -> CredentialResponse:
    payload = (
        body if body is not None else CredentialRequest(integration_id=integration_id).to_bytes()
    )
    reply = await bus.request(t.credentials_subject(integration_id), payload, timeout=10)
    return CredentialResponse.from_bytes(reply.data)


async def test_the_token_stored_in_openbao_is_served_to_the_requester(
    stack: Stack, bus: Client, unique_id
):
    integration_id = unique_id("cred")
    token = "tok-" + secrets.token_hex(12)
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": token})
    await _configure(stack, bus, integration_id)
    response = await _ask(bus, integration_id)
    assert response.error is None
    assert response.scheme == "token"
    assert response.secret is not None
    assert response.secret.get_secret_value() == token
    assert response.version == 1
    log = (stack.log_dir / "credentials.log").read_text()
    assert "credentials.served" in log
    assert token not in log


async def test_an_unconfigured_integration_gets_a_configuration_error(bus: Client, unique_id):
    response = await _ask(bus, unique_id("nobody"))
    assert response.secret is None
    assert response.error is not None
    assert response.error.error_class is ErrorClass.CONFIGURATION
    assert "not configured" in response.error.message


async def test_a_missing_secret_gets_a_configuration_error_naming_the_path(
    stack: Stack, bus: Client, unique_id
):
    integration_id = unique_id("cred")
    await _configure(stack, bus, integration_id)
    response = await _ask(bus, integration_id)
    assert response.error is not None
    assert response.error.error_class is ErrorClass.CONFIGURATION
    assert f"integrations/{integration_id}" in response.error.message


async def test_a_secret_without_an_api_token_field_is_refused_without_showing_its_values(
    stack: Stack, bus: Client, unique_id
):
    integration_id = unique_id("cred")
    await stack.vault.write_secret(
        f"integrations/{integration_id}", {"apiToken": "hidden-value-123"}
    )
    await _configure(stack, bus, integration_id)
    response = await _ask(bus, integration_id)
    assert response.error is not None
    assert "api_token" in response.error.message
    assert "hidden-value-123" not in response.to_bytes().decode()


async def test_a_malformed_credential_request_gets_an_error_and_the_service_keeps_serving(
    stack: Stack, bus: Client, unique_id
):
    integration_id = unique_id("cred")
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": "t-1"})
    await _configure(stack, bus, integration_id)
    bad = await _ask(bus, integration_id, b"\x00not json")
    assert bad.error is not None
    assert bad.error.error_class is ErrorClass.INVALID_REQUEST
    other = await _ask(
        bus, integration_id, CredentialRequest(integration_id="someone-else").to_bytes()
    )
    assert other.error is not None
    assert "another integration" in other.error.message
    good = await _ask(bus, integration_id)
    assert good.error is None
