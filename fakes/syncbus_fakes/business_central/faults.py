"""Faults a test or the demo switches on through `POST /_fake/faults` (like the Xledger fake's).

Each fault is a small pydantic model registered under its name, acting at one stage of an API
request (the token endpoint has no faults; revoke or expire tokens through the control API):

    ARRIVAL        before auth (the gateway): http_error
    AUTHENTICATED  after auth, the rate window and the queue, so the time counts as in flight:
                   cold_start, latency, too_many_requests
    BEFORE_EXECUTE before the request is run: stall
    AFTER_COMMIT   after the request changed something (`on`: "post" = a journal posted, also
                   inside a $batch; "write" = any change): drop_after_commit, stall_after_commit

`count` is how many requests a fault hits before it switches itself off (`null`: until it is
cleared). `operation` limits a fault to one kind of request, by the labels `/_fake/stats`
shows under `by_operation` (`journals.post`, `$batch`, `companies.list`, ...).

    {"http_error": {"status": 503, "count": 2, "retry_after_seconds": 1}}
    {"latency": {"seconds": 0.2}}
    {"cold_start": {"idle_seconds": 60, "extra_seconds": 0.8}}
    {"too_many_requests": {"count": 1, "retry_after_seconds": null}}   429 without Retry-After
    {"stall": {"seconds": 3, "count": 1}}              hold, do nothing, then 504
    {"drop_after_commit": {"count": 1}}               post, then drop the connection
    {"stall_after_commit": {"seconds": 3, "count": 1}}  post, hold (or until the client gives
                                                      up), then 504 Gateway Timeout
    {"latency": null}                                 clears that fault
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from starlette.responses import PlainTextResponse, Response

from syncbus_fakes import faults as common
from syncbus_fakes.faults import FaultConfigError, FaultContext, Stage, hold
from syncbus_fakes.server import DropConnection

from .errors import TOO_MANY_REQUESTS, odata_error_response

__all__ = ["Fault", "FaultBoard", "FaultConfigError", "FaultContext", "Stage"]


class Fault(common.Fault):
    """The Business Central fake's faults (their own registry), each limitable to an operation."""

    registry: ClassVar[dict[str, type[common.Fault]]] = {}

    operation: str | None = Field(default=None, description="Only requests with this label.")

    def applies(self, ctx: FaultContext) -> bool:
        return self.operation is None or self.operation == ctx.operation


class FaultBoard(common.FaultBoard):
    def __init__(self) -> None:
        super().__init__(Fault.registry)


def _gateway_timeout() -> Response:
    return PlainTextResponse("504 Gateway Timeout", 504)


class HttpError(Fault):
    name: ClassVar[str] = "http_error"
    stage: ClassVar[Stage] = Stage.ARRIVAL

    status: int = Field(default=503, ge=400, le=599)
    count: int | None = Field(default=1, ge=1)
    retry_after_seconds: int | None = Field(default=None, ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        headers = (
            {"Retry-After": str(self.retry_after_seconds)}
            if self.retry_after_seconds is not None
            else None
        )
        return PlainTextResponse(f"{self.status} (injected)", self.status, headers=headers)


class Latency(common.LatencyFault, Fault):
    name: ClassVar[str] = "latency"


class ColdStart(common.ColdStartFault, Fault):
    name: ClassVar[str] = "cold_start"


class TooManyRequests(Fault):
    name: ClassVar[str] = "too_many_requests"
    stage: ClassVar[Stage] = Stage.AUTHENTICATED

    count: int | None = Field(default=1, ge=1)
    retry_after_seconds: int | None = Field(default=None, ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        headers = (
            {"Retry-After": str(self.retry_after_seconds)}
            if self.retry_after_seconds is not None
            else None
        )
        return odata_error_response(
            429,
            TOO_MANY_REQUESTS,
            "Too many requests reached. Actual (101). Maximum (100).",
            headers,
        )


class Stall(Fault):
    name: ClassVar[str] = "stall"
    stage: ClassVar[Stage] = Stage.BEFORE_EXECUTE

    seconds: float = Field(default=30.0, ge=0)
    count: int | None = Field(default=1, ge=1)

    async def act(self, ctx: FaultContext) -> Response | None:
        await hold(ctx, self.seconds)
        return _gateway_timeout()


class _AfterCommit(Fault):
    stage: ClassVar[Stage] = Stage.AFTER_COMMIT

    on: Literal["post", "write"] = "post"
    count: int | None = Field(default=1, ge=1)

    def applies(self, ctx: FaultContext) -> bool:
        committed = ctx.posted if self.on == "post" else ctx.wrote
        return committed and super().applies(ctx)


class DropAfterCommit(_AfterCommit):
    name: ClassVar[str] = "drop_after_commit"

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        return DropConnection()


class StallAfterCommit(_AfterCommit):
    name: ClassVar[str] = "stall_after_commit"

    seconds: float = Field(default=30.0, ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:
        await hold(ctx, self.seconds)
        return _gateway_timeout()
