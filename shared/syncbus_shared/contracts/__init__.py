"""Contracts v1: every message on the bus is one of these models.

Each carries a versioned `type` (`syncbus.<name>.v1`) and evolves only by adding optional
fields. Golden examples of each live in `examples/` and are validated by the tests.
"""

from ._base import Amount, Instant, Message, utc_now
from .alerts import Alert, AlertKind
from .credentials import CredentialRequest, CredentialResponse
from .health import (
    HealthState,
    HealthStatus,
    ObservedOutcome,
    ProbeBudgetRecord,
    VendorHealthMode,
)
from .integration import (
    HealthConfig,
    HealthMode,
    HealthThresholds,
    IntegrationConfig,
    PeriodKind,
    ProbeBudgetConfig,
    Schedule,
    ScheduleMode,
)
from .runs import RunRecord, RunState, VoucherMark, VoucherState
from .scheduler import (
    BackfillReply,
    BackfillRequest,
    FiredPeriod,
    ScheduleRejected,
    SchedulerStatus,
    TriggerReply,
    TriggerRequest,
)
from .sync import (
    ErrorClass,
    ErrorInfo,
    RequestOrigin,
    SyncProgress,
    SyncRequest,
    SyncResult,
    SyncScope,
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
        HealthThresholds,
        IntegrationConfig,
        ObservedOutcome,
        ProbeBudgetConfig,
        ProbeBudgetRecord,
        RunRecord,
        Schedule,
        ScheduleRejected,
        SchedulerStatus,
        SyncProgress,
        SyncRequest,
        SyncResult,
        TriggerReply,
        TriggerRequest,
        VendorHealthMode,
        Voucher,
        VoucherLine,
        VoucherMark,
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
    "HealthThresholds",
    "Instant",
    "IntegrationConfig",
    "Message",
    "ObservedOutcome",
    "PeriodKind",
    "ProbeBudgetConfig",
    "ProbeBudgetRecord",
    "RequestOrigin",
    "RunRecord",
    "RunState",
    "Schedule",
    "ScheduleMode",
    "ScheduleRejected",
    "SchedulerStatus",
    "SyncProgress",
    "SyncRequest",
    "SyncResult",
    "SyncScope",
    "SyncStatus",
    "TriggerReply",
    "TriggerRequest",
    "VendorHealthMode",
    "Voucher",
    "VoucherLine",
    "VoucherMark",
    "VoucherState",
    "WarmUp",
    "new_request_id",
    "utc_now",
]
