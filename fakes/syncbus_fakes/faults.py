"""The fault framework every vendor fake shares: stages, the fault base, the board, the hold.

A fake defines its own family of faults (what each one answers is the vendor's business):

    class XledgerFault(Fault):
        registry: ClassVar[dict[str, type[Fault]]] = {}     # the family's own registry

    class Latency(XledgerFault):
        name: ClassVar[str] = "latency"
        stage: ClassVar[Stage] = Stage.AUTHENTICATED
        seconds: float
        async def act(self, ctx): ...

and one `FaultBoard(XledgerFault.registry)`, which `POST /_fake/faults` configures
(`syncbus_fakes.control.fault_routes`) and the request pipeline runs at each `Stage`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from .server import connection_control


class Stage(Enum):
    ARRIVAL = "arrival"
    """Before auth (the gateway)."""
    AUTHENTICATED = "authenticated"
    """After auth and the rate limits, so the time counts as in flight."""
    BEFORE_EXECUTE = "before_execute"
    """Before the request is run."""
    AFTER_COMMIT = "after_commit"
    """After the request changed the ledger."""


@dataclass
class FaultContext:
    """What a fault may look at."""

    request: Request
    operation: str
    idle_seconds: float | None
    """Seconds since the previous API request; None for the first one."""
    wrote: bool = False
    """At AFTER_COMMIT: the request changed something."""
    posted: bool = False
    """At AFTER_COMMIT: the request posted to the ledger."""


class Fault(BaseModel):
    """A fault: its parameters are the model's fields; `name` and `stage` say what and where.

    A subclass with a `name` is registered in the nearest `registry` up its classes, which is
    its fake's family (so two fakes may both have a `latency`).
    """

    model_config = ConfigDict(extra="forbid")

    name: ClassVar[str]
    stage: ClassVar[Stage]
    registry: ClassVar[dict[str, type[Fault]]]

    count: int | None = Field(default=None, ge=1, description="Requests to hit; null = all.")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.registry[cls.name] = cls

    def applies(self, ctx: FaultContext) -> bool:  # noqa: ARG002 - the default hits every request
        return True

    async def act(self, ctx: FaultContext) -> Response | None:
        """Do the fault; return a response to answer with instead of the fake's own."""
        raise NotImplementedError


async def hold(ctx: FaultContext, seconds: float) -> bool:
    """Wait `seconds`, or less if the client goes away; True if it went away."""
    control = connection_control(ctx.request.scope)
    if control is None:
        await asyncio.sleep(seconds)
        return False
    return await control.wait_disconnected(seconds)


class LatencyFault(Fault):
    """Every request it hits takes `seconds` longer (a fake names it: `latency`)."""

    stage: ClassVar[Stage] = Stage.AUTHENTICATED

    seconds: float = Field(ge=0)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        await asyncio.sleep(self.seconds)
        return None


class ColdStartFault(Fault):
    """The first request after `idle_seconds` without any (or the very first) waits longer."""

    stage: ClassVar[Stage] = Stage.AUTHENTICATED

    idle_seconds: float = Field(default=300.0, ge=0)
    extra_seconds: float = Field(default=2.0, ge=0)

    def applies(self, ctx: FaultContext) -> bool:
        idle = ctx.idle_seconds is None or ctx.idle_seconds >= self.idle_seconds
        return idle and super().applies(ctx)

    async def act(self, ctx: FaultContext) -> Response | None:  # noqa: ARG002
        await asyncio.sleep(self.extra_seconds)
        return None


class FaultConfigError(ValueError):
    pass


class FaultBoard:
    """The faults switched on now, and how often each has hit."""

    def __init__(self, registry: Mapping[str, type[Fault]]) -> None:
        self._registry = registry
        self._active: dict[str, Fault] = {}
        self.hits: dict[str, int] = {}

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Install (`{name: params}`) or clear (`{name: null}`) faults; all or nothing."""
        staged = dict(self._active)
        for name, params in changes.items():
            kind = self._registry.get(name)
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
