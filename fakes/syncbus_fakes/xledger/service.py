"""One fake Xledger: the path of a GraphQL request through auth, limits, faults and the schema.

    1. count it (stats by operation)                 every GraphQL request
    2. faults at ARRIVAL                              http_error (the gateway answers)
    3. auth                                           bad format / unknown token -> error
    4. burst window, concurrency gate (per token)     -> BURST / CONCURRENCY error
    5. faults at AUTHENTICATED                        cold_start, latency, insufficient_credits
    6. spend one credit                               none left -> INSUFFICIENT_CREDITS
    7. faults at BEFORE_EXECUTE                       stall
    8. parse, validate, execute                       GraphQL errors, or data
    9. faults at AFTER_COMMIT (only when it posted)   drop_after_commit, stall_after_commit

Every answer from step 3 on is HTTP 200 with an `errors` array (Xledger's way), except a body
that is not a GraphQL request at all (not JSON, no `query` string): that is HTTP 400.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationType,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncbus_shared.logs import get_logger

from .auth import AuthFailure, TokenBook
from .errors import (
    BAD_FORMAT_MESSAGE,
    BURST_MESSAGE,
    BURST_RATE_LIMIT_REACHED,
    CONCURRENCY_LIMIT_REACHED,
    CONCURRENCY_MESSAGE,
    CREDITS_MESSAGE,
    INSUFFICIENT_CREDITS,
    NOT_AUTHENTICATED_MESSAGE,
    error_body,
    format_graphql_error,
)
from .faults import Fault, FaultBoard, FaultConfigError, FaultContext, Stage
from .limits import BurstLimit, ConcurrencyGate, CreditMeter, SlidingWindow, xledger_local
from .schema import ExecutionEnv, build_xledger_schema
from .settings import XledgerFakeSettings
from .state import Ledger, Stats

log = get_logger()


class _BurstParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int = Field(ge=1)
    window_seconds: float = Field(gt=0)


class _ConcurrencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max: int = Field(ge=1)


class _CreditParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(ge=0)
    used: int | None = Field(default=None, ge=0)


_LIMIT_MODELS: dict[str, type[BaseModel]] = {
    "burst_limit": _BurstParams,
    "concurrency_limit": _ConcurrencyParams,
    "monthly_credits": _CreditParams,
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


@dataclass
class _Request:
    """A request body that parsed as JSON with a `query` string."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    document: DocumentNode | None
    syntax_error: GraphQLError | None


def _read_request(raw: bytes) -> _Request | str:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return 'The request body must be JSON: {"query": ..., "variables": {...}}.'
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "The request body must be a JSON object with a `query` string."
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return "`variables` must be a JSON object."
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        return "`operationName` must be a string."
    try:
        document: DocumentNode | None = parse(payload["query"])
        syntax_error = None
    except GraphQLError as exc:
        document, syntax_error = None, exc
    return _Request(payload["query"], variables, name, document, syntax_error)


def _operation_label(request: _Request | str) -> str:
    """The root fields a request asks for, e.g. `addGLImportItems` or `__typename`."""
    if isinstance(request, str) or request.document is None:
        return "<invalid>"
    operation = get_operation_ast(request.document, request.operation_name)
    if operation is None:
        return "<invalid>"
    names = [
        selection.name.value
        for selection in operation.selection_set.selections
        if isinstance(selection, FieldNode)
    ]
    return ",".join(names) or "<fragments>"


