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

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from syncbus_fakes.server import DropConnection, connection_control

from .errors import CREDITS_MESSAGE, INSUFFICIENT_CREDITS, TIMEOUT_MESSAGE, error_body
from .limits import xledger_local


class Stage(Enum):
    ARRIVAL = "arrival"
    AUTHENTICATED = "authenticated"
    BEFORE_EXECUTE = "before_execute"
    AFTER_COMMIT = "after_commit"


@dataclass
class FaultContext:
    """What a fault may look at."""

    request: Request
    operation: str
    idle_seconds: float | None
    """Seconds since the previous GraphQL request; None for the first one."""


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClassVar[str]
    stage: ClassVar[Stage]
    registry: ClassVar[dict[str, type[Fault]]] = {}

    count: int | None = Field(default=None, ge=1, description="Requests to hit; null = all.")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Fault.registry[cls.name] = cls

    def applies(self, ctx: FaultContext) -> bool:  # noqa: ARG002 - the default hits every request
        return True

    async def act(self, ctx: FaultContext) -> Response | None:
        """Do the fault; return a response to answer with instead of the fake's own."""
        raise NotImplementedError


async def _hold(ctx: FaultContext, seconds: float) -> bool:
    """Wait `seconds`, or less if the client goes away; True if it went away."""
    control = connection_control(ctx.request.scope)
    if control is None:
        await asyncio.sleep(seconds)
        return False
    return await control.wait_disconnected(seconds)


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


class Latency(Fault):
    name: ClassVar[str] = "latency"
    stage: ClassVar[Stage] = Stage.AUTHENTICATED

    seconds: float = Field(ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        await asyncio.sleep(self.seconds)
        return None


class ColdStart(Fault):
    name: ClassVar[str] = "cold_start"
    stage: ClassVar[Stage] = Stage.AUTHENTICATED

    idle_seconds: float = Field(default=300.0, ge=0)
    extra_seconds: float = Field(default=2.0, ge=0)

    def applies(self, ctx: FaultContext) -> bool:
        return ctx.idle_seconds is None or ctx.idle_seconds >= self.idle_seconds

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        await asyncio.sleep(self.extra_seconds)
        return None


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
        await _hold(ctx, self.seconds)
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
        await _hold(ctx, self.seconds)
        return _timed_out()


class FaultConfigError(ValueError):
    pass


class FaultBoard:
    """The faults switched on now, and how often each has hit."""

    def __init__(self) -> None:
        self._active: dict[str, Fault] = {}
        self.hits: dict[str, int] = {}

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Install (`{name: params}`) or clear (`{name: null}`) faults; all or nothing."""
        staged = dict(self._active)
        for name, params in changes.items():
            kind = Fault.registry.get(name)
            if kind is None:
                known = ", ".join(sorted(Fault.registry))
                raise FaultConfigError(f"unknown fault {name!r} (known: {known})")
            if params is None:
                staged.pop(name, None)
                continue
            if not isinstance(params, dict):
                raise FaultConfigError(f"fault {name!r} takes an object of parameters or null")
            try:
                staged[name] = kind.model_validate(params)
            except ValidationError as exc:
                raise FaultConfigError(f"fault {name!r}: {_first_problem(exc)}") from None
        self._active = staged

    def clear(self) -> None:
        self._active.clear()
        self.hits.clear()

    def describe(self) -> dict[str, Any]:
        return {name: fault.model_dump() for name, fault in self._active.items()}

    async def run(self, stage: Stage, ctx: FaultContext) -> Response | None:
        for name, fault in list(self._active.items()):
            if fault.stage is not stage or not fault.applies(ctx):
                continue
            self.hits[name] = self.hits.get(name, 0) + 1
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._active.pop(name, None)
            response = await fault.act(ctx)
            if response is not None:
                return response
        return None


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors(include_input=False)[0]
    where = ".".join(str(part) for part in problem["loc"]) or "parameters"
    return f"{where}: {problem['msg']}"
