"""A schedule that can never fire is refused when applied, with a sentence that says so."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from syncbus_scheduler.validation import (
    ScheduleError,
    describe_config_error,
    validate_integration,
    validate_schedule,
)
from syncbus_shared.contracts import IntegrationConfig, Schedule

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def config(schedule: Schedule | None) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id="toyen-xledger",
        vendor="xledger",
        endpoint="https://demo.xledger.net/graphql",
        credentials_path="integrations/toyen-xledger",
        schedule=schedule,
    )


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 0 30 2 *", "never fires: February has no 30th"),
        ("0 0 31 4,6 *", "never fires: April and June have no 31st"),
        ("61 0 * * *", "the minute field '61' is not valid"),
        ("0 0 * * MOO", "the day-of-week field 'MOO' is not valid"),
    ],
)
def test_a_schedule_that_cannot_fire_is_refused_with_a_sentence_naming_the_problem(
    cron: str, says: str
):
    with pytest.raises(ScheduleError, match=says):
        validate_schedule(Schedule(cron=cron, timezone="Europe/Oslo"), now=NOW)


@pytest.mark.parametrize(
    "cron", ["5 0 1 * *", "0 0 29 2 *", "0 0 L * *", "0 0 * * 5L", "*/15 7-17 * * 1-5"]
)
def test_schedules_that_fire_pass(cron: str):
    validate_schedule(Schedule(cron=cron, timezone="Europe/Oslo"), now=NOW)


def test_the_integration_is_named_in_the_refusal_and_no_schedule_is_fine():
    with pytest.raises(ScheduleError, match=r"^integration 'toyen-xledger': cron '0 0 30 2 \*'"):
        validate_integration(config(Schedule(cron="0 0 30 2 *")), now=NOW)
    validate_integration(config(None), now=NOW)


def test_a_config_that_does_not_parse_is_described_in_one_sentence():
    with pytest.raises(ValidationError) as caught:
        IntegrationConfig.model_validate_json(
            b'{"integration_id": "a", "vendor": "x", "endpoint": "e", "credentials_path": "p",'
            b' "schedule": {"cron": "0 0 * *", "timezone": "Mars/Olympus"}}'
        )

    sentence = describe_config_error(caught.value)

    assert sentence.startswith("the config is not a valid integration: schedule.cron:")
    assert "(and 1 more problem(s))" in sentence
