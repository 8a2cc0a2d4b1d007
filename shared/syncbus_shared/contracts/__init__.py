"""Contracts v1: every message on the bus is one of these models.

Each carries a versioned `type` (`syncbus.<name>.v1`) and evolves only by adding optional
fields. Golden examples of each live in `examples/` and are validated by the tests.
"""

from ._base import Amount, Instant, Message, utc_now
from .alerts import Alert, AlertKind
from .credentials import CredentialRequest, CredentialResponse
from .health import HealthState, HealthStatus
from .integration import HealthConfig, HealthMode, IntegrationConfig, PeriodKind, Schedule
from .runs import RunRecord, RunState
from .scheduler import BackfillReply, BackfillRequest, FiredPeriod
from .sync import (
    ErrorClass,
    ErrorInfo,
    RequestOrigin,
    SyncProgress,
    SyncRequest,
    SyncResult,
    SyncStatus,
    WarmUp,
    new_request_id,
)
from .voucher import AnalysisDimension, Voucher, VoucherLine

MESSAGE_TYPES: dict[str, type[Message]] = {
    model.model_fields["type"].default: model
    for model in (
        Alert,
        AnalysisDimension,
        BackfillReply,
        BackfillRequest,
        CredentialRequest,
        CredentialResponse,
        ErrorInfo,
        FiredPeriod,
        HealthConfig,
        HealthStatus,
        IntegrationConfig,
        RunRecord,
        Schedule,
        SyncProgress,
        SyncRequest,
        SyncResult,
        Voucher,
        VoucherLine,
        WarmUp,
    )
}
"""Every versioned message type name and its model."""

__all__ = [
    "MESSAGE_TYPES",
    "Alert",
    "AlertKind",
    "Amount",
    "AnalysisDimension",
    "BackfillReply",
    "BackfillRequest",
    "CredentialRequest",
    "CredentialResponse",
    "ErrorClass",
    "ErrorInfo",
    "FiredPeriod",
    "HealthConfig",
    "HealthMode",
    "HealthState",
    "HealthStatus",
    "Instant",
    "IntegrationConfig",
    "Message",
    "PeriodKind",
    "RequestOrigin",
    "RunRecord",
    "RunState",
    "Schedule",
    "SyncProgress",
    "SyncRequest",
    "SyncResult",
    "SyncStatus",
    "Voucher",
    "VoucherLine",
    "WarmUp",
    "new_request_id",
    "utc_now",
]
