"""Xledger's error shapes: HTTP 200, an `errors` array, the code as a top-level `code` field.

    {"data": null, "errors": [{"message": "...", "code": "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"}]}

Codes and messages the fake answers with (the codes are Xledger's; where Xledger's exact message
is not public, the text is ours and says what happened):

    BAD_REQUEST.BURST_RATE_LIMIT_REACHED   too many requests in the sliding window of this token
    BAD_REQUEST.CONCURRENCY_LIMIT_REACHED  too many requests of this token in flight at once
    BAD_REQUEST.INSUFFICIENT_CREDITS       the monthly quota is spent; `extensions.resetAt` is the
                                           reset time, CET/CEST local without an offset, like
                                           Xledger's other timestamps
    (no code) "Bad format for API Token..." a missing, non-`token` or malformed Authorization header
    (no code) "Authentication failed..."    a well-formed token that the fake does not know
    (no code) "Your query timed out."       an injected stall
    (no code) validation messages           GraphQL validation, variable coercion, business rules
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError

BURST_RATE_LIMIT_REACHED = "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
CONCURRENCY_LIMIT_REACHED = "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"
INSUFFICIENT_CREDITS = "BAD_REQUEST.INSUFFICIENT_CREDITS"

BAD_FORMAT_MESSAGE = (
    'Bad format for API Token. Expected header: "Authorization: token <your-token>"'
)
NOT_AUTHENTICATED_MESSAGE = (
    "Authentication failed: the API token is not valid (it may have been deleted)."
)
BURST_MESSAGE = "Burst rate limit reached. Wait a few seconds before sending more requests."
CONCURRENCY_MESSAGE = "Too many concurrent requests. Wait for a request to finish first."
CREDITS_MESSAGE = "Insufficient credits: the request quota of this subscription is used up."
TIMEOUT_MESSAGE = "Your query timed out."


class XledgerError(Exception):
    """Raised by a resolver to answer with an Xledger-shaped error (optional top-level code)."""

    def __init__(
        self, message: str, *, code: str | None = None, extensions: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extensions = extensions


def error_entry(
    message: str, *, code: str | None = None, extensions: dict[str, Any] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"message": message}
    if code is not None:
        entry["code"] = code
    if extensions:
        entry["extensions"] = extensions
    return entry


def error_body(
    message: str, *, code: str | None = None, extensions: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A whole response body carrying one error and no data."""
    return {"data": None, "errors": [error_entry(message, code=code, extensions=extensions)]}


def format_graphql_error(error: GraphQLError) -> dict[str, Any]:
    """graphql-core's spec format, with an `XledgerError`'s code lifted to the top level."""
    entry: dict[str, Any] = {"message": error.message}
    original = error.original_error
    if isinstance(original, XledgerError):
        if original.code is not None:
            entry["code"] = original.code
        if original.extensions:
            entry["extensions"] = dict(original.extensions)
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry["path"] = list(error.path)
    return entry
