"""The base of every syncbus message and the field types they share."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)

from ..keys import INTEGRATION_ID_PATTERN, PERIOD_ID_PATTERN

_AMOUNT_TEXT = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")


def _amount(value: Any) -> Decimal:
    """Amounts travel as decimal strings. A JSON number is refused: it may have been a float."""
    if isinstance(value, bool | float | int):
        raise ValueError(
            f'amount {value!r} must be a decimal string such as "101.00", not a JSON number'
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"amount {value} is not a finite decimal")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"amount must be a decimal string, got {type(value).__name__}")
    if not _AMOUNT_TEXT.match(text):
        raise ValueError(
            f"amount {text[:40]!r} is not a decimal with at most 15 digits before "
            "and 6 after the point"
        )
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guards this
        raise ValueError(f"amount {text[:40]!r} is not a decimal") from exc


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _AMOUNT_TEXT.pattern, "examples": ["101.00"]}),
]
"""A money amount: `Decimal` in Python, a decimal string on the wire, never a float."""


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must carry a UTC offset (for example 2017-02-01T00:05:00Z)")
    return value.astimezone(UTC)


Instant = Annotated[datetime, AfterValidator(_aware)]
"""A point in time, always with an offset, normalised to UTC."""


_INTEGRATION = re.compile(INTEGRATION_ID_PATTERN)
_PERIOD = re.compile(PERIOD_ID_PATTERN)


def _integration_id(value: Any) -> str:
    if not isinstance(value, str) or not _INTEGRATION.match(value):
        raise ValueError(
            "an integration id is 1-64 letters, digits, '-' or '_' (it becomes a subject token)"
        )
    return value


def _period_id(value: Any) -> str:
    if not isinstance(value, str) or not _PERIOD.match(value) or not _real_period(value):
        raise ValueError(
            "a period id is a real year, month, day, ISO week or quarter: "
            "2017, 2017-01, 2017-01-31, 2017-W05 or 2017-Q1"
        )
    return value


def _real_period(value: str) -> bool:
    """`2017-13`, `2017-02-30` and `2017-W54` match the pattern but name no period."""
    year = int(value[:4])
    try:
        if "-W" in value:
            date.fromisocalendar(year, int(value[6:]), 1)
        elif len(value) == 10:
            date.fromisoformat(value)
        elif len(value) == 7 and "-Q" not in value:
            date(year, int(value[5:]), 1)
    except ValueError:
        return False
    return year >= 1


IntegrationIdStr = Annotated[str, BeforeValidator(_integration_id)]
PeriodId = Annotated[str, BeforeValidator(_period_id)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every message on the bus.

    Each subclass pins `type` to a versioned name such as `syncbus.sync_request.v1`. Versions
    evolve only by adding optional fields; readers ignore fields they do not know, so an older
    service keeps reading newer messages.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,  # a validation error must never echo a secret it was given
        populate_by_name=True,
    )

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)
