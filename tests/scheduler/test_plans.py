"""The heap of next fires: only what is due comes out, stale entries never do, misses go first."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

from syncbus_scheduler.plans import Plan, PlanBook
from syncbus_shared.contracts import PeriodKind, Schedule, ScheduleMode

HOURLY = Schedule(
    cron="0 * * * *", timezone="Europe/Oslo", lead_seconds=30, mode=ScheduleMode.INCREMENTAL
)


def ts(hour: int, minute: int = 0) -> float:
    return datetime(2026, 12, 3, hour, minute, tzinfo=UTC).timestamp()


def plan(integration_id: str, fire: float) -> Plan:
    return Plan(integration_id, HOURLY, next_fire=fire, publish_at=fire)


def test_only_plans_whose_next_action_is_due_are_popped_soonest_first():
    book = PlanBook()
    book.put(plan("late", ts(12)))
    book.put(plan("soon", ts(10)))
    book.put(plan("later", ts(11)))

    due = book.pop_due(ts(11))

    assert [p.integration_id for p in due] == ["soon", "later"]
    assert book.next_due() == ts(12) - 30  # the warm-up of "late"


def test_a_plan_is_due_at_its_warm_up_time_first_then_at_its_fire():
    book = PlanBook()
    p = plan("a", ts(10))
    book.put(p)

    assert book.pop_due(ts(10) - 31) == []
    assert book.pop_due(ts(10) - 30) == [p]
    p.warm_done = True
    book.push(p)
    assert book.next_due() == ts(10)


def test_a_replaced_or_removed_plan_never_comes_out_of_the_heap():
    book = PlanBook()
    old = plan("a", ts(10))
    book.put(old)
    new = plan("a", ts(11))
    book.put(new)
    book.put(plan("b", ts(10)))
    book.remove("b")

    due = book.pop_due(ts(12))

    assert due == [new]
    assert not old.alive


def test_a_plan_sends_its_missed_fires_oldest_first_and_then_follows_its_cron():
    p = plan("a", ts(7))
    p.pending = deque([ts(8), ts(9)])
    p.catch_up = True
    fired = [p.next_fire]
    for _ in range(3):
        p.advance(now=ts(10, 30))
        fired.append(p.next_fire)

    assert fired == [ts(7), ts(8), ts(9), ts(10)]
    assert p.pending is None
    assert not p.catch_up
    # A missed fire goes at once; the next cron fire at its own time.
    assert p.publish_at == ts(10)


def test_advancing_resets_the_warm_up_of_the_next_fire():
    p = plan("a", ts(10))
    p.warm_done = p.warmed = p.standby = True
    p.advance(now=ts(10))

    assert (p.warm_done, p.warmed, p.standby) == (False, False, False)
    assert p.next_fire == ts(11)


def test_a_period_schedule_skips_the_fires_that_would_repeat_the_period_it_just_fired():
    # Every December fire of a daily cron covers November; after 1 December, the next fire
    # that exports something new is 1 January's.
    daily_month = Schedule(cron="0 6 * * *", timezone="UTC", period=PeriodKind.MONTH)
    p = Plan("a", daily_month, next_fire=ts(6), publish_at=ts(6))  # 3 December 06:00
    p.advance(now=ts(6))

    assert p.next_fire == datetime(2027, 1, 1, 6, tzinfo=UTC).timestamp()
