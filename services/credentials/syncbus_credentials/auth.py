"""How the service logs in to Vault: token (development), AppRole or Kubernetes.

Each method's `login(client)` runs in a worker thread (hvac is synchronous) and returns the
token with its TTL; it never sets the token on the client (the session does, under its lock).

    token        the configured token, looked up to learn its TTL; it cannot log in again
    approle      role id + secret id (from the environment or a file read at each login)
    kubernetes   the pod's service-account JWT (read at each login: the kubelet rotates it)

Login errors become `VaultLoginError` with what the operator needs (method, mount, Vault's
own reason) and never the secret id or JWT. Outages stay outages (`VaultUnavailableError`):
the caller tells the two apart.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol

import hvac
from hvac.exceptions import Forbidden, InvalidPath, InvalidRequest, Unauthorized
from hvac.exceptions import VaultError as HvacError
from pydantic import SecretStr

from .errors import VaultLoginError
from .settings import VaultSettings
from .transport import unavailable

_MAX_REASON = 200


@dataclass(frozen=True)
class Login:
    token: SecretStr
    ttl_seconds: float
    """0: the token never expires (a root token)."""
    renewable: bool


class LoginMethod(Protocol):
    name: str
    can_login_again: bool
    """False for a configured token: once it is gone, only an operator can give a new one."""

    def login(self, client: Any) -> Login: ...


class TokenLogin:
    name = "token"
    can_login_again = False

    def __init__(self, settings: VaultSettings) -> None:
        self._settings = settings

    def login(self, client: Any) -> Login:
        if self._settings.token is None:
            raise VaultLoginError("token auth needs SYNCBUS_VAULT_TOKEN, which is not set")
        token = self._settings.token
        try:
            own = hvac.Client(
                url=self._settings.url,
                token=token.get_secret_value(),
                timeout=self._settings.timeout_seconds,
                session=client.adapter.session,
            )
            data = own.auth.token.lookup_self()["data"]
        except HvacError as exc:
            raise _refused(
                exc, self._settings, "the configured token was refused", [token]
            ) from None
        return Login(token, float(data.get("ttl") or 0), bool(data.get("renewable")))


class AppRoleLogin:
    name = "approle"
    can_login_again = True

    def __init__(self, settings: VaultSettings) -> None:
        self._settings = settings

    def _secret_id(self) -> SecretStr:
        path = self._settings.secret_id_file
        if path is None:
            assert self._settings.secret_id is not None
            return self._settings.secret_id
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise VaultLoginError(
                f"cannot read the AppRole secret id file {path} ({type(exc).__name__})"
            ) from None
        if not value:
            raise VaultLoginError(f"the AppRole secret id file {path} is empty")
        return SecretStr(value)

    def login(self, client: Any) -> Login:
        secret_id = self._secret_id()
        mount = self._settings.auth_mount_point
        try:
            answer = client.auth.approle.login(
                role_id=self._settings.role_id,
                secret_id=secret_id.get_secret_value(),
                use_token=False,
                mount_point=mount,
            )
        except HvacError as exc:
            raise _refused(
                exc, self._settings, f"AppRole login at auth/{mount} was refused", [secret_id]
            ) from None
        return _from_auth(answer)


class KubernetesLogin:
    name = "kubernetes"
    can_login_again = True

    def __init__(self, settings: VaultSettings) -> None:
        self._settings = settings

    def _jwt(self) -> SecretStr:
        path = self._settings.kubernetes_jwt_path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise VaultLoginError(
                f"cannot read the Kubernetes service-account token at {path} "
                f"({type(exc).__name__}): is a service account mounted?"
            ) from None
        if not value:
            raise VaultLoginError(f"the Kubernetes service-account token at {path} is empty")
        expected = self._settings.kubernetes_audience
        if expected is not None:
            audiences = jwt_audiences(value)
            if expected not in audiences:
                raise VaultLoginError(
                    f"the service-account token at {path} is for audience(s) "
                    f"{sorted(audiences) or 'none'}, not {expected!r}: project a token with "
                    "that audience"
                )
        return SecretStr(value)

    def login(self, client: Any) -> Login:
        jwt = self._jwt()
        mount = self._settings.auth_mount_point
        try:
            answer = client.auth.kubernetes.login(
                role=self._settings.kubernetes_role,
                jwt=jwt.get_secret_value(),
                use_token=False,
                mount_point=mount,
            )
        except HvacError as exc:
            raise _refused(
                exc,
                self._settings,
                f"Kubernetes login as role {self._settings.kubernetes_role!r} at auth/{mount} "
                "was refused",
                [jwt],
            ) from None
        return _from_auth(answer)


def login_method(settings: VaultSettings) -> LoginMethod:
    if settings.auth_method == "approle":
        return AppRoleLogin(settings)
    if settings.auth_method == "kubernetes":
        return KubernetesLogin(settings)
    return TokenLogin(settings)


def jwt_audiences(jwt: str) -> set[str]:
    """The `aud` claim of a JWT, read without checking its signature (Vault checks it)."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return set()
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return set()
    aud = claims.get("aud") if isinstance(claims, dict) else None
    if isinstance(aud, str):
        return {aud}
    if isinstance(aud, list):
        return {str(a) for a in aud}
    return set()


def _from_auth(answer: Any) -> Login:
    auth = answer.get("auth") if isinstance(answer, dict) else None
    token = auth.get("client_token") if isinstance(auth, dict) else None
    if not isinstance(auth, dict) or not isinstance(token, str) or not token:
        raise VaultLoginError(
            "Vault answered the login without a client token", vault_answered=True
        )
    return Login(
        SecretStr(token), float(auth.get("lease_duration") or 0), bool(auth.get("renewable"))
    )


def _refused(
    exc: HvacError, settings: VaultSettings, what: str, secrets: list[SecretStr]
) -> Exception:
    """The outage `exc` stands for, or a `VaultLoginError` with Vault's reason, scrubbed."""
    outage = unavailable(exc, settings)
    if outage is not None:
        return outage
    if not isinstance(exc, Forbidden | InvalidRequest | Unauthorized | InvalidPath):
        return VaultLoginError(f"{what}: Vault answered {type(exc).__name__}", vault_answered=True)
    errors = getattr(exc, "errors", None) or []
    reason = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
    for secret in secrets:
        value = secret.get_secret_value()
        if value:
            reason = reason.replace(value, "**********")
    return VaultLoginError(
        f"{what}: {reason[:_MAX_REASON] or type(exc).__name__}", vault_answered=True
    )
