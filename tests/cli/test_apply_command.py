"""`syncbus apply -f integrations.yaml` against a real nats-server: validation, diff, writes.

And that a running scheduler takes an applied change at once, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from typer.testing import CliRunner

from syncbus_cli.main import app
from syncbus_devstack import NatsServer
from syncbus_shared.contracts import IntegrationConfig
from syncbus_shared.integrations import get_integration, put_integration

pytestmark = pytest.mark.asyncio

XLEDGER = """\
  - integration_id: {id}
    vendor: xledger
    endpoint: https://demo.xledger.net/graphql
    credentials_path: integrations/{id}
    schedule:
      cron: "{cron}"
      timezone: Europe/Oslo
      period: month
"""


def _file(tmp_path: Path, body: str, name: str = "integrations.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def _declare(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    items = "".join(XLEDGER.format(id=i, cron=c) for i, c in entries)
    return _file(tmp_path, "integrations:\n" + items)


async def cli(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_a_new_file_creates_each_integration_and_shows_them_as_added(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    a, b = unique_id("ap"), unique_id("ap")
    path = _declare(tmp_path, (a, "5 0 1 * *"), (b, "5 2 1 * *"))

    done = await cli("apply", "-f", str(path), "--nats-url", nats_server.url)

    assert done.exit_code == 0, done.output
    assert f"+ {a}" in done.stdout
    assert f"+ {b}" in done.stdout
    assert "applied: 2 create" in done.stdout
    stored = await get_integration(jetstream, b)
    assert stored is not None
    assert stored.schedule is not None
    assert stored.schedule.cron == "5 2 1 * *"


async def test_a_changed_field_is_shown_as_a_diff_and_a_dry_run_writes_nothing(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    a = unique_id("ap")
    await cli(
        "apply", "-f", str(_declare(tmp_path, (a, "5 0 1 * *"))), "--nats-url", nats_server.url
    )
    changed = _declare(tmp_path, (a, "5 2 1 * *"))

    dry = await cli("apply", "-f", str(changed), "--dry-run", "--nats-url", nats_server.url)

    assert dry.exit_code == 0, dry.output
    assert f"~ {a}" in dry.stdout
    assert "schedule.cron: '5 0 1 * *' -> '5 2 1 * *'" in dry.stdout
    assert "would apply: 1 update" in dry.stdout
    stored = await get_integration(jetstream, a)
    assert stored is not None
    assert stored.schedule is not None
    assert stored.schedule.cron == "5 0 1 * *"

    real = await cli("apply", "-f", str(changed), "--json", "--nats-url", nats_server.url)
    report = json.loads(real.stdout)
    assert report["applied"] is True
    [change] = [c for c in report["changes"] if c["integration_id"] == a]
    assert change == {
        "integration_id": a,
        "action": "update",
        "fields": [{"path": "schedule.cron", "from": "5 0 1 * *", "to": "5 2 1 * *"}],
    }


async def test_applying_the_same_file_twice_changes_nothing_the_second_time(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    a = unique_id("ap")
    path = _declare(tmp_path, (a, "5 0 1 * *"))
    await cli("apply", "-f", str(path), "--nats-url", nats_server.url)
    kv = await jetstream.key_value("integrations")
    revision = (await kv.get(a)).revision

    again = await cli("apply", "-f", str(path), "--nats-url", nats_server.url)

    assert again.exit_code == 0, again.output
    assert f"= {a}" in again.stdout
    assert (await kv.get(a)).revision == revision


async def test_an_integration_left_out_of_the_file_is_kept_unless_pruned(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    kept, declared = unique_id("ap"), unique_id("ap")
    await put_integration(
        jetstream,
        IntegrationConfig(
            integration_id=kept,
            vendor="xledger",
            endpoint="https://demo.xledger.net/graphql",
            credentials_path=f"integrations/{kept}",
        ),
    )
    path = _declare(tmp_path, (declared, "5 0 1 * *"))

    first = await cli("apply", "-f", str(path), "--nats-url", nats_server.url)
    assert f"? {kept}  (stored, not in the file; kept: --prune deletes it)" in first.stdout
    assert await get_integration(jetstream, kept) is not None

    pruned = await cli("apply", "-f", str(path), "--prune", "--nats-url", nats_server.url)
    assert pruned.exit_code == 0, pruned.output
    assert f"- {kept}" in pruned.stdout
    assert await get_integration(jetstream, kept) is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            XLEDGER.format(id="toyen", cron="0 0 30 2 *"),
            "integration #1 (toyen): cron '0 0 30 2 *' never fires",
        ),
        (
            XLEDGER.format(id="toyen", cron="5 0 1 * *").replace(
                "vendor: xledger", "vendor: xledgr"
            ),
            "no adapter is installed for vendor 'xledgr' (installed: business_central, xledger)",
        ),
        (
            XLEDGER.format(id="toyen", cron="5 0 1 * *")
            + "    options: {client_secret: hunter2}\n",
            "option 'client_secret' looks like a secret; secrets belong in Vault",
        ),
        (
            XLEDGER.format(id="toyen", cron="5 0 1 * *").replace("timezone:", "tz:"),
            "integration #1 (toyen): schedule.tz: unknown field (check its spelling)",
        ),
        (
            XLEDGER.format(id="toyen", cron="5 0 1 * *").replace("Europe/Oslo", "Europe/Olso"),
            "unknown IANA time zone 'Europe/Olso'",
        ),
        (
            XLEDGER.format(id="toyen", cron="5 0 1 * *") * 2,
            "integration 'toyen' is declared twice (also #1)",
        ),
    ],
    ids=["never-fires", "unknown-vendor", "secret-option", "typo", "bad-zone", "twice"],
)
async def test_an_invalid_declaration_is_refused_in_one_sentence_and_nothing_is_written(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, body: str, says: str
):
    path = _file(tmp_path, "integrations:\n" + body)

    done = await cli("apply", "-f", str(path), "--nats-url", nats_server.url)

    assert done.exit_code == 1, done.output
    assert says in done.stderr
    assert "hunter2" not in done.output
    assert await get_integration(jetstream, "toyen") is None


async def test_one_invalid_integration_keeps_every_valid_one_in_the_file_unwritten_too(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    good = unique_id("ap")
    path = _declare(tmp_path, (good, "5 0 1 * *"), ("bad", "61 0 1 * *"))

    done = await cli("apply", "-f", str(path), "--json", "--nats-url", nats_server.url)

    assert done.exit_code == 1
    report = json.loads(done.stdout)
    assert report["exit_code"] == 1
    assert report["problems"][0].startswith("integration #2 (bad): ")
    assert await get_integration(jetstream, good) is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("integrations:\n  - cron: * * * * *\n", "is not valid YAML at line 2"),
        ("integrations:\n  - a: 1\n    a: 2\n", "key 'a' is given twice"),
        ("schedules: []\n", "unknown top-level key(s) schedules"),
    ],
    ids=["unquoted-star", "duplicate-key", "wrong-top-level"],
)
async def test_a_file_that_is_not_an_integrations_document_says_where_and_why(
    tmp_path: Path, body: str, says: str
):
    path = _file(tmp_path, body)

    done = await cli("apply", "-f", str(path), "--nats-url", "nats://127.0.0.1:1")

    assert done.exit_code in (1, 2), done.output
    assert says in done.stderr


async def test_an_unquoted_cron_star_gets_a_hint_to_quote_it(tmp_path: Path):
    done = await cli(
        "apply",
        "-f",
        str(_file(tmp_path, "integrations:\n  - cron: * * * * *\n")),
        "--nats-url",
        "nats://127.0.0.1:1",
    )
    assert done.exit_code == 2
    assert 'quote cron expressions that start with *, e.g. cron: "*/15 * * * *"' in done.stderr


async def test_a_missing_file_is_a_usage_error(tmp_path: Path):
    done = await cli("apply", "-f", str(tmp_path / "nope.yaml"))
    assert done.exit_code == 2
    assert "cannot read" in done.stderr


async def test_no_nats_is_one_sentence_and_exit_3(tmp_path: Path):
    path = _declare(tmp_path, ("toyen", "5 0 1 * *"))
    done = await cli("apply", "-f", str(path), "--nats-url", "nats://127.0.0.1:1")
    assert done.exit_code == 3
    assert "cannot reach NATS at nats://127.0.0.1:1" in done.stderr


async def test_the_example_file_in_docs_is_a_valid_declaration():
    from syncbus_adapters.registry import available_adapters  # noqa: PLC0415
    from syncbus_cli.apply_plan import read_file  # noqa: PLC0415

    example = Path(__file__).parents[2] / "docs" / "integrations.example.yaml"
    configs = read_file(example, known_vendors=available_adapters())
    assert [c.integration_id for c in configs] == ["toyen-xledger", "toyen-bc"]


async def test_syncbus_provision_json_lists_what_it_created_and_what_was_up_to_date(
    nats_server: NatsServer,
):
    first = await cli("provision", "--json", "--nats-url", nats_server.url)
    again = await cli("provision", "--json", "--nats-url", nats_server.url)

    assert first.exit_code == 0, first.output
    assert "bucket exported-vouchers" in json.loads(first.stdout)["created"]
    assert json.loads(again.stdout)["created"] == []
    assert "stream SYNC_REQUESTS" in json.loads(again.stdout)["updated"]


async def test_a_malformed_nats_variable_is_one_sentence_naming_it_not_a_traceback():
    done = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["provision", "--nats-url", "nats://127.0.0.1:1"],
        env={"SYNCBUS_NATS_CONNECT_TIMEOUT_SECONDS": "-1"},
    )
    assert done.exit_code == 1
    assert "the NATS setting SYNCBUS_NATS_CONNECT_TIMEOUT_SECONDS is not valid" in done.stderr
    assert "Traceback" not in done.output


async def test_prune_with_a_file_that_declares_nothing_is_refused_and_deletes_nothing(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    kept = unique_id("ap")
    await cli(
        "apply", "-f", str(_declare(tmp_path, (kept, "5 0 1 * *"))), "--nats-url", nats_server.url
    )
    for body in ("", "integrations: []\n"):
        empty = _file(tmp_path, body, "empty.yaml")
        done = await cli("apply", "-f", str(empty), "--prune", "--nats-url", nats_server.url)
        assert done.exit_code == 1, done.output
        assert "with --prune that would delete every stored integration; refused" in done.stderr
    assert await get_integration(jetstream, kept) is not None


async def test_a_schedule_paused_by_an_operator_stays_paused_when_the_file_does_not_say(
    nats_server: NatsServer, jetstream: JetStreamContext, tmp_path: Path, unique_id
):
    a = unique_id("ap")
    path = _declare(tmp_path, (a, "5 0 1 * *"))
    await cli("apply", "-f", str(path), "--nats-url", nats_server.url)
    assert (await cli("pause", a, "--nats-url", nats_server.url)).exit_code == 0

    again = await cli("apply", "-f", str(path), "--nats-url", nats_server.url)
    stored = await get_integration(jetstream, a)
    assert again.exit_code == 0, again.output
    assert f"= {a}" in again.stdout
    assert stored is not None
    assert stored.schedule is not None
    assert stored.schedule.paused is True

    explicit = _file(
        tmp_path,
        "integrations:\n" + XLEDGER.format(id=a, cron="5 0 1 * *") + "      paused: false\n",
    )
    resumed = await cli("apply", "-f", str(explicit), "--nats-url", nats_server.url)
    assert "schedule.paused: True -> False" in resumed.stdout, (resumed.output, resumed.exception)
    stored = await get_integration(jetstream, a)
    assert stored is not None
    assert stored.schedule is not None
    assert stored.schedule.paused is False


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("    options: {pwd: x}\n", "option 'pwd' looks like a secret"),
        ("    options: {connection_string: x}\n", "option 'connection_string' looks like a secret"),
        ("    options: {note: 'Bearer abc.def'}\n", "option 'note' looks like a secret"),
        ("    options: {authorization: x}\n", "option 'authorization' looks like a secret"),
    ],
)
async def test_secret_looking_options_and_values_are_refused(
    nats_server: NatsServer, tmp_path: Path, extra: str, says: str
):
    body = "integrations:\n" + XLEDGER.format(id="toyen", cron="5 0 1 * *") + extra
    done = await cli("apply", "-f", str(_file(tmp_path, body)), "--nats-url", nats_server.url)
    assert done.exit_code == 1, done.output
    assert says in done.stderr


async def test_an_endpoint_with_a_password_in_it_is_refused(
    nats_server: NatsServer, tmp_path: Path
):
    body = "integrations:\n" + XLEDGER.format(id="toyen", cron="5 0 1 * *").replace(
        "https://demo.xledger.net", "https://user:p4ssw0rd@demo.xledger.net"
    )
    done = await cli("apply", "-f", str(_file(tmp_path, body)), "--nats-url", nats_server.url)
    assert done.exit_code == 1
    assert "endpoint carries a user name or password" in done.stderr
    assert "p4ssw0rd" not in done.output
