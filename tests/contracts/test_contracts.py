"""Contracts v1: golden examples, amounts as decimal strings, balance, and the key mapping."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from syncbus_shared.contracts import (
    MESSAGE_TYPES,
    CredentialResponse,
    SyncRequest,
    Voucher,
    VoucherLine,
)
from syncbus_shared.keys import decode_token, encode_token

EXAMPLES = sorted(
    (Path(__import__("syncbus_shared").__file__).parent / "contracts" / "examples").glob("*.json")
)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_golden_example_validates_against_its_versioned_model_and_round_trips(path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))
    model = MESSAGE_TYPES[data["type"]]
    message = model.model_validate(data)
    again = model.model_validate_json(message.to_bytes())
    assert again == message


def test_there_is_a_golden_example_of_every_message_on_the_bus():
    types = {json.loads(p.read_text())["type"] for p in EXAMPLES}
    for name in [
        "sync_request",
        "warmup",
        "sync_progress",
        "sync_result",
        "voucher",
        "credential_request",
        "credential_response",
        "health_status",
        "alert",
        "integration",
        "backfill_request",
        "run_record",
    ]:
        assert f"syncbus.{name}.v1" in types


def test_every_type_name_is_versioned():
    for name in MESSAGE_TYPES:
        assert name.startswith("syncbus.")
        assert name.rsplit(".", 1)[-1] == "v1"


def _line(record: str, *, debit: str | None = None, credit: str | None = None) -> VoucherLine:
    return VoucherLine(record_id=record, account_id="1920", debit=debit, credit=credit)


def _voucher(*lines: VoucherLine) -> Voucher:
    return Voucher(
        voucher_id="v-1",
        period_id="2017-01",
        transaction_date="2017-01-01",
        posting_date="2017-01-01",
        lines=lines,
    )


def test_a_voucher_that_does_not_balance_is_refused_with_both_totals_named():
    with pytest.raises(ValidationError, match=r"does not balance: debit 100.00 != credit 99.99"):
        _voucher(_line("1", debit="100.00"), _line("2", credit="99.99"))


def test_amounts_are_decimals_in_python_and_decimal_strings_on_the_wire():
    voucher = _voucher(
        _line("1", debit="0.10"), _line("2", debit="0.20"), _line("3", credit="0.30")
    )
    assert voucher.debit_total == Decimal("0.30")
    wire = json.loads(voucher.to_bytes())
    assert wire["lines"][0]["debit"] == "0.10"


@pytest.mark.parametrize("amount", [1.5, 100, True])
def test_a_json_number_amount_is_refused_because_it_may_have_been_a_float(amount: object):
    with pytest.raises(ValidationError, match="decimal string"):
        VoucherLine.model_validate({"record_id": "1", "account_id": "1", "debit": amount})


@pytest.mark.parametrize("text", ["1e3", "12,50", "NaN", "", "1.1234567"])
def test_a_malformed_amount_string_is_refused(text: str):
    with pytest.raises(ValidationError):
        VoucherLine(record_id="1", account_id="1", debit=text)


def test_a_line_with_both_a_debit_and_a_credit_is_refused():
    with pytest.raises(ValidationError, match="either a debit or a credit"):
        _line("1", debit="1.00", credit="1.00")


def test_a_request_without_a_key_gets_integration_colon_period():
    request = SyncRequest(integration_id="toyen-xledger", period_id="2017-03")
    assert request.idempotency_key == "toyen-xledger:2017-03"


def test_an_integration_id_that_cannot_be_a_subject_token_is_refused():
    with pytest.raises(ValidationError, match="subject token"):
        SyncRequest(integration_id="toyen.xledger", period_id="2017-03")


def test_a_secret_is_masked_in_repr_and_errors_but_sent_on_the_wire():
    response = CredentialResponse(integration_id="a", secret=SecretStr("s3cr3t-value"))
    assert "s3cr3t-value" not in repr(response)
    assert "s3cr3t-value" not in str(response)
    assert json.loads(response.to_bytes())["secret"] == "s3cr3t-value"
    with pytest.raises(ValidationError) as info:
        CredentialResponse.model_validate(
            {"integration_id": "a", "secret": "s3cr3t-value", "version": "x"}
        )
    assert "s3cr3t-value" not in str(info.value)


def test_the_key_mapping_turns_an_idempotency_key_into_a_valid_kv_key():
    assert encode_token("toyen-xledger:2017-01") == "toyen-xledger=3A2017-01"
    assert encode_token("Tøyen") == "T=C3=B8yen"


@given(st.text(min_size=1, max_size=60))
def test_the_key_mapping_is_reversible_and_yields_only_kv_safe_characters(text: str):
    token = encode_token(text)
    assert decode_token(token) == text
    assert all(c.isascii() and (c.isalnum() or c in "-_=") for c in token)
