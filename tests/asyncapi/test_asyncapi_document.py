"""docs/asyncapi.json: generated from the services' FastStream apps, committed, and kept honest.

These fail when the code and the committed document disagree (run `syncbus asyncapi --write`
and commit the file), and when a message on the bus is documented without its payload.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from syncbus_cli.asyncapi_command import build_document, empty_payloads, render
from syncbus_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.json"


def _committed() -> dict[str, object]:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def test_the_committed_document_is_what_the_code_generates():
    generated = build_document()
    assert generated == _committed(), (
        "docs/asyncapi.json differs from the code: run `syncbus asyncapi --write` and commit it"
    )


def test_generating_twice_gives_the_same_text():
    assert render(build_document()) == render(build_document())


def test_every_message_on_the_bus_is_documented_with_its_payload():
    assert empty_payloads(build_document()) == [], (
        "add the contract that these subscribers read to RECEIVED in asyncapi_command.py"
    )


def test_the_v1_contracts_are_the_payloads_and_amounts_are_documented():
    document = build_document()
    schemas = document["components"]["schemas"]
    for name in (
        "SyncRequest",
        "SyncResult",
        "SyncProgress",
        "WarmUp",
        "Voucher",
        "VoucherLine",
        "CredentialRequest",
        "CredentialResponse",
        "BackfillRequest",
        "BackfillReply",
        "HealthStatus",
        "Alert",
    ):
        assert name in schemas, name
    request = schemas["SyncRequest"]
    assert request["properties"]["type"]["const"] == "syncbus.sync_request.v1"
    assert "integration_id" in request["required"]


def test_who_sends_and_who_receives_each_request_subject_is_documented():
    operations = build_document()["operations"]
    assert operations["sync.request.*"]["action"] == "receive"  # the dispatcher
    assert operations["sync.request.* (scheduler)"]["action"] == "send"
    assert operations["sync.request.* (ingress)"]["action"] == "send"
    assert operations["sync.result.* (dispatcher)"]["action"] == "send"
    assert operations["sync.result.* (health-monitor reads)"]["action"] == "receive"


def test_request_reply_subjects_name_the_reply_they_get():
    document = build_document()
    reply = document["operations"]["credentials.get.*.*"]["reply"]
    channel = reply["channel"]["$ref"].rsplit("/", 1)[-1]
    assert channel == "_INBOX.%2A%20%28CredentialResponse%29"
    assert document["channels"]["_INBOX.* (CredentialResponse)"]["address"] is None
    asking = document["operations"]["credentials.get.*.* (dispatcher)"]
    assert asking["action"] == "send"
    assert asking["reply"] == reply
    assert "reply" in document["operations"]["scheduler.backfill"]


def test_channels_with_an_integration_in_the_subject_declare_the_parameter():
    channels = build_document()["channels"]
    result = channels["sync.result.* (dispatcher)"]
    assert result["address"] == "sync.result.{integration_id}"
    assert set(result["parameters"]) == {"integration_id"}


def test_asyncapi_check_exits_1_and_shows_a_diff_when_the_file_is_stale(tmp_path: Path):
    stale = _committed()
    stale["info"] = {**stale["info"], "version": "0.0.0"}  # type: ignore[dict-item]
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(stale), encoding="utf-8")
    result = CliRunner().invoke(app, ["asyncapi", "--check", "--file", str(path)])
    assert result.exit_code == 1
    assert '"version": "0.0.0"' in result.stderr
    assert "differs from the code" in result.stderr


def test_asyncapi_write_then_check_agree_and_a_missing_file_exits_2(tmp_path: Path):
    path = tmp_path / "docs" / "asyncapi.json"
    runner = CliRunner()
    missing = runner.invoke(app, ["asyncapi", "--check", "--file", str(path)])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    written = runner.invoke(app, ["asyncapi", "--write", "--file", str(path), "--json"])
    assert written.exit_code == 0
    assert json.loads(written.stdout) == {"file": str(path), "written": True}
    checked = runner.invoke(app, ["asyncapi", "--check", "--file", str(path), "--json"])
    assert checked.exit_code == 0
    assert json.loads(checked.stdout) == {"file": str(path), "up_to_date": True}
    printed = runner.invoke(app, ["asyncapi"])
    assert json.loads(printed.stdout) == json.loads(path.read_text(encoding="utf-8"))
