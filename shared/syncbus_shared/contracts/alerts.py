"""Operator alerts on `alerts.<kind>.<integration_id>`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from ._base import Instant, Message, utc_now


class AlertKind(StrEnum):
    DRIFT = "drift"
    COLD_START = "cold_start"
    MISSED_PERIODS = "missed_periods"
    QUOTA = "quota"


class Alert(Message):
    type: Literal["syncbus.alert.v1"] = "syncbus.alert.v1"
    kind: AlertKind
    integration_id: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    raised_at: Instant = Field(default_factory=utc_now)
