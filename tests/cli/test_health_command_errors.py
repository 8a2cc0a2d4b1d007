"""`syncbus health` and its subcommands when given something wrong: one sentence, an exit code.

In process (typer's CliRunner), against a real nats-server where NATS is needed at all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from nats.js import JetStreamContext
from typer.testing import CliRunner

from syncbus_cli.main import app
from syncbus_devstack import NatsServer

pytestmark = pytest.mark.asyncio

NOWHERE = "nats://127.0.0.1:1"
"""No server listens here: a command that gets this far would fail on connecting."""


async def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def _one_sentence(done: Any) -> str:
    assert "Traceback" not in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return str(lines[0])


@pytest.mark.parametrize("bad", ["*", ">", "a.b", "tøyen", "", " "])
async def test_recheck_of_something_that_is_not_an_integration_id_says_so_and_exits_2(
    bad: str,
) -> None:
    done = await cli("health", "recheck", bad, "--nats-url", NOWHERE)

    assert done.exit_code == 2
    assert _one_sentence(done) == (
        f"syncbus health recheck: {bad!r} is not an integration id "
        "(1-64 letters, digits, '-' or '_')"
    )
    assert done.stdout == ""


async def test_recheck_of_a_bad_id_with_json_prints_the_error_object_too() -> None:
    done = await cli("health", "recheck", "a.b", "--json", "--nats-url", NOWHERE)

    assert done.exit_code == 2
    assert json.loads(done.stdout) == {
        "error": "'a.b' is not an integration id (1-64 letters, digits, '-' or '_')",
        "exit_code": 2,
    }


async def test_recheck_of_an_integration_that_is_not_configured_says_so_and_exits_1(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    done = await cli("health", "recheck", "nope", "--nats-url", nats_server.url)

    assert done.exit_code == 1
    assert _one_sentence(done) == "syncbus health recheck: integration 'nope' is not configured"
    assert done.stdout == ""


async def test_recheck_of_an_unconfigured_integration_with_json_prints_the_error_object(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> None:
    done = await cli("health", "recheck", "nope", "--json", "--nats-url", nats_server.url)

    assert done.exit_code == 1
    assert json.loads(done.stdout) == {
        "error": "integration 'nope' is not configured",
        "exit_code": 1,
    }


async def test_recheck_against_an_unprovisioned_nats_says_to_provision_it(
    nats_server: NatsServer,
) -> None:
    done = await cli("health", "recheck", "nope", "--nats-url", nats_server.url)

    assert done.exit_code == 1
    assert "NATS holds no syncbus state (run `syncbus provision`)" in _one_sentence(done)


@pytest.mark.parametrize(
    "args",
    [("health",), ("health", "recheck", "toyen-xledger"), ("health", "vendor-mode", "x", "active")],
    ids=["health", "recheck", "vendor-mode"],
)
async def test_a_malformed_nats_variable_is_one_sentence_naming_it_for_every_health_command(
    args: tuple[str, ...],
) -> None:
    done = await cli(
        *args, "--nats-url", NOWHERE, env={"SYNCBUS_NATS_CONNECT_TIMEOUT_SECONDS": "-1"}
    )

    assert done.exit_code == 1
    command = " ".join(args[:2])
    assert _one_sentence(done).startswith(
        f"syncbus {command}: the NATS setting SYNCBUS_NATS_CONNECT_TIMEOUT_SECONDS is not valid"
    )


async def test_a_nats_url_that_names_no_server_is_one_sentence_too() -> None:
    done = await cli("health", "--nats-url", " , ")

    assert done.exit_code == 1
    assert "the NATS setting SYNCBUS_NATS_URL is not valid" in _one_sentence(done)
