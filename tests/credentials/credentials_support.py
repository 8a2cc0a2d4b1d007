"""Helpers for the credential service's Vault tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import SecretStr

from syncbus_credentials.health import VaultState
from syncbus_credentials.service import Built, CredentialService
from syncbus_credentials.session import VaultSession
from syncbus_credentials.settings import VaultSettings
from syncbus_devstack import OpenBaoDev
from syncbus_shared import topology as t
from syncbus_shared.contracts import CredentialRequest, CredentialResponse, IntegrationConfig
from syncbus_shared.integrations import put_integration

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "vault" / "syncbus-credentials.hcl"
POLICY_NAME = "syncbus-credentials"


@dataclass
class AppRole:
    mount: str
    role: str
    role_id: str
    secret_id: SecretStr
    admin: Any

    def settings(self, openbao: OpenBaoDev, **overrides: Any) -> VaultSettings:
        values: dict[str, Any] = {
            "url": openbao.url,
            "auth_method": "approle",
            "auth_mount": self.mount,
            "role_id": self.role_id,
            "secret_id": self.secret_id,
        }
        values.update(overrides)
        return VaultSettings(**values)


async def make_approle(admin: Any, **role: Any) -> AppRole:
    """A fresh AppRole mount with role `syncbus-credentials` under the deployed policy."""
    mount = f"approle-{uuid.uuid4().hex[:10]}"
    name = "syncbus-credentials"

    def setup() -> AppRole:
        admin.sys.enable_auth_method("approle", path=mount)
        admin.auth.approle.create_or_update_approle(
            role_name=name, token_policies=[POLICY_NAME], mount_point=mount, **role
        )
        role_id = admin.auth.approle.read_role_id(name, mount_point=mount)["data"]["role_id"]
        secret = admin.auth.approle.generate_secret_id(name, mount_point=mount)
        return AppRole(mount, name, role_id, SecretStr(secret["data"]["secret_id"]), admin)

    return await asyncio.to_thread(setup)


async def write_policy(admin: Any) -> None:
    await asyncio.to_thread(
        admin.sys.create_or_update_policy, name=POLICY_NAME, policy=POLICY.read_text()
    )


class Sessions:
    """make_session(settings) -> VaultSession; keep_alive(session) starts its upkeep task,
    cancelled at teardown."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self, settings: VaultSettings, grace_seconds: float = 900.0) -> VaultSession:
        return VaultSession(settings, VaultState(grace_seconds))

    def keep_alive(self, session: VaultSession) -> None:
        self.tasks.append(asyncio.create_task(session.keep_alive()))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


SERVICE_ACCOUNT_UID = "5b0c1d9e-6f1a-4c8e-9a57-3d2f0e4b7a61"
"""The uid every minted service-account token carries (Vault checks the review's matches)."""


def mint_service_account_jwt(
    key: rsa.RSAPrivateKey, namespace: str, name: str, audiences: list[str]
) -> str:
    """An RS256 JWT shaped like a projected service-account token (uid SERVICE_ACCOUNT_UID)."""
    now = int(time.time())
    header = {"alg": "RS256", "kid": "test", "typ": "JWT"}
    claims = {
        "aud": audiences,
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": "https://kubernetes.default.svc",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": SERVICE_ACCOUNT_UID},
        },
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@dataclass
class RunningService:
    """A credential service running in the test's event loop, and how to talk to it."""

    built: Built
    nc: Client
    js: JetStreamContext

    @property
    def service(self) -> CredentialService:
        return self.built.service

    async def add_integration(self, integration_id: str, path: str) -> None:
        config = IntegrationConfig.model_validate(
            {
                "integration_id": integration_id,
                "vendor": "xledger",
                "endpoint": "https://demo.xledger.net/graphql",
                "credentials_path": path,
            }
        )
        await put_integration(self.js, config)

    async def ask(self, integration_id: str, *, force: bool = False) -> CredentialResponse:
        request = CredentialRequest(integration_id=integration_id, force_refresh=force)
        reply = await self.nc.request(
            t.credentials_subject(integration_id), request.to_bytes(), timeout=10
        )
        return CredentialResponse.model_validate_json(reply.data)

    async def invalidate(self, integration_id: str) -> None:
        """Publish the invalidation and wait for this replica's (empty) reply."""
        await self.nc.request(t.credentials_invalidate_subject(integration_id), b"", timeout=10)


def secret_of(response: CredentialResponse) -> str:
    assert response.error is None, response.error
    assert response.secret is not None
    return response.secret.get_secret_value()
