"""Faults a test or the demo switches on through `POST /_fake/faults`.

Each fault is a small pydantic model registered under its name. It acts at one stage of a
GraphQL request:

    ARRIVAL        before auth (the gateway): http_error
    AUTHENTICATED  after auth and the burst/concurrency limits, so the time counts as in
                   flight: cold_start, latency, insufficient_credits
    BEFORE_EXECUTE after credits are spent, before the query runs: stall
    AFTER_COMMIT   after addGLImportItems committed its postings: drop_after_commit,
                   stall_after_commit

`count` (where a fault has one) is how many requests it hits before it switches itself off;
`null` means until it is cleared. A fault "hits" a request when `applies` says so; it then acts
and may answer in place of the fake (a 5xx, an Xledger error, a dropped connection).

Adding a fault: subclass `Fault`, set `name` and `stage`, implement `act` (and `applies` when it
hits only some requests). The registry picks it up; the control API accepts it by name.

    {"http_error": {"status": 503, "count": 2}}             next 2 requests get HTTP 503
    {"latency": {"seconds": 0.2}}                          every request takes 0.2 s longer
    {"cold_start": {"idle_seconds": 60, "extra_seconds": 1.5}}
                                                           the first request after 60 s idle
                                                           (or the very first) waits 1.5 s more
    {"insufficient_credits": {"reset_in_seconds": 1200}}   INSUFFICIENT_CREDITS now, resetAt
                                                           1200 s from now, until cleared
    {"stall": {"seconds": 3, "count": 1}}                  hold 3 s, nothing done, then
                                                           "Your query timed out."
    {"drop_after_commit": {"count": 1}}                    commit, then drop the connection
    {"stall_after_commit": {"seconds": 3, "count": 1}}     commit, hold 3 s (or until the client
                                                           gives up), then "Your query timed out."
    {"latency": null}                                      clears that fault
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

from pydantic import Field
from starlette.responses import JSONResponse, PlainTextResponse, Response

from syncbus_fakes import faults as common
from syncbus_fakes.faults import FaultConfigError, FaultContext, Stage, hold
from syncbus_fakes.server import DropConnection

from .errors import CREDITS_MESSAGE, INSUFFICIENT_CREDITS, TIMEOUT_MESSAGE, error_body
from .limits import xledger_local

__all__ = ["Fault", "FaultBoard", "FaultConfigError", "FaultContext", "Stage"]


class Fault(common.Fault):
    """The Xledger fake's faults (their own registry)."""

    registry: ClassVar[dict[str, type[common.Fault]]] = {}


class FaultBoard(common.FaultBoard):
    def __init__(self) -> None:
        super().__init__(Fault.registry)


def _timed_out() -> Response:
    return JSONResponse(error_body(TIMEOUT_MESSAGE))


class HttpError(Fault):
    name: ClassVar[str] = "http_error"
    stage: ClassVar[Stage] = Stage.ARRIVAL

    status: int = Field(default=503, ge=500, le=599)
    count: int | None = Field(default=1, ge=1)
    retry_after_seconds: int | None = Field(default=None, ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        headers = (
            {"Retry-After": str(self.retry_after_seconds)}
            if self.retry_after_seconds is not None
            else None
        )
        return PlainTextResponse(
            f"{self.status} Service Unavailable (injected)", self.status, headers=headers
        )


class Latency(common.LatencyFault, Fault):
    name: ClassVar[str] = "latency"


class ColdStart(common.ColdStartFault, Fault):
    name: ClassVar[str] = "cold_start"


class InsufficientCredits(Fault):
    name: ClassVar[str] = "insufficient_credits"
    stage: ClassVar[Stage] = Stage.AUTHENTICATED

    reset_in_seconds: float = Field(default=1200.0, ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        reset = datetime.now(UTC) + timedelta(seconds=self.reset_in_seconds)
        return JSONResponse(
            error_body(
                CREDITS_MESSAGE,
                code=INSUFFICIENT_CREDITS,
                extensions={"resetAt": xledger_local(reset)},
            )
        )


class Stall(Fault):
    name: ClassVar[str] = "stall"
    stage: ClassVar[Stage] = Stage.BEFORE_EXECUTE

    seconds: float = Field(default=30.0, ge=0)
    count: int | None = Field(default=1, ge=1)

    async def act(self, ctx: FaultContext) -> Response | None:
        await hold(ctx, self.seconds)
        return _timed_out()


class DropAfterCommit(Fault):
    name: ClassVar[str] = "drop_after_commit"
    stage: ClassVar[Stage] = Stage.AFTER_COMMIT

    count: int | None = Field(default=1, ge=1)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        return DropConnection()


class StallAfterCommit(Fault):
    name: ClassVar[str] = "stall_after_commit"
    stage: ClassVar[Stage] = Stage.AFTER_COMMIT

    seconds: float = Field(default=30.0, ge=0)
    count: int | None = Field(default=1, ge=1)

    async def act(self, ctx: FaultContext) -> Response | None:
        await hold(ctx, self.seconds)
        return _timed_out()
