"""The hand-written JSON of requests and warm-ups is exactly what the models would write."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from syncbus_scheduler.firing import fire_target, instant_key
from syncbus_scheduler.periods import parse_period_id
from syncbus_scheduler.wire import build_request, request_bytes, warmup_bytes
from syncbus_shared.contracts import (
    PeriodKind,
    RequestOrigin,
    Schedule,
    ScheduleMode,
    SyncRequest,
    SyncScope,
    WarmUp,
)

ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
# hypothesis wants naive bounds and adds the zone itself.
instants = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2099, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
kinds = st.sampled_from(list(PeriodKind))
zones = st.sampled_from(["Europe/Oslo", "UTC", "America/New_York", "Pacific/Auckland"])


@settings(max_examples=300)
@given(
    integration_id=ids,
    kind=kinds,
    tz=zones,
    incremental=st.booleans(),
    scheduled_for=instants,
    late=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    origin=st.sampled_from(list(RequestOrigin)),
)
def test_a_request_written_by_hand_parses_to_the_model_the_scheduler_would_build(
    integration_id: str,
    kind: PeriodKind,
    tz: str,
    incremental: bool,
    scheduled_for: datetime,
    late: float,
    origin: RequestOrigin,
):
    mode = ScheduleMode.INCREMENTAL if incremental else ScheduleMode.PERIOD
    schedule = Schedule(cron="5 0 1 * *", timezone=tz, period=kind, mode=mode)
    target = fire_target(integration_id, schedule, scheduled_for)
    published_at = scheduled_for + timedelta(milliseconds=late)
    args = {
        "origin": origin,
        "scheduled_for": scheduled_for,
        "published_at": published_at,
        "drift_ms": late,
        "request_id": "0123456789abcdef0123456789abcdef",
    }

    fast = SyncRequest.from_bytes(
        request_bytes(integration_id, target.idempotency_key, target.period, **args)
    )

    assert fast == build_request(integration_id, target.idempotency_key, target.period, **args)
    assert fast.scope is (SyncScope.STAGED if incremental else SyncScope.PERIOD)


@settings(max_examples=200)
@given(integration_id=ids, scheduled_for=instants, with_period=st.booleans())
def test_a_warm_up_written_by_hand_parses_to_the_model(
    integration_id: str, scheduled_for: datetime, with_period: bool
):
    period_id = "2026-11" if with_period else None
    key = f"{integration_id}:2026-11" if with_period else instant_key(integration_id, scheduled_for)
    published_at = scheduled_for - timedelta(seconds=30)

    fast = WarmUp.from_bytes(
        warmup_bytes(integration_id, key, period_id, scheduled_for, published_at)
    )

    assert fast == WarmUp(
        integration_id=integration_id,
        idempotency_key=key,
        period_id=period_id,
        scheduled_for=scheduled_for,
        published_at=published_at,
    )


def test_a_request_carries_its_periods_bounds_as_local_dates_and_utc_instants():
    march = parse_period_id(PeriodKind.MONTH, "2026-03", "Europe/Oslo")
    fire = datetime(2026, 3, 31, 22, 5, tzinfo=UTC)

    request = SyncRequest.from_bytes(
        request_bytes(
            "toyen-xledger",
            "toyen-xledger:2026-03",
            march,
            origin=RequestOrigin.SCHEDULER,
            scheduled_for=fire,
            published_at=fire,
            drift_ms=0.0,
        )
    )

    assert (request.period_start_local, request.period_end_local) == (
        date(2026, 3, 1),
        date(2026, 3, 31),
    )
    assert request.period_start_utc == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert request.period_end_utc == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    assert request.period_timezone == "Europe/Oslo"


def test_text_that_would_need_json_escaping_falls_back_to_the_model():
    # Never produced by the scheduler (ids are validated), but the writer must stay correct.
    body = warmup_bytes(
        "a", 'a:"quoted"', None, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    )

    assert WarmUp.from_bytes(body).idempotency_key == 'a:"quoted"'