class XledgerFake:
    """The state and behaviour of one fake Xledger."""

    def __init__(self, settings: XledgerFakeSettings) -> None:
        self.settings = settings
        self.tokens = TokenBook(tuple(t.get_secret_value() for t in settings.tokens))
        self.schema = build_xledger_schema()
        self.ledger = Ledger(settings.first_db_id)
        self.faults = FaultBoard()
        self.burst = SlidingWindow(
            BurstLimit(settings.burst_requests, settings.burst_window_seconds)
        )
        self.concurrency = ConcurrencyGate(settings.max_concurrent)
        self.credits = CreditMeter(settings.monthly_credits)
        self.reset()

    # ---- control -------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start-up state. Tokens added since are kept."""
        self.ledger.clear()
        self.stats = Stats()
        self.faults.clear()
        self.burst.limit = BurstLimit(
            self.settings.burst_requests, self.settings.burst_window_seconds
        )
        self.burst.clear()
        self.concurrency.max_in_flight = self.settings.max_concurrent
        self.credits.monthly = self.settings.monthly_credits
        self.credits.clear()
        accounts = self.settings.accounts
        self.accounts = frozenset(accounts) if accounts is not None else None
        self._last_request_at: float | None = None

    def configure(self, changes: dict[str, Any]) -> None:
        """Faults and limits from `POST /_fake/faults`; all or nothing. Raises FaultConfigError.

        A limit set to null goes back to its start-up value.
        """
        limits = {key: _limit_params(key, changes[key]) for key in _LIMIT_MODELS if key in changes}
        self.faults.configure({k: v for k, v in changes.items() if k not in _LIMIT_MODELS})
        for key, params in limits.items():
            self._apply_limit(key, params)

    def _apply_limit(self, key: str, params: BaseModel | None) -> None:
        settings = self.settings
        if key == "burst_limit":
            self.burst.limit = (
                BurstLimit(params.requests, params.window_seconds)
                if isinstance(params, _BurstParams)
                else BurstLimit(settings.burst_requests, settings.burst_window_seconds)
            )
            self.burst.clear()
        elif key == "concurrency_limit":
            self.concurrency.max_in_flight = (
                params.max if isinstance(params, _ConcurrencyParams) else settings.max_concurrent
            )
        elif isinstance(params, _CreditParams):
            self.credits.monthly = params.limit
            if params.used is not None:
                self.credits.used = params.used
        else:
            self.credits.monthly = settings.monthly_credits

    def describe(self) -> dict[str, Any]:
        return {
            "faults": self.faults.describe(),
            "fault_hits": dict(self.faults.hits),
            "limits": {
                "burst_limit": {
                    "requests": self.burst.limit.requests,
                    "window_seconds": self.burst.limit.window_seconds,
                },
                "concurrency_limit": {"max": self.concurrency.max_in_flight},
                "monthly_credits": {
                    "limit": self.credits.monthly,
                    "used": self.credits.used,
                    "remaining": self.credits.remaining,
                    "reset_at": xledger_local(self.credits.reset_at()),
                },
            },
            "known": sorted([*Fault.registry, *_LIMIT_MODELS]),
        }

    def stats_json(self) -> dict[str, Any]:
        return {
            **self.stats.as_json(),
            "credits_used": self.credits.used,
            "credits_remaining": self.credits.remaining,
            "fault_hits": dict(self.faults.hits),
            "postings": len(self.ledger.postings),
        }

    # ---- GraphQL -------------------------------------------------------------------------

    def _error(
        self, message: str, *, code: str | None = None, extensions: dict[str, Any] | None = None
    ) -> Response:
        if code is not None:
            self.stats.errors_by_code[code] += 1
        return JSONResponse(error_body(message, code=code, extensions=extensions))

    async def graphql(self, request: Request) -> Response:
        now = time.monotonic()
        idle = None if self._last_request_at is None else now - self._last_request_at
        self._last_request_at = now
        parsed = _read_request(await request.body())
        operation = _operation_label(parsed)
        self.stats.requests_total += 1
        self.stats.by_operation[operation] += 1
        ctx = FaultContext(request=request, operation=operation, idle_seconds=idle)

        if (answer := await self.faults.run(Stage.ARRIVAL, ctx)) is not None:
            return answer

        principal = self.tokens.authenticate(request.headers.get("authorization"))
        if principal is AuthFailure.BAD_FORMAT or principal is AuthFailure.UNKNOWN_TOKEN:
            self.stats.auth_failures += 1
            message = (
                BAD_FORMAT_MESSAGE
                if principal is AuthFailure.BAD_FORMAT
                else NOT_AUTHENTICATED_MESSAGE
            )
            return self._error(message)
        if not self.burst.admit(principal.digest):
            self.stats.rate_limited += 1
            return self._error(BURST_MESSAGE, code=BURST_RATE_LIMIT_REACHED)
        if not self.concurrency.enter(principal.digest):
            self.stats.rate_limited += 1
            return self._error(CONCURRENCY_MESSAGE, code=CONCURRENCY_LIMIT_REACHED)
        try:
            return await self._admitted(ctx, parsed)
        finally:
            self.concurrency.leave(principal.digest)

    async def _admitted(self, ctx: FaultContext, parsed: _Request | str) -> Response:
        if (answer := await self.faults.run(Stage.AUTHENTICATED, ctx)) is not None:
            return answer
        if not self.credits.spend():
            return self._error(
                CREDITS_MESSAGE,
                code=INSUFFICIENT_CREDITS,
                extensions={"resetAt": xledger_local(self.credits.reset_at())},
            )
        if (answer := await self.faults.run(Stage.BEFORE_EXECUTE, ctx)) is not None:
            return answer
        if isinstance(parsed, str):
            return JSONResponse({"errors": [{"message": parsed}]}, status_code=400)

        env = ExecutionEnv(
            ledger=self.ledger,
            accounts=self.accounts,
            max_nodes_per_call=self.settings.max_nodes_per_call,
            max_page_size=self.settings.max_page_size,
        )
        result = self._execute(parsed, env)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [format_graphql_error(error) for error in result.errors]
        if env.committed:
            log.info(
                "fake.xledger.posted",
                call=env.committed[0].call,
                lines=len(env.committed),
                first_db_id=env.committed[0].db_id,
            )
            if (answer := await self.faults.run(Stage.AFTER_COMMIT, ctx)) is not None:
                return answer
        return JSONResponse(body)

    def _execute(self, parsed: _Request, env: ExecutionEnv) -> ExecutionResult:
        if parsed.syntax_error is not None or parsed.document is None:
            errors = [parsed.syntax_error] if parsed.syntax_error is not None else []
            return ExecutionResult(data=None, errors=errors)
        problems = validate(self.schema, parsed.document)
        if problems:
            return ExecutionResult(data=None, errors=problems)
        operation = get_operation_ast(parsed.document, parsed.operation_name)
        if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
            return ExecutionResult(
                data=None, errors=[GraphQLError("Subscriptions are not served over HTTP.")]
            )
        return execute_sync(
            self.schema,
            parsed.document,
            context_value=env,
            variable_values=parsed.variables,
            operation_name=parsed.operation_name,
        )
