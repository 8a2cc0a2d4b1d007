"""The configuration files in deploy/nats/ load in a real nats-server (`nats-server -t`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nats_tls_support import ThrowawayCa

from syncbus_devstack.binaries import find_nats_server
from syncbus_devstack.nats_users import ACCOUNTS_CONF, USERS, NatsUsers, password_variable

EXAMPLE = ACCOUNTS_CONF.parent / "nats-server.conf"


def _check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_nats_server()), "-c", str(config), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _example_in(folder: Path) -> Path:
    """The example configuration, with a throwaway certificate and store in `folder`."""
    ca = ThrowawayCa.make(folder / "pki", "syncbus example CA")
    server = ca.issue("nats-server", ips=("127.0.0.1",))
    text = (
        EXAMPLE.read_text(encoding="utf-8")
        .replace("/etc/nats/tls/server.pem", str(server.cert_file))
        .replace("/etc/nats/tls/server-key.pem", str(server.key_file))
        .replace("/var/lib/nats/jetstream", str(folder / "store"))
    )
    (folder / "nats-server.conf").write_text(text, encoding="utf-8")
    (folder / ACCOUNTS_CONF.name).write_text(ACCOUNTS_CONF.read_text(encoding="utf-8"))
    return folder / "nats-server.conf"


def test_the_example_server_configuration_is_valid_once_every_password_is_set(tmp_path: Path):
    checked = _check(_example_in(tmp_path), NatsUsers.generate().server_env())
    assert checked.returncode == 0, checked.stderr
    assert "is valid" in checked.stdout + checked.stderr


def test_the_server_will_not_start_while_a_users_password_is_missing(tmp_path: Path):
    env = NatsUsers.generate().server_env()
    del env[password_variable("operator")]
    checked = _check(_example_in(tmp_path), env)
    assert checked.returncode != 0
    assert "SYNCBUS_NATS_PASSWORD_OPERATOR" in checked.stderr


def test_the_configuration_names_exactly_the_devstacks_users_and_holds_no_password():
    text = ACCOUNTS_CONF.read_text(encoding="utf-8")
    declared = [line.split(":", 1)[1].strip() for line in text.splitlines() if "user:" in line]
    assert sorted(declared) == sorted(USERS)
    passwords = [line.strip() for line in text.splitlines() if line.strip().startswith("password")]
    assert len(passwords) == len(USERS)
    assert all(p.split(":", 1)[1].strip().startswith("$SYNCBUS_NATS_PASSWORD_") for p in passwords)
