"""The Starlette app of the Business Central fake: Entra's token endpoint, the API root, and
the control API under `/_fake/`.

    POST /{tenant}/oauth2/v2.0/token                         client credentials (form body)
    GET|POST|PATCH|DELETE /v2.0/{tenant}/{environment}/api/v2.0/{path}   the API (`api.py`)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncbus_fakes.server import ConnectionControlApp

from .control import control_routes
from .service import BusinessCentralFake
from .settings import BusinessCentralFakeSettings


def create_app(settings: BusinessCentralFakeSettings | None = None) -> ConnectionControlApp:
    """A fresh fake; its state is `app.state.business_central` (a `BusinessCentralFake`)."""
    fake = BusinessCentralFake(settings if settings is not None else BusinessCentralFakeSettings())

    async def token(request: Request) -> Response:
        return await fake.token(request, request.path_params["tenant"])

    async def api(request: Request) -> Response:
        params = request.path_params
        return await fake.handle(request, params["tenant"], params["environment"], params["path"])

    app = ConnectionControlApp(
        routes=[
            *control_routes(fake),
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route(
                "/v2.0/{tenant}/{environment}/api/v2.0/{path:path}",
                api,
                methods=["GET", "POST", "PATCH", "DELETE"],
            ),
        ]
    )
    app.state.business_central = fake
    return app
