"""What the fakes' control APIs (`/_fake/...`) share: JSON body checks and the fault routes."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import FaultConfigError


class Configurable(Protocol):
    def describe(self) -> dict[str, Any]:
        """`{"faults", "fault_hits", "limits", "known"}`."""
        ...

    def configure(self, changes: dict[str, Any]) -> None:
        """Faults and limits, all or nothing; raises `FaultConfigError`."""
        ...


def bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


async def json_object(request: Request) -> dict[str, Any] | Response:
    """The body as a JSON object, or the 400 that says it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return bad("the body must be a JSON object")
    if not isinstance(body, dict):
        return bad("the body must be a JSON object")
    return body


def fault_routes(fake: Configurable) -> list[Route]:
    """`GET /_fake/faults` (what is on) and `POST /_fake/faults` (switch faults and limits)."""

    async def get_faults(_: Request) -> Response:
        return JSONResponse(fake.describe())

    async def set_faults(request: Request) -> Response:
        body = await json_object(request)
        if isinstance(body, Response):
            return body
        try:
            fake.configure(body)
        except FaultConfigError as exc:
            return bad(f"{exc} (known: {', '.join(fake.describe()['known'])})")
        return JSONResponse(fake.describe())

    return [
        Route("/_fake/faults", get_faults, methods=["GET"]),
        Route("/_fake/faults", set_faults, methods=["POST"]),
    ]
