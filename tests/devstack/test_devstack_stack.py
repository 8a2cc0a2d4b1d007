"""Stack: NATS, provisioning, OpenBao, the fakes and the services in order; nothing left after."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import hvac
import nats
import pytest

from syncbus_devstack import (
    FAKE_MODULES,
    ProcessExitedError,
    Stack,
    StackError,
    module_available,
)
from syncbus_devstack import stack as stack_module
from syncbus_shared import topology as t
from syncbus_shared.settings import TopologySettings

# A stand-in service: reports the configuration it was given in its ready line, then waits.
ECHO_SERVICE = textwrap.dedent(
    """
    import json, os, sys, threading
    names = [k for k in os.environ if k.startswith(("SYNCBUS_", "PYTHONUNBUFFERED"))]
    env = {k: os.environ[k] for k in names if k != "SYNCBUS_VAULT_TOKEN"}
    env["token_length"] = len(os.environ.get("SYNCBUS_VAULT_TOKEN", ""))
    print("echo service starting", file=sys.stderr, flush=True)
    print(json.dumps({"event": "echo.ready", "env": env}), file=sys.stderr, flush=True)
    threading.Event().wait()
    """
)
FAILING_SERVICE = "import sys; print('no vault for me', file=sys.stderr); sys.exit(2)"

XLEDGER_AVAILABLE = module_available(FAKE_MODULES["xledger"])


def _echo(name: str = "echo") -> dict[str, list[str]]:
    return {name: [sys.executable, "-c", ECHO_SERVICE]}


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _pids(stack: Stack) -> list[int | None]:
    return [stack.nats.pid, stack.vault.pid, *(p.pid for p in stack.processes.values())]


async def test_a_stack_without_services_runs_nats_provisioned_openbao_and_a_stand_in(
    tmp_path: Path,
) -> None:
    fakes = ("xledger",) if XLEDGER_AVAILABLE else ()
    stack = Stack(
        tmp_path,
        services=("echo",),
        service_commands=_echo(),
        fakes=fakes,
        xledger_tokens=["xl-token-1"],
        secrets={"integrations/toyen-xledger": {"api_token": "xl-token-1"}},
        extra_env={"SYNCBUS_EXTRA": "yes"},
        log_level="DEBUG",
    )
    async with stack:
        client = await nats.connect(stack.nats_url)
        try:
            js = client.jetstream()
            assert (await js.stream_info(t.STREAM_REQUESTS)).config.subjects == [t.REQUEST_FILTER]
            await js.consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
            await js.key_value(t.KV_SYNC_RUNS)
        finally:
            await client.close()

        vault = hvac.Client(url=stack.vault_url, token=stack.vault_token.get_secret_value())
        secret = vault.secrets.kv.v2.read_secret_version(
            path="integrations/toyen-xledger", mount_point="secret", raise_on_deleted_version=True
        )
        assert secret["data"]["data"] == {"api_token": "xl-token-1"}

        info = stack.service("echo").ready_info
        assert info is not None
        env = info["env"]
        assert env["SYNCBUS_NATS_URL"] == stack.nats_url
        assert env["SYNCBUS_VAULT_URL"] == stack.vault_url
        assert env["token_length"] == len(stack.vault_token.get_secret_value())
        assert env["SYNCBUS_VAULT_MOUNT"] == "secret"
        assert env["SYNCBUS_INSTANCE_ID"] == "dev-echo"
        assert env["SYNCBUS_LOG_LEVEL"] == "DEBUG"
        assert env["SYNCBUS_EXTRA"] == "yes"
        if XLEDGER_AVAILABLE:
            assert stack.fake_urls["xledger"].startswith("http://127.0.0.1:")
            assert env["SYNCBUS_FAKE_XLEDGER_URL"] == stack.fake_urls["xledger"]
        assert (stack.log_dir / "echo.log").read_text().startswith("echo service starting")
        pids = _pids(stack)
        assert all(pid is not None and not _gone(pid) for pid in pids)

    assert all(_gone(pid) for pid in pids)
    assert stack.state_dir / "nats" == stack.nats.store_dir
    assert {p.name for p in stack.log_dir.iterdir()} >= {"nats-server.log", "openbao.log"}


async def test_describe_says_what_runs_where_without_the_root_token(tmp_path: Path) -> None:
    async with Stack(tmp_path, services=("echo",), service_commands=_echo(), fakes=()) as stack:
        text = "\n".join(stack.describe())
        assert stack.nats_url in text
        assert stack.vault_url in text
        echo = stack.service("echo")
        assert f"pid {echo.pid}" in text
        assert str(stack.log_dir / "echo.log") in text
        assert stack.vault_token.get_secret_value() not in text
        assert stack.vault_token.get_secret_value() not in repr(stack)


async def test_a_service_that_fails_to_start_stops_the_whole_stack(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        services=("echo", "broken"),
        service_commands={**_echo(), "broken": [sys.executable, "-c", FAILING_SERVICE]},
        fakes=(),
    )
    with pytest.raises(ProcessExitedError) as caught:
        await stack.start()
    assert caught.value.component == "broken"
    assert "no vault for me" in str(caught.value)
    assert all(_gone(pid) for pid in _pids(stack))


async def test_a_killed_service_can_be_restarted(tmp_path: Path) -> None:
    async with Stack(tmp_path, services=("echo",), service_commands=_echo(), fakes=()) as stack:
        first = stack.service("echo").pid
        await stack.kill_service("echo")
        assert stack.service("echo").returncode == -9
        assert _gone(first)
        await stack.restart_service("echo")
        assert stack.service("echo").running
        assert stack.service("echo").pid != first


async def test_the_stack_applies_its_topology_settings(tmp_path: Path) -> None:
    topology = TopologySettings(dispatcher_ack_wait_seconds=17)
    async with Stack(tmp_path, services=(), fakes=(), topology=topology) as stack:
        client = await nats.connect(stack.nats_url)
        try:
            info = await client.jetstream().consumer_info(t.STREAM_REQUESTS, t.CONSUMER_DISPATCHER)
        finally:
            await client.close()
    assert info.config.ack_wait == 17


async def test_an_unknown_service_is_refused_before_anything_starts(tmp_path: Path) -> None:
    stack = Stack(tmp_path, services=("no-such-service",), fakes=())
    with pytest.raises(StackError, match="unknown service 'no-such-service'"):
        await stack.start()
    assert stack.nats.pid is None
    assert stack.vault.pid is None


async def test_a_fake_that_is_not_there_yet_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_module, "FAKE_MODULES", {"xledger": "syncbus_fakes.not_written"})
    stack = Stack(tmp_path, services=(), fakes=("xledger",))
    with pytest.raises(StackError, match="fake 'xledger' is not installed"):
        await stack.start()
    assert stack.nats.pid is None
