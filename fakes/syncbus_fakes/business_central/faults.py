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

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from syncbus_fakes.server import DropConnection, connection_control

from .errors import TOO_MANY_REQUESTS, odata_error_response


class Stage(Enum):
    ARRIVAL = "arrival"
    AUTHENTICATED = "authenticated"
    BEFORE_EXECUTE = "before_execute"
    AFTER_COMMIT = "after_commit"


@dataclass
class FaultContext:
    request: Request
    operation: str
    idle_seconds: float | None
    """Seconds since the previous API request; None for the first one."""
    wrote: bool = False
    posted: bool = False


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClassVar[str]
    stage: ClassVar[Stage]
    registry: ClassVar[dict[str, type[Fault]]] = {}

    count: int | None = Field(default=None, ge=1, description="Requests to hit; null = all.")
    operation: str | None = Field(default=None, description="Only requests with this label.")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Fault.registry[cls.name] = cls

    def applies(self, ctx: FaultContext) -> bool:
        return self.operation is None or self.operation == ctx.operation

    async def act(self, ctx: FaultContext) -> Response | None:
        raise NotImplementedError


async def _hold(ctx: FaultContext, seconds: float) -> None:
    control = connection_control(ctx.request.scope)
    if control is None:
        await asyncio.sleep(seconds)
        return
    await control.wait_disconnected(seconds)


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
        idle = ctx.idle_seconds is None or ctx.idle_seconds >= self.idle_seconds
        return idle and super().applies(ctx)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        await asyncio.sleep(self.extra_seconds)
        return None


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
        await _hold(ctx, self.seconds)
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
        await _hold(ctx, self.seconds)
        return _gateway_timeout()


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
                raise FaultConfigError(f"unknown fault {name!r}")
            if params is None:
                staged.pop(name, None)
                continue
            if not isinstance(params, dict):
                raise FaultConfigError(f"fault {name!r} takes an object of parameters or null")
            try:
                staged[name] = kind.model_validate(params)
            except ValidationError as exc:
                problem = exc.errors(include_input=False)[0]
                where = ".".join(str(part) for part in problem["loc"]) or "parameters"
                raise FaultConfigError(f"fault {name!r}: {where}: {problem['msg']}") from None
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
