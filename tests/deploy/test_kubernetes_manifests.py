"""The Kubernetes manifests in deploy/kubernetes agree with the code they deploy.

No cluster here, so what can drift is checked against its source: every SYNCBUS_* variable is a
real setting, probes hit each service's own port and paths, each service connects as its own
NATS user with its own inbox prefix (as deploy/nats declares them), no secret value is written
in a manifest, and the credential service's service account is the one the Vault role binds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

import syncbus_credentials.settings
import syncbus_dispatcher.settings
import syncbus_health_monitor.settings
import syncbus_ingress.settings
import syncbus_scheduler.settings
import syncbus_shared.probes
import syncbus_shared.settings
from syncbus_shared.probes import DEFAULT_PORTS

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
SERVICES = ("scheduler", "dispatcher", "credentials", "health-monitor")
SETTINGS_MODULES = (
    syncbus_shared.settings,
    syncbus_shared.probes,
    syncbus_credentials.settings,
    syncbus_dispatcher.settings,
    syncbus_scheduler.settings,
    syncbus_health_monitor.settings,
    syncbus_ingress.settings,
)


def _documents() -> list[dict[str, Any]]:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    docs: list[dict[str, Any]] = []
    for name in listed:
        docs += [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]
    return docs


def _deployment(service: str) -> dict[str, Any]:
    [found] = [
        d
        for d in _documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == f"syncbus-{service}"
    ]
    return found


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _setting_names() -> set[str]:
    names: set[str] = set()
    for module in SETTINGS_MODULES:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value is not BaseSettings
            ):
                prefix = str(value.model_config.get("env_prefix", ""))
                names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def test_every_file_the_kustomization_lists_exists_and_every_manifest_is_listed():
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_every_syncbus_variable_in_the_manifests_is_a_real_setting():
    known = _setting_names()
    used: set[str] = set()
    for doc in _documents():
        if doc["kind"] == "ConfigMap":
            used |= set(doc["data"])
        elif doc["kind"] in ("Deployment", "Job"):
            containers = doc["spec"]["template"]["spec"]["containers"]
            for container in containers:
                used |= set(_env(container))
    syncbus = {name for name in used if name.startswith("SYNCBUS_")}
    assert syncbus, "no setting found: the test would prove nothing"
    assert syncbus - known == set()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_itself_and_is_probed_on_its_own_port_and_paths(service: str):
    container = _container(_deployment(service))
    assert container["args"] == ["run", service]
    [port] = container["ports"]
    assert port == {"name": "probes", "containerPort": DEFAULT_PORTS[service]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "probes"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    annotations = _deployment(service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(DEFAULT_PORTS[service])


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_connects_as_its_own_nats_user_with_its_own_inbox_and_a_secret_password(
    service: str,
):
    accounts = (ROOT / "deploy" / "nats" / "syncbus-accounts.conf").read_text()
    users = set(re.findall(r"^\s*user:\s*([\w-]+)", accounts, re.MULTILINE))
    env = _env(_container(_deployment(service)))
    assert env["SYNCBUS_NATS_USER"]["value"] == service
    assert service in users
    assert env["SYNCBUS_NATS_INBOX_PREFIX"]["value"] == f"_INBOX_{service}"
    assert f'"_INBOX_{service}.>"' in accounts
    password = env["SYNCBUS_NATS_PASSWORD"]
    assert "value" not in password
    assert password["valueFrom"]["secretKeyRef"]["name"] == f"syncbus-nats-{service}"


def test_no_manifest_holds_a_secret_value_inline():
    secretish = re.compile(r"(PASSWORD|TOKEN|SECRET|KEY)$")
    for doc in _documents():
        assert doc["kind"] != "Secret", "Secrets are made by the operator, never committed"
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc["data"] if secretish.search(k)]
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                for name, item in _env(container).items():
                    if secretish.search(name) and not name.endswith("_FILE"):
                        assert "value" not in item, name


def test_the_credential_service_logs_in_to_vault_as_the_service_account_the_role_binds():
    role = json.loads(
        (ROOT / "deploy" / "vault" / "roles" / "kubernetes-syncbus-credentials.json").read_text()
    )
    deployment = _deployment("credentials")
    spec = deployment["spec"]["template"]["spec"]
    namespace = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["namespace"]
    assert spec["serviceAccountName"] in role["bound_service_account_names"]
    assert namespace in role["bound_service_account_namespaces"]
    env = _env(_container(deployment))
    assert env["SYNCBUS_VAULT_AUTH_METHOD"]["value"] == "kubernetes"
    assert env["SYNCBUS_VAULT_KUBERNETES_AUDIENCE"]["value"] == role["audience"]
    [projected] = [v for v in spec["volumes"] if v["name"] == "vault-token"]
    [source] = projected["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == role["audience"]
    mounted = {m["name"]: m["mountPath"] for m in _container(deployment)["volumeMounts"]}
    jwt = env["SYNCBUS_VAULT_KUBERNETES_JWT_PATH"]["value"]
    assert jwt == f"{mounted['vault-token']}/{source['serviceAccountToken']['path']}"


def test_only_the_credential_service_is_given_vault_settings():
    for service in SERVICES:
        env = _env(_container(_deployment(service)))
        has_vault = any(name.startswith("SYNCBUS_VAULT_") for name in env)
        assert has_vault is (service == "credentials"), service


def test_the_dispatchers_grace_on_sigterm_fits_in_the_pods_termination_grace():
    deployment = _deployment("dispatcher")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    env = _env(_container(deployment))
    assert float(env["SYNCBUS_DISPATCHER_SHUTDOWN_GRACE_SECONDS"]["value"]) + 5 <= grace
