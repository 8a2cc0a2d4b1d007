"""syncbus_client: use syncbus from a Python application, over NATS.

    from syncbus_client import SyncbusClient

    async with SyncbusClient.connect("nats://127.0.0.1:4222") as client:
        await client.stage_vouchers("toyen-xledger", vouchers)
        receipt = await client.request_sync("toyen-xledger", period_id="2017-01")
        result = await client.await_result(receipt, timeout=60)
        async with client.results("toyen-xledger", durable="billing") as feed:
            async for result in feed:
                ...

The README's "Using syncbus from an application" runs a complete example. The message models
are those of `syncbus_shared.contracts` (v1), re-exported here.
"""

from syncbus_shared.contracts import (
    AnalysisDimension,
    ErrorClass,
    ErrorInfo,
    SyncProgress,
    SyncRequest,
    SyncResult,
    SyncScope,
    SyncStatus,
    Voucher,
    VoucherLine,
)

from ._client import DEFAULT_URL, RequestReceipt, StageReport, SyncbusClient
from ._errors import (
    ConnectError,
    DurableConflictError,
    InvalidRequestError,
    Problem,
    PublishError,
    ResultTimeoutError,
    SyncbusError,
)
from ._feeds import ProgressFeed, ResultFeed, Start

__all__ = [
    "DEFAULT_URL",
    "AnalysisDimension",
    "ConnectError",
    "DurableConflictError",
    "ErrorClass",
    "ErrorInfo",
    "InvalidRequestError",
    "Problem",
    "ProgressFeed",
    "PublishError",
    "RequestReceipt",
    "ResultFeed",
    "ResultTimeoutError",
    "StageReport",
    "Start",
    "SyncProgress",
    "SyncRequest",
    "SyncResult",
    "SyncScope",
    "SyncStatus",
    "SyncbusClient",
    "SyncbusError",
    "Voucher",
    "VoucherLine",
]
