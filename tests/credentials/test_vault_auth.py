"""The credential service logs in to a real OpenBao with token, AppRole or Kubernetes auth, keeps
its token renewed, and logs in again when the token is gone (with the policy in deploy/vault)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from credentials_support import (
    POLICY_NAME,
    SERVICE_ACCOUNT_UID,
    AppRole,
    Sessions,
    make_approle,
)
from pydantic import SecretStr, ValidationError

from syncbus_credentials.errors import VaultDeniedError, VaultLoginError
from syncbus_credentials.settings import KUBERNETES_JWT_PATH, VaultSettings
from syncbus_credentials.vault import VaultReader
from syncbus_devstack import OpenBaoDev
from syncbus_fakes.kubernetes import TokenReviewFake
from syncbus_fakes.server import serve_app
from throwaway_ca import ThrowawayCA

pytestmark = pytest.mark.usefixtures("no_vault_env")


async def _secret(openbao: OpenBaoDev, unique_id: Callable[..., str], value: str) -> str:
    path = f"integrations/{unique_id('auth')}"
    await openbao.write_secret(path, {"api_token": value})
    return path


async def _self_lookup(openbao: OpenBaoDev, token: str) -> dict[str, Any]:
    def lookup() -> dict[str, Any]:
        return dict(openbao.client().auth.token.lookup(token)["data"])

    return await asyncio.to_thread(lookup)


async def _revoke(openbao: OpenBaoDev, token: str) -> None:
    await asyncio.to_thread(openbao.client().auth.token.revoke, token)


# --- token ---------------------------------------------------------------------------------


async def test_token_auth_reads_with_the_configured_token_and_learns_its_ttl(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions, unique_id
):
    created = await asyncio.to_thread(
        vault_admin.auth.token.create, policies=[POLICY_NAME], ttl="1h"
    )
    token = created["auth"]["client_token"]
    assert token.startswith(("s.", "b.")), "OpenBao's token prefixes"
    session = make_session(VaultSettings(url=openbao.url, token=SecretStr(token)))
    path = await _secret(openbao, unique_id, "tok-value-1")

    secret = await VaultReader(session).read(path)

    assert secret.data == {"api_token": "tok-value-1"}
    assert session.method == "token"
    assert session.stats.logins == 1
    assert session.state.health().ready is True


async def test_token_auth_without_a_token_says_which_variable_is_missing(
    openbao: OpenBaoDev, make_session: Sessions
):
    session = make_session(VaultSettings(url=openbao.url))
    with pytest.raises(VaultLoginError, match="SYNCBUS_VAULT_TOKEN"):
        await session.login()
    assert session.state.health().ready is False


async def test_a_revoked_configured_token_is_reported_and_not_retried_forever(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions, unique_id
):
    created = await asyncio.to_thread(
        vault_admin.auth.token.create, policies=[POLICY_NAME], ttl="1h"
    )
    token = created["auth"]["client_token"]
    session = make_session(VaultSettings(url=openbao.url, token=SecretStr(token)))
    path = await _secret(openbao, unique_id, "tok-value-2")
    reader = VaultReader(session)
    await reader.read(path)
    await _revoke(openbao, token)

    with pytest.raises(VaultLoginError, match="expired or revoked") as caught:
        await reader.read(path)

    assert token not in str(caught.value)
    health = session.state.health()
    assert health.ready is False
    assert health.vault_reachable is True
    assert "expired or revoked" in health.detail


# --- AppRole -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["environment", "file"])
async def test_approle_login_reads_a_secret_with_the_deployed_policy(
    openbao: OpenBaoDev,
    approle: AppRole,
    make_session: Sessions,
    unique_id,
    tmp_path: Path,
    source: str,
):
    if source == "file":
        secret_file = tmp_path / "secret-id"
        secret_file.write_text(approle.secret_id.get_secret_value() + "\n")
        settings = approle.settings(openbao, secret_id=None, secret_id_file=secret_file)
    else:
        settings = approle.settings(openbao)
    session = make_session(settings)
    path = await _secret(openbao, unique_id, "approle-value-1")

    secret = await VaultReader(session).read(path)

    assert secret.data == {"api_token": "approle-value-1"}
    assert session.stats.logins == 1
    looked_up = await _self_lookup(openbao, session.client.token)
    assert POLICY_NAME in looked_up["policies"]


async def test_a_refused_approle_login_names_the_mount_and_never_the_secret_id(
    openbao: OpenBaoDev, approle: AppRole, make_session: Sessions
):
    wrong = "0c4f7a52-9d0b-4c39-b5b5-wrong-secret-id"
    session = make_session(approle.settings(openbao, secret_id=SecretStr(wrong)))

    with pytest.raises(VaultLoginError) as caught:
        await session.login()

    message = str(caught.value)
    assert f"auth/{approle.mount}" in message
    assert wrong not in message
    health = session.state.health()
    assert (health.vault_reachable, health.ready) == (True, False)
    assert wrong not in health.detail


async def test_the_service_renews_its_token_at_two_thirds_of_its_ttl(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions
):
    role = await make_approle(vault_admin, token_ttl="3s", token_max_ttl="1h")
    session = make_session(role.settings(openbao))
    make_session.keep_alive(session)

    await session.wait_for(lambda s: s.logins == 1, timeout=10)
    first = session.client.token
    await session.wait_for(lambda s: s.renewals >= 2, timeout=10)

    assert session.stats.logins == 1, "renewed, not logged in again"
    assert session.client.token == first
    looked_up = await _self_lookup(openbao, first)
    assert looked_up["ttl"] > 1, "the renewal extended the token"


async def test_a_token_whose_renewal_fails_is_replaced_by_a_new_login(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions
):
    role = await make_approle(vault_admin, token_ttl="3s", token_max_ttl="1h")
    session = make_session(role.settings(openbao))
    make_session.keep_alive(session)
    await session.wait_for(lambda s: s.logins == 1, timeout=10)
    first = session.client.token

    await _revoke(openbao, first)
    await session.wait_for(lambda s: s.logins == 2, timeout=10)

    assert session.stats.renewal_failures == 1
    assert session.client.token != first
    assert session.state.health().ready is True


async def test_a_token_near_its_max_ttl_is_replaced_by_a_new_login(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions
):
    role = await make_approle(vault_admin, token_ttl="4s", token_max_ttl="6s")
    session = make_session(role.settings(openbao))
    make_session.keep_alive(session)

    await session.wait_for(lambda s: s.logins >= 2, timeout=15)

    assert session.stats.renewals >= 1
    assert session.stats.renewal_failures == 0, "replaced before its max TTL ended it"


async def test_a_read_with_a_revoked_token_checks_the_token_then_logs_in_again_once(
    openbao: OpenBaoDev, approle: AppRole, make_session: Sessions, unique_id
):
    session = make_session(approle.settings(openbao))
    reader = VaultReader(session)
    path = await _secret(openbao, unique_id, "approle-value-2")
    await reader.read(path)
    await _revoke(openbao, session.client.token)

    secret = await reader.read(path)

    assert secret.data == {"api_token": "approle-value-2"}
    assert (session.stats.token_checks, session.stats.logins) == (1, 2)


async def test_a_policy_denial_is_not_mistaken_for_an_expired_token(
    openbao: OpenBaoDev, approle: AppRole, make_session: Sessions, unique_id
):
    session = make_session(approle.settings(openbao))
    other = f"other-team/{unique_id('payroll')}"
    await openbao.write_secret(other, {"api_token": "not-for-syncbus"})

    with pytest.raises(VaultDeniedError, match="permission denied"):
        await VaultReader(session).read(other)

    assert (session.stats.token_checks, session.stats.logins) == (1, 1)
    assert session.state.health().ready is True


# --- Kubernetes ----------------------------------------------------------------------------


async def _kubernetes_mount(admin: Any, host: str, *, audience: str | None) -> str:
    mount = f"kubernetes-{unique_suffix()}"

    def setup() -> None:
        admin.sys.enable_auth_method("kubernetes", path=mount)
        admin.auth.kubernetes.configure(
            kubernetes_host=host,
            kubernetes_ca_cert=ThrowawayCA("kubernetes test CA").cert_pem.decode(),
            disable_local_ca_jwt=True,
            mount_point=mount,
        )
        role: dict[str, Any] = {
            "name": "syncbus-credentials",
            "bound_service_account_names": ["syncbus-credentials"],
            "bound_service_account_namespaces": ["syncbus"],
            "policies": [POLICY_NAME],
            "ttl": "1h",
            "mount_point": mount,
        }
        if audience is not None:
            role["audience"] = audience
        admin.auth.kubernetes.create_role(**role)

    await asyncio.to_thread(setup)
    return mount


def unique_suffix() -> str:
    import uuid  # noqa: PLC0415

    return uuid.uuid4().hex[:10]


async def test_kubernetes_login_with_the_pods_service_account_token_reads_a_secret(
    openbao: OpenBaoDev,
    vault_admin: Any,
    make_session: Sessions,
    service_account_jwt,
    unique_id,
    tmp_path: Path,
):
    review = TokenReviewFake()
    jwt = service_account_jwt("syncbus", "syncbus-credentials", ["vault"])
    review.register(
        jwt,
        namespace="syncbus",
        service_account="syncbus-credentials",
        audiences=["vault"],
        uid=SERVICE_ACCOUNT_UID,
    )
    jwt_file = tmp_path / "token"
    jwt_file.write_text(jwt)
    path = await _secret(openbao, unique_id, "k8s-value-1")
    async with serve_app(review.app()) as host:
        mount = await _kubernetes_mount(vault_admin, host, audience="vault")
        session = make_session(
            VaultSettings(
                url=openbao.url,
                auth_method="kubernetes",
                auth_mount=mount,
                kubernetes_role="syncbus-credentials",
                kubernetes_jwt_path=jwt_file,
                kubernetes_audience="vault",
            )
        )
        secret = await VaultReader(session).read(path)

    assert secret.data == {"api_token": "k8s-value-1"}
    assert len(review.reviews) == 1
    assert review.reviews[0].authenticated is True
    assert review.reviews[0].audiences == ("vault",), "Vault asked for the role's audience"
    looked_up = await _self_lookup(openbao, session.client.token)
    assert looked_up["meta"]["service_account_namespace"] == "syncbus"


async def test_kubernetes_login_of_another_service_account_is_refused(
    openbao: OpenBaoDev,
    vault_admin: Any,
    make_session: Sessions,
    service_account_jwt,
    tmp_path: Path,
):
    review = TokenReviewFake()
    jwt = service_account_jwt("syncbus", "syncbus-dispatcher", ["vault"])
    review.register(
        jwt,
        namespace="syncbus",
        service_account="syncbus-dispatcher",
        audiences=["vault"],
        uid=SERVICE_ACCOUNT_UID,
    )
    jwt_file = tmp_path / "token"
    jwt_file.write_text(jwt)
    async with serve_app(review.app()) as host:
        mount = await _kubernetes_mount(vault_admin, host, audience=None)
        session = make_session(
            VaultSettings(
                url=openbao.url,
                auth_method="kubernetes",
                auth_mount=mount,
                kubernetes_role="syncbus-credentials",
                kubernetes_jwt_path=jwt_file,
            )
        )
        with pytest.raises(VaultLoginError, match="syncbus-credentials") as caught:
            await session.login()

    assert jwt not in str(caught.value)


async def test_a_service_account_token_for_another_audience_is_refused_before_vault_is_asked(
    openbao: OpenBaoDev, make_session: Sessions, service_account_jwt, tmp_path: Path
):
    jwt_file = tmp_path / "token"
    jwt_file.write_text(
        service_account_jwt("syncbus", "syncbus-credentials", ["https://kubernetes.default.svc"])
    )
    session = make_session(
        VaultSettings(
            url=openbao.url,
            auth_method="kubernetes",
            kubernetes_role="syncbus-credentials",
            kubernetes_jwt_path=jwt_file,
            kubernetes_audience="vault",
        )
    )

    with pytest.raises(VaultLoginError, match="not 'vault'"):
        await session.login()


async def test_a_missing_service_account_token_names_the_path(
    openbao: OpenBaoDev, make_session: Sessions, tmp_path: Path
):
    missing = tmp_path / "no-such-token"
    session = make_session(
        VaultSettings(
            url=openbao.url,
            auth_method="kubernetes",
            kubernetes_role="syncbus-credentials",
            kubernetes_jwt_path=missing,
        )
    )
    with pytest.raises(VaultLoginError, match=str(missing)):
        await session.login()


# --- settings ------------------------------------------------------------------------------


def test_kubernetes_auth_reads_the_standard_service_account_path_by_default():
    settings = VaultSettings(auth_method="kubernetes", kubernetes_role="syncbus-credentials")
    assert settings.kubernetes_jwt_path == KUBERNETES_JWT_PATH
    assert str(KUBERNETES_JWT_PATH) == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert settings.auth_mount_point == "kubernetes"


def test_approle_settings_without_a_secret_id_name_what_is_missing():
    with pytest.raises(ValidationError, match="SYNCBUS_VAULT_SECRET_ID"):
        VaultSettings(auth_method="approle", role_id="r-1")


def test_a_settings_error_does_not_print_the_secret_values_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("SYNCBUS_VAULT_AUTH_METHOD", "approle")
    monkeypatch.setenv("SYNCBUS_VAULT_SECRET_ID", "distinctive-secret-id-77")
    monkeypatch.setenv("SYNCBUS_VAULT_TOKEN", "s.distinctive-token-77")
    monkeypatch.setenv("SYNCBUS_VAULT_TIMEOUT_SECONDS", "not-a-number")
    with pytest.raises(ValidationError) as caught:
        VaultSettings()
    assert "distinctive" not in str(caught.value)
    assert "distinctive" not in repr(caught.value)


# --- the auth roles in deploy/vault ----------------------------------------------------------

ROLES = Path(__file__).resolve().parents[2] / "deploy" / "vault" / "roles"


async def _deployed_role(admin: Any, method: str, mount: str, config: dict[str, Any]) -> None:
    role = json.loads((ROLES / f"{method}-syncbus-credentials.json").read_text())

    def setup() -> None:
        admin.sys.enable_auth_method(method, path=mount)
        if config:
            admin.adapter.post(f"/v1/auth/{mount}/config", json=config)
        admin.adapter.post(f"/v1/auth/{mount}/role/syncbus-credentials", json=role)

    await asyncio.to_thread(setup)


async def test_the_deployed_approle_role_lets_the_service_log_in_with_the_policy(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions, unique_id
):
    mount = f"approle-{unique_suffix()}"
    await _deployed_role(vault_admin, "approle", mount, {})

    def credentials() -> tuple[str, str]:
        role_id = vault_admin.auth.approle.read_role_id("syncbus-credentials", mount_point=mount)
        secret = vault_admin.auth.approle.generate_secret_id(
            "syncbus-credentials", mount_point=mount
        )
        return role_id["data"]["role_id"], secret["data"]["secret_id"]

    role_id, secret_id = await asyncio.to_thread(credentials)
    session = make_session(
        VaultSettings(
            url=openbao.url,
            auth_method="approle",
            auth_mount=mount,
            role_id=role_id,
            secret_id=SecretStr(secret_id),
        )
    )
    path = await _secret(openbao, unique_id, "deployed-approle")

    assert (await VaultReader(session).read(path)).data == {"api_token": "deployed-approle"}
    looked_up = await _self_lookup(openbao, session.client.token)
    assert looked_up["policies"] == ["default", POLICY_NAME]
    assert looked_up["creation_ttl"] == 3600


async def test_the_deployed_kubernetes_role_wants_the_vault_audience(
    openbao: OpenBaoDev,
    vault_admin: Any,
    make_session: Sessions,
    service_account_jwt,
    unique_id,
    tmp_path: Path,
):
    review = TokenReviewFake()
    right = service_account_jwt("syncbus", "syncbus-credentials", ["vault"])
    wrong = service_account_jwt(
        "syncbus", "syncbus-credentials", ["https://kubernetes.default.svc"]
    )
    for jwt, audiences in ((right, ["vault"]), (wrong, ["https://kubernetes.default.svc"])):
        review.register(
            jwt,
            namespace="syncbus",
            service_account="syncbus-credentials",
            audiences=audiences,
            uid=SERVICE_ACCOUNT_UID,
        )
    path = await _secret(openbao, unique_id, "deployed-k8s")
    mount = f"kubernetes-{unique_suffix()}"
    async with serve_app(review.app()) as host:
        await _deployed_role(
            vault_admin,
            "kubernetes",
            mount,
            {
                "kubernetes_host": host,
                "kubernetes_ca_cert": ThrowawayCA("kubernetes test CA").cert_pem.decode(),
                "disable_local_ca_jwt": True,
            },
        )

        def session_for(jwt: str, name: str) -> Any:
            jwt_file = tmp_path / name
            jwt_file.write_text(jwt)
            return make_session(
                VaultSettings(
                    url=openbao.url,
                    auth_method="kubernetes",
                    auth_mount=mount,
                    kubernetes_role="syncbus-credentials",
                    kubernetes_jwt_path=jwt_file,
                )
            )

        secret = await VaultReader(session_for(right, "right")).read(path)
        with pytest.raises(VaultLoginError):
            await session_for(wrong, "wrong").login()

    assert secret.data == {"api_token": "deployed-k8s"}


async def test_no_token_or_secret_id_reaches_the_logs_through_logins_renewals_and_failures(
    openbao: OpenBaoDev, vault_admin: Any, make_session: Sessions, unique_id, capsys
):
    role = await make_approle(vault_admin, token_ttl="3s", token_max_ttl="1h")
    session = make_session(role.settings(openbao))
    make_session.keep_alive(session)
    await session.wait_for(lambda s: s.logins == 1, timeout=10)
    tokens = [session.client.token]
    await session.wait_for(lambda s: s.renewals >= 1, timeout=10)
    await _revoke(openbao, tokens[0])
    await session.wait_for(lambda s: s.logins == 2, timeout=10)
    tokens.append(session.client.token)
    path = await _secret(openbao, unique_id, "logged-never-77")
    await VaultReader(session).read(path)
    wrong = "wrong-secret-id-that-must-not-leak"
    with pytest.raises(VaultLoginError) as refused:
        await make_session(role.settings(openbao, secret_id=SecretStr(wrong))).login()

    captured = capsys.readouterr()
    text = captured.out + captured.err + str(refused.value) + repr(session.stats)
    assert "credentials.vault_logged_in" in text
    for secret in [*tokens, role.secret_id.get_secret_value(), wrong, "logged-never-77"]:
        assert secret not in text
