"""One fake Business Central tenant: the token endpoint and the path of an API request.

Token endpoint `POST /{tenant}/oauth2/v2.0/token` (form body, client credentials):

    unknown tenant                  400 invalid_request    AADSTS90002
    grant_type not client_credentials  400 unsupported_grant_type  AADSTS70003
    no client_id                    400 invalid_request    AADSTS900144
    unknown client_id               400 unauthorized_client AADSTS700016
    missing or wrong client_secret  400 invalid_client     AADSTS7000215
    scope not `<resource>/.default` of a known resource   400 invalid_scope  AADSTS70011
    otherwise                       200 {"token_type": "Bearer", "expires_in", "ext_expires_in",
                                         "access_token"}   (no refresh token: ask again)

An API request under `/v2.0/{tenant}/{environment}/api/v2.0/`:

    1. count it (stats by operation)                       every API request
    2. faults at ARRIVAL                                    http_error (the gateway answers)
    3. auth                                                 401 JSON, or XML for another audience
    4. unknown environment                                  404
    5. sliding window (per principal)                       429 Application_TooManyRequests
    6. queue: 5 at once, 95 waiting (per principal)         429 when full; 503 after the timeout
    7. faults at AUTHENTICATED                              cold_start, latency, too_many_requests
    8. faults at BEFORE_EXECUTE                             stall
    9. run it (`api.py`), or the operations of a `$batch`
   10. faults at AFTER_COMMIT (only when it changed something)  drop/stall_after_commit
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncbus_shared.logs import get_logger

from .api import Api, ApiRequest, ApiResult, operation_label
from .auth import ClientBook, Principal, TokenIssuer, TokenProblem
from .errors import (
    AUTHENTICATION_INVALID_CREDENTIALS,
    INVALID_REQUEST_BODY,
    RESOURCE_NOT_FOUND,
    SERVICE_UNAVAILABLE,
    TOO_MANY_REQUESTS,
    ExactJSONResponse,
    entra_error,
    loads,
    odata_error_response,
    odata_response,
    wrong_audience_response,
)
from .faults import Fault, FaultBoard, FaultConfigError, FaultContext, Stage
from .limits import Admission, RequestQueue, SlidingWindow
from .settings import FULL_ACCESS_ROLE, BusinessCentralFakeSettings
from .state import Stats, Store

log = get_logger()

_AUTH_MESSAGES = {
    TokenProblem.MISSING: "The request has no Authorization header with a bearer token.",
    TokenProblem.MALFORMED: "The server has rejected the client credentials.",
    TokenProblem.WRONG_TENANT: "The access token was issued for another tenant.",
    TokenProblem.EXPIRED: "The access token has expired.",
    TokenProblem.REVOKED: "The server has rejected the client credentials.",
    TokenProblem.NO_ROLES: "The application has no permission to use the API "
    "(the token carries no roles).",
}


class _RateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int = Field(ge=1)
    window_seconds: float = Field(gt=0)


class _ConcurrencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrent: int = Field(ge=1)
    max_queued: int = Field(default=95, ge=0)
    queue_timeout_seconds: float | None = Field(default=None, gt=0)


class _TokenLifetimeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: int = Field(ge=1)


class _RetryAfterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(ge=0)


_LIMIT_MODELS: dict[str, type[BaseModel]] = {
    "rate_limit": _RateParams,
    "concurrency_limit": _ConcurrencyParams,
    "token_lifetime": _TokenLifetimeParams,
    "retry_after": _RetryAfterParams,
}


def _limit_params(key: str, value: Any) -> BaseModel | None:
    if value is None:
        return None
    try:
        return _LIMIT_MODELS[key].model_validate(value)
    except ValidationError as exc:
        problem = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in (key, *problem["loc"]))
        raise FaultConfigError(f"{where}: {problem['msg']}") from None


class BusinessCentralFake:
    """The state and behaviour of one fake tenant."""

    def __init__(self, settings: BusinessCentralFakeSettings) -> None:
        self.settings = settings
        self.clients = ClientBook()
        for client_id, secret in settings.client_pairs():
            self.clients.register(client_id, secret, (FULL_ACCESS_ROLE,))
        self.issuer = TokenIssuer(
            settings.tenant_id, settings.audience, settings.token_lifetime_seconds
        )
        self.store = Store(
            settings.tenant_id,
            settings.environments,
            settings.companies,
            settings.first_entry_number,
        )
        self.api = Api(
            self.store,
            max_batch_operations=lambda: self.settings.max_batch_operations,
            max_page_size=lambda: self.settings.max_page_size,
            description_max_length=lambda: self.settings.description_max_length,
            accounts=lambda: self.accounts,
        )
        self.faults = FaultBoard()
        self.window = SlidingWindow(
            settings.rate_limit_requests, settings.rate_limit_window_seconds
        )
        self.queue = RequestQueue(
            settings.max_concurrent, settings.max_queued, settings.queue_timeout_seconds
        )
        self.reset()

    # ---- control -------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start-up state. Clients registered since are kept; so are tokens."""
        self.store.clear()
        self.stats = Stats()
        self.faults.clear()
        self.issuer.clear_cutoffs()
        for key in _LIMIT_MODELS:
            self._apply_limit(key, None)
        self.window.clear()
        self.queue.clear()
        accounts = self.settings.accounts
        self.accounts = frozenset(accounts) if accounts is not None else None
        self._last_request_at: float | None = None
        self._too_many = 0

    def configure(self, changes: dict[str, Any]) -> None:
        """Faults and limits from `POST /_fake/faults`; all or nothing; null = start-up value."""
        limits = {key: _limit_params(key, changes[key]) for key in _LIMIT_MODELS if key in changes}
        self.faults.configure({k: v for k, v in changes.items() if k not in _LIMIT_MODELS})
        for key, params in limits.items():
            self._apply_limit(key, params)

    def _apply_limit(self, key: str, params: BaseModel | None) -> None:
        s = self.settings
        if key == "rate_limit":
            if isinstance(params, _RateParams):
                self.window.requests, self.window.window_seconds = (
                    params.requests,
                    params.window_seconds,
                )
            else:
                self.window.requests = s.rate_limit_requests
                self.window.window_seconds = s.rate_limit_window_seconds
            self.window.clear()
        elif key == "concurrency_limit":
            if isinstance(params, _ConcurrencyParams):
                self.queue.max_concurrent = params.max_concurrent
                self.queue.max_queued = params.max_queued
                self.queue.timeout_seconds = params.queue_timeout_seconds or s.queue_timeout_seconds
            else:
                self.queue.max_concurrent = s.max_concurrent
                self.queue.max_queued = s.max_queued
                self.queue.timeout_seconds = s.queue_timeout_seconds
        elif key == "token_lifetime":
            self.issuer.lifetime_seconds = (
                params.seconds
                if isinstance(params, _TokenLifetimeParams)
                else s.token_lifetime_seconds
            )
        else:
            self.retry_after_every = (
                params.every if isinstance(params, _RetryAfterParams) else s.retry_after_every
            )

    def describe(self) -> dict[str, Any]:
        return {
            "faults": self.faults.describe(),
            "fault_hits": dict(self.faults.hits),
            "limits": {
                "rate_limit": {
                    "requests": self.window.requests,
                    "window_seconds": self.window.window_seconds,
                },
                "concurrency_limit": {
                    "max_concurrent": self.queue.max_concurrent,
                    "max_queued": self.queue.max_queued,
                    "queue_timeout_seconds": self.queue.timeout_seconds,
                },
                "token_lifetime": {"seconds": self.issuer.lifetime_seconds},
                "retry_after": {"every": self.retry_after_every},
            },
            "known": sorted([*Fault.registry, *_LIMIT_MODELS]),
        }

    def stats_json(self) -> dict[str, Any]:
        queue = self.queue.stats
        return {
            **self.stats.as_json(),
            "tokens_issued": self.issuer.issued,
            "max_running": queue.max_running,
            "max_waiting": queue.max_waiting,
            "queued": queue.queued,
            "queue_full": queue.full,
            "queue_timed_out": queue.timed_out,
            "fault_hits": dict(self.faults.hits),
            "posts": self.store.posts,
            "entries": sum(len(c.entries) for c in self.store.companies.values()),
        }

    # ---- the token endpoint --------------------------------------------------------------

    async def token(self, request: Request, tenant: str) -> Response:
        self.stats.token_requests += 1
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        answer = self._token_answer(tenant, form)
        if answer.status_code != 200:
            try:
                code = str(loads(bytes(answer.body)).get("error"))
            except (ValueError, AttributeError):
                code = "unknown"
            self.stats.token_errors[code] += 1
        return answer

    def _token_answer(self, tenant: str, form: dict[str, str]) -> Response:
        if tenant != self.settings.tenant_id:
            return entra_error(
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
                "ID and are signing into the correct cloud.",
            )
        if form.get("grant_type") != "client_credentials":
            return entra_error(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form.get('grant_type', '')}'.",
            )
        client_id = form.get("client_id")
        if not client_id:
            return entra_error(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        client = self.clients.get(client_id)
        if client is None:
            return entra_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'.",
            )
        secret = form.get("client_secret")
        if not secret or not self.clients.secret_matches(client, secret):
            return entra_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        scope = form.get("scope", "")
        audiences = {self.settings.audience, *self.settings.other_audiences}
        resource = scope.removesuffix("/.default")
        if not scope.endswith("/.default") or resource.rstrip("/") not in audiences:
            return entra_error(
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided "
                f"value for the input parameter 'scope' ('{scope}') is not valid: the client "
                "credentials flow takes `<resource>/.default`.",
            )
        token, expires_in = self.issuer.issue(client, resource.rstrip("/"))
        self.stats.tokens_issued += 1
        log.info("fake.business_central.token_issued", client_id=client_id, expires_in=expires_in)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": token,
            }
        )

    # ---- the API -------------------------------------------------------------------------

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        self.stats.errors_by_code[code] += 1
        return odata_error_response(status, code, message, headers)

    async def handle(self, request: Request, tenant: str, environment: str, path: str) -> Response:
        now = time.monotonic()
        idle = None if self._last_request_at is None else now - self._last_request_at
        self._last_request_at = now
        operation = operation_label(request.method, path)
        self.stats.requests_total += 1
        self.stats.by_operation[operation] += 1
        ctx = FaultContext(request=request, operation=operation, idle_seconds=idle)
        response = await self._handle(request, ctx, tenant, environment, path)
        self.stats.by_status[str(response.status_code)] += 1
        return response

    async def _handle(
        self, request: Request, ctx: FaultContext, tenant: str, environment: str, path: str
    ) -> Response:
        if (answer := await self.faults.run(Stage.ARRIVAL, ctx)) is not None:
            return answer
        principal = self.issuer.check(request.headers.get("authorization"), tenant)
        if isinstance(principal, TokenProblem):
            self.stats.auth_failures += 1
            self.stats.auth_failures_by_reason[principal.value] += 1
            if principal is TokenProblem.WRONG_AUDIENCE:
                return wrong_audience_response()
            return self._error(
                401,
                AUTHENTICATION_INVALID_CREDENTIALS,
                _AUTH_MESSAGES[principal],
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if tenant != self.settings.tenant_id or environment not in self.store.environments:
            return self._error(
                404,
                RESOURCE_NOT_FOUND,
                f"The environment '{environment}' does not exist in tenant '{tenant}'.",
            )
        if not self.window.admit(principal.key):
            return self._too_many_requests(
                principal,
                f"Too many requests reached. Actual ({self.window.requests + 1}). "
                f"Maximum ({self.window.requests}).",
            )
        admission = await self.queue.enter(principal.key)
        if admission is Admission.FULL:
            capacity = self.queue.capacity
            return self._too_many_requests(
                principal,
                f"Too many requests reached. Actual ({capacity + 1}). Maximum ({capacity}).",
            )
        if admission is Admission.TIMED_OUT:
            return self._error(
                503,
                SERVICE_UNAVAILABLE,
                "The request waited too long in the queue of this service principal.",
            )
        try:
            return await self._admitted(request, ctx, environment, path)
        finally:
            self.queue.leave(principal.key)

    def _too_many_requests(self, principal: Principal, message: str) -> Response:
        self.stats.rate_limited += 1
        self._too_many += 1
        every = self.retry_after_every
        headers = None
        if every and self._too_many % every == 0:
            headers = {"Retry-After": str(max(self.window.seconds_until_free(principal.key), 1))}
        return self._error(429, TOO_MANY_REQUESTS, message, headers)

    async def _admitted(
        self, request: Request, ctx: FaultContext, environment: str, path: str
    ) -> Response:
        if (answer := await self.faults.run(Stage.AUTHENTICATED, ctx)) is not None:
            if answer.status_code == 429:
                self.stats.rate_limited += 1
            return answer
        if (answer := await self.faults.run(Stage.BEFORE_EXECUTE, ctx)) is not None:
            return answer
        raw = await request.body()
        body: Any = None
        if raw.strip():
            try:
                body = loads(raw)
            except (ValueError, UnicodeDecodeError):
                return self._error(400, INVALID_REQUEST_BODY, "The request body is not JSON.")
        root = str(request.url).split("/api/v2.0", 1)[0] + "/api/v2.0"
        api_request = ApiRequest(
            method=request.method,
            path=path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            root_url=root,
            environment=environment,
        )
        if ctx.operation == "$batch":
            if request.method != "POST":
                return self._error(405, "BadRequest_MethodNotAllowed", "Use POST for $batch.")
            snapshot = request.headers.get("isolation", "").strip().lower() == "snapshot"
            result, operations = self.api.batch(api_request, snapshot=snapshot)
            self.stats.batch_operations += operations
        else:
            result = self.api.handle(api_request)
        if result.error_code is not None:
            self.stats.errors_by_code[result.error_code] += 1
        ctx.wrote, ctx.posted = result.wrote, result.posted
        if result.posted:
            log.info(
                "fake.business_central.posted", operation=ctx.operation, posts=self.store.posts
            )
        if result.wrote and (answer := await self.faults.run(Stage.AFTER_COMMIT, ctx)) is not None:
            return answer
        return _render(result)


def _render(result: ApiResult) -> Response:
    if result.status == 204:
        return Response(status_code=204, headers={"OData-Version": "4.0", **result.headers})
    if result.media_type is not None:
        return Response(str(result.body), status_code=result.status, media_type=result.media_type)
    response: ExactJSONResponse = odata_response(result.status, result.body, result.headers)
    return response
