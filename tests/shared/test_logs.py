"""The JSON log lines every service writes: secrets masked, tracebacks without their locals."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from syncbus_shared.logs import configure_logging, get_logger

CLEAR_SECRET = "clear-text-secret-in-a-local-3f9a7c"


def _fail_with_a_secret_in_a_local() -> None:
    header = f"Bearer {CLEAR_SECRET}"  # a local variable, as an adapter's would be
    raise RuntimeError(f"refused ({len(header)} characters sent)")


def test_a_logged_exception_keeps_its_frames_but_never_their_local_variables(
    capsys: pytest.CaptureFixture[str],
):
    configure_logging("pytest", "INFO")
    try:
        _fail_with_a_secret_in_a_local()
    except RuntimeError:
        get_logger().exception("test.failed")

    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["event"] == "test.failed"
    [exception] = event["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["frames"][-1]["name"] == "_fail_with_a_secret_in_a_local"
    assert "locals" not in exception["frames"][-1] or not exception["frames"][-1]["locals"]
    assert CLEAR_SECRET not in line


def test_secret_values_and_secret_named_fields_are_masked(capsys: pytest.CaptureFixture[str]):
    configure_logging("pytest", "INFO")
    get_logger().info("test.logged", api_token="abc123", value=SecretStr("xyz789"), count=3)

    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["api_token"] == "**********"
    assert event["value"] == "**********"
    assert event["count"] == 3
