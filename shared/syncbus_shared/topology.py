"""Every NATS subject, stream, consumer and KV bucket syncbus uses, named once.

Services and tools build subjects only through these functions, so a name cannot drift
between a publisher and its subscriber.
"""

from __future__ import annotations

from .keys import encode_token

# --- streams -------------------------------------------------------------------------------
STREAM_REQUESTS = "SYNC_REQUESTS"
STREAM_RESULTS = "SYNC_RESULTS"
STREAM_LEDGER = "LEDGER"
STREAM_DLQ = "SYNC_DLQ"
STREAM_ALERTS = "ALERTS"

# --- durable consumers ---------------------------------------------------------------------
CONSUMER_DISPATCHER = "dispatcher"

# --- KV buckets ----------------------------------------------------------------------------
KV_INTEGRATIONS = "integrations"
KV_SYNC_RUNS = "sync-runs"
KV_SCHEDULE_STATE = "schedule-state"
KV_HEALTH = "integration-health"
KV_PROBE_BUDGET = "probe-budget"
"""Health-check calls spent per integration (probes and warm-ups), per hour and month."""
KV_EXPORTED_VOUCHERS = "exported-vouchers"
"""Voucher-level ledger: each voucher is posted at most once per integration, whatever the key."""

# --- queue groups (one member of each handles a message) ------------------------------------
QUEUE_CREDENTIALS = "credentials"
QUEUE_DISPATCHER_WARMUP = "dispatcher-warmup"
QUEUE_SCHEDULER_COMMANDS = "scheduler"

DEFAULT_INBOX_PREFIX = "_INBOX"
"""nats-py's inbox prefix when a connection sets none (development, no NATS users)."""

INVALID_INTEGRATION = "_invalid"
"""Results for requests whose integration id cannot be read go to `sync.result._invalid`."""


def request_subject(integration_id: str) -> str:
    return f"sync.request.{integration_id}"


def warmup_subject(integration_id: str) -> str:
    return f"sync.warmup.{integration_id}"


def progress_subject(integration_id: str) -> str:
    return f"sync.progress.{integration_id}"


def result_subject(integration_id: str) -> str:
    return f"sync.result.{integration_id}"


def dlq_subject(integration_id: str) -> str:
    return f"sync.dlq.{integration_id}"


def ledger_period_subject(integration_id: str, period_id: str) -> str:
    """All vouchers staged for one integration and period (a filter: ends with `>`)."""
    return f"ledger.{integration_id}.{encode_token(period_id)}.>"


def ledger_voucher_subject(integration_id: str, period_id: str, voucher_id: str) -> str:
    """One voucher's own subject: at most one message each, so a re-import stages nothing."""
    return f"ledger.{integration_id}.{encode_token(period_id)}.{encode_token(voucher_id)}"


def ledger_integration_subject(integration_id: str) -> str:
    """Every voucher staged for one integration, in any period (a filter: ends with `>`)."""
    return f"ledger.{integration_id}.>"


def credentials_subject(integration_id: str, requester: str = DEFAULT_INBOX_PREFIX) -> str:
    """`credentials.get.<requester>.<integration_id>`; `requester` is the asker's inbox prefix.

    The requester is in the subject so that NATS permissions can vouch for it: each user may
    publish only under its own prefix (`credentials.get._INBOX_dispatcher.*`) and subscribe only
    to its own inbox, and the credential service answers only a reply subject under the prefix
    the subject names. A request naming any other subscriber's subject (another requester's
    inbox included) as its reply gets no answer.
    """
    return f"credentials.get.{requester}.{integration_id}"


def parse_credentials_subject(subject: str) -> tuple[str, str] | None:
    """`(requester, integration_id)` of a credential request subject, or None."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[:2] != ["credentials", "get"]:
        return None
    return parts[2], parts[3]


def credentials_invalidate_subject(integration_id: str) -> str:
    """Drop one integration's cached secret in every credential service replica."""
    return f"credentials.invalidate.{integration_id}"


def health_subject(integration_id: str) -> str:
    return f"health.status.{integration_id}"


def health_recheck_subject(integration_id: str) -> str:
    """Request/reply: ask the health monitor to probe one integration now (floor, budget hold)."""
    return f"health.recheck.{integration_id}"


VENDOR_HEALTH_PREFIX = "vendor."
"""KV `integration-health` keys of per-vendor modes; integration ids never contain a dot."""


def vendor_health_key(vendor: str) -> str:
    """The `integration-health` key of one vendor's (integration type's) health mode."""
    return f"{VENDOR_HEALTH_PREFIX}{encode_token(vendor)}"


def alert_subject(kind: str, integration_id: str) -> str:
    return f"alerts.{kind}.{integration_id}"


SCHEDULER_BACKFILL = "scheduler.backfill"
"""Request/reply: ask a scheduler replica to fire past periods of one integration on purpose."""

SCHEDULER_TRIGGER = "scheduler.trigger"
"""Request/reply: ask a scheduler replica to fire one integration's schedule now."""

SCHEDULER_STATUS = "scheduler.status"
"""Request, many replies: every scheduler replica answers with its `SchedulerStatus`."""

INVALID_SCHEDULE_ALERT = "invalid_schedule"
"""The `alerts.<kind>` token of `ScheduleRejected` messages (a schedule the scheduler refuses)."""


def schedule_rejected_subject(integration_id: str) -> str:
    return alert_subject(INVALID_SCHEDULE_ALERT, integration_id)


REQUEST_FILTER = "sync.request.*"
WARMUP_FILTER = "sync.warmup.*"
RESULT_FILTER = "sync.result.*"
HEALTH_RECHECK_FILTER = "health.recheck.*"
CREDENTIALS_FILTER = "credentials.get.*.*"
CREDENTIALS_INVALIDATE_FILTER = "credentials.invalidate.*"
