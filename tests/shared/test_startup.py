"""A service started with a setting that cannot work says which, in one line, and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from syncbus_shared.settings import NatsSettings


@pytest.mark.parametrize(
    ("module", "env", "says"),
    [
        (
            "syncbus_dispatcher",
            {"SYNCBUS_DISPATCHER_BATCH_ATTEMPTS": "-1"},
            "dispatcher: the setting SYNCBUS_DISPATCHER_BATCH_ATTEMPTS is not valid",
        ),
        (
            "syncbus_scheduler",
            {"SYNCBUS_NATS_URL": " "},
            "scheduler: the setting SYNCBUS_NATS_URL is not valid: names no server",
        ),
        (
            "syncbus_credentials",
            {"SYNCBUS_NATS_TLS_CA_FILE": "/no/such/ca.pem"},
            "credentials: cannot load the NATS CA file /no/such/ca.pem",
        ),
        (
            "syncbus_health_monitor",
            {"SYNCBUS_NATS_URL": "nats://127.0.0.1:99999"},
            "health-monitor: the setting SYNCBUS_NATS_URL is not valid",
        ),
    ],
)
def test_a_service_with_a_bad_setting_exits_2_with_one_sentence_and_no_traceback(
    module: str, env: dict[str, str], says: str
):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCBUS_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-m", module],
        env=clean | {"SYNCBUS_PROBE_PORT": "0"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "url", [" ", ",", "nats://", "nats://[::1", "nats://127.0.0.1:0", "http://127.0.0.1:4222"]
)
def test_a_nats_url_that_names_no_usable_server_is_refused_before_connecting(url: str):
    # nats-py would spin at full CPU on a server list with nothing it can use.
    with pytest.raises(ValidationError):
        NatsSettings(url=url)


def test_several_urls_and_a_bare_host_and_port_are_accepted():
    settings = NatsSettings(url="nats://a:4222, tls://b:4222,c:4222")
    assert settings.servers == ["nats://a:4222", "tls://b:4222", "c:4222"]
