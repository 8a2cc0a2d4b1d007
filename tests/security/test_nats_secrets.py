"""A NATS password appears in no repr, validation error, exception or log line.

The password is distinctive, so that finding it anywhere is proof of a leak; the refused
logins are made against a real nats-server with the deploy configuration.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from syncbus_devstack import NatsServer
from syncbus_devstack.nats_users import NatsUsers
from syncbus_shared.natsclient import NatsUnreachableError, broker_options, connect
from syncbus_shared.settings import NatsSettings

PASSWORD = "nats-PASSWORD-must-never-leak-5c2e9a"


def test_the_password_is_in_no_repr_or_str_of_the_settings():
    settings = NatsSettings(user="dispatcher", password=SecretStr(PASSWORD))
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in text
    assert settings.password is not None
    assert settings.password.get_secret_value() == PASSWORD


def test_a_bad_setting_next_to_the_password_is_named_without_echoing_either(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("SYNCBUS_NATS_PASSWORD", PASSWORD)
    monkeypatch.setenv("SYNCBUS_NATS_INBOX_PREFIX", "_INBOX.*")
    with pytest.raises(ValidationError) as bad:
        NatsSettings()
    text = str(bad.value)
    assert "inbox_prefix" in text
    assert "no wildcards" in text
    assert PASSWORD not in text
    assert "_INBOX.*" not in text  # input is hidden, whichever field it is


@pytest.mark.parametrize("prefix", ["_INBOX_dispatcher", "_INBOX.dispatcher", "a-b_c.d"])
def test_an_inbox_prefix_of_plain_subject_tokens_is_accepted(prefix: str):
    assert NatsSettings(inbox_prefix=prefix).inbox_prefix == prefix


@pytest.mark.parametrize("prefix", ["", "_INBOX.>", "_INBOX.*", "has space", "trailing.", ".x"])
def test_an_inbox_prefix_that_is_not_a_plain_subject_is_refused(prefix: str):
    with pytest.raises(ValidationError, match="inbox_prefix"):
        NatsSettings(inbox_prefix=prefix)


def test_the_broker_options_and_generated_users_show_no_password():
    settings = NatsSettings(user="dispatcher", password=SecretStr(PASSWORD))
    assert PASSWORD not in repr(broker_options(settings))
    users = NatsUsers.generate()
    secret = users.passwords["dispatcher"].get_secret_value()
    assert secret not in repr(users)
    assert "dispatcher" in repr(users)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_refused_login_says_so_without_the_password_in_the_error_or_any_log(
    locked_nats: tuple[NatsServer, NatsUsers], capsys: pytest.CaptureFixture[str]
):
    server, _ = locked_nats
    wrong = NatsSettings(url=server.url, user="dispatcher", password=SecretStr(PASSWORD))
    with pytest.raises(NatsUnreachableError) as refused:
        await connect(wrong, "pytest-wrong-password", first_connect_timeout=2)
    message = str(refused.value)
    assert "Authorization" in message
    assert PASSWORD not in message
    captured = capsys.readouterr()
    assert "nats.error" in captured.out + captured.err
    assert PASSWORD not in captured.out + captured.err
    assert server.log_path is not None
    server_log = Path(server.log_path).read_text(encoding="utf-8")
    assert "dispatcher" in server_log
    assert PASSWORD not in server_log
