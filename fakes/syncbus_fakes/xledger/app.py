"""The Starlette app of the Xledger fake: `POST /graphql` and the control API under `/_fake/`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncbus_fakes.server import ConnectionControlApp

from .control import control_routes
from .service import XledgerFake
from .settings import XledgerFakeSettings


def create_app(settings: XledgerFakeSettings | None = None) -> ConnectionControlApp:
    """A fresh fake; its state is `app.state.xledger` (an `XledgerFake`)."""
    fake = XledgerFake(settings if settings is not None else XledgerFakeSettings())

    async def graphql(request: Request) -> Response:
        return await fake.graphql(request)

    app = ConnectionControlApp(
        routes=[Route("/graphql", graphql, methods=["POST"]), *control_routes(fake)]
    )
    app.state.xledger = fake
    return app
