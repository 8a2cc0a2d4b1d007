"""Business Central's and Entra's error shapes, and exact JSON for decimal amounts.

The OData error envelope of the API (every error the fake answers under the API root):

    {"error": {"code": "<Category>_<Name>", "message": "...  CorrelationId:  <guid>."}}

Codes the facts name, used where they apply:

    Authentication_InvalidCredentials  401: no, a malformed, an expired, a revoked token, or
                                       one without the roles the API needs
    BadRequest_ResourceNotFound        404: no such company, journal, line, or path
    BadRequest_InvalidToken            400: PATCH/DELETE without If-Match
    Request_EntityChanged              409: PATCH/DELETE with a stale ETag
    Internal_InvalidTableRelation      400: an account number not in the chart of accounts
    Application_StringExceededLength   400: a field longer than its limit
    Application_DialogException        400: "There is nothing to post.", "... is out of
                                       balance by ...", an amount not rounded to 0.01
    Application_TooManyRequests        429: the sliding window or the queue is full

Codes of ours where the facts name none (same `<Category>_<Name>` form):

    BadRequest_InvalidRequestBody      400: not JSON, unknown property, wrong value type
    BadRequest_InvalidFilter           400: a `$filter` the fake cannot read
    BadRequest_TooManyBatchOperations  400: a `$batch` with more operations than allowed
    BadRequest_BatchRolledBack         424 inside a `$batch` with `Isolation: snapshot`: the
                                       operation was rolled back (or not run) because another
                                       operation of the batch failed
    Internal_EntityWithSameKeyExists   400: a journal code or line number that exists
    Internal_ServiceUnavailable        503: waited in the queue past the queue timeout

A token for another audience (for example Microsoft Graph) gets a 401 whose body is **XML**, as
integrators have seen: a client must not assume every error body is JSON.

Entra's token endpoint answers errors with HTTP 400 and its own shape (`entra_error`).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.responses import Response

AUTHENTICATION_INVALID_CREDENTIALS = "Authentication_InvalidCredentials"
RESOURCE_NOT_FOUND = "BadRequest_ResourceNotFound"
INVALID_TOKEN = "BadRequest_InvalidToken"  # noqa: S105 - an error code, not a secret
ENTITY_CHANGED = "Request_EntityChanged"
INVALID_TABLE_RELATION = "Internal_InvalidTableRelation"
STRING_EXCEEDED_LENGTH = "Application_StringExceededLength"
DIALOG_EXCEPTION = "Application_DialogException"
TOO_MANY_REQUESTS = "Application_TooManyRequests"
INVALID_REQUEST_BODY = "BadRequest_InvalidRequestBody"
INVALID_FILTER = "BadRequest_InvalidFilter"
TOO_MANY_BATCH_OPERATIONS = "BadRequest_TooManyBatchOperations"
BATCH_ROLLED_BACK = "BadRequest_BatchRolledBack"
ENTITY_EXISTS = "Internal_EntityWithSameKeyExists"
SERVICE_UNAVAILABLE = "Internal_ServiceUnavailable"

NOTHING_TO_POST = "There is nothing to post."
IF_MATCH_MISSING = (
    "Could not validate the client concurrency token required by the service. "
    "Please provide a valid token in the client request."
)
ENTITY_CHANGED_MESSAGE = "Another user has already changed the record."

ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true"


class ODataError(Exception):
    """Raised inside the API to answer with the OData error envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_envelope(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{message}  CorrelationId:  {uuid.uuid4()}."}}


def string_too_long(value: str, limit: int) -> ODataError:
    return ODataError(
        400,
        STRING_EXCEEDED_LENGTH,
        f"The length of the string is {len(value)}, but it must be less than or equal to "
        f"{limit} characters. Value: {value}",
    )


# ---- JSON with exact decimals ---------------------------------------------------------------


def loads(raw: bytes) -> Any:
    """JSON with every number that has a fraction or exponent read as a `Decimal`."""
    return json.loads(raw, parse_float=Decimal)


def dumps(value: Any) -> bytes:
    """JSON in which a `Decimal` is written as a JSON number with exactly its digits."""
    marker = uuid.uuid4().hex
    numbers: list[Decimal] = []

    def walk(item: Any) -> Any:
        if isinstance(item, Decimal):
            numbers.append(item)
            return f"{marker}:{len(numbers) - 1}"
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        return item

    text = json.dumps(walk(value), ensure_ascii=False, separators=(",", ":"))
    if numbers:
        text = re.sub(
            f'"{marker}:([0-9]+)"', lambda m: _number_text(numbers[int(m.group(1))]), text
        )
    return text.encode("utf-8")


def _number_text(value: Decimal) -> str:
    text = format(value, "f")
    return "0" if text in {"-0", "-0.0", "-0.00"} else text


class ExactJSONResponse(Response):
    media_type = ODATA_JSON

    def render(self, content: Any) -> bytes:
        return dumps(content)


def odata_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> ExactJSONResponse:
    return ExactJSONResponse(
        body, status_code=status, headers={"OData-Version": "4.0", **(headers or {})}
    )


def odata_error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> ExactJSONResponse:
    return odata_response(status, error_envelope(code, message), headers)


WRONG_AUDIENCE_XML = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<error xmlns="http://docs.oasis-open.org/odata/ns/metadata">'
    "<code>Unauthorized</code>"
    "<message>The credentials provided are incorrect</message>"
    "</error>"
)


def wrong_audience_response() -> Response:
    return Response(
        WRONG_AUDIENCE_XML,
        status_code=401,
        media_type="application/xml",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


# ---- Entra -----------------------------------------------------------------------------------


def entra_error(error: str, code: int, description: str, status: int = 400) -> Response:
    """An error of Entra's token endpoint: `error`, `error_description` (AADSTS...), ..."""
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} "
        f"Correlation ID: {correlation} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return Response(
        json.dumps(body), status_code=status, media_type="application/json; charset=utf-8"
    )
