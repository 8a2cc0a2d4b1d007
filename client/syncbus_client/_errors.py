"""What the client raises. Every error is a `SyncbusError`; catch that to catch them all.

    SyncbusError
     ├── ConnectError          NATS could not be reached within `connect_timeout`
     ├── InvalidRequestError   a request or voucher breaks the v1 contract (also a ValueError)
     ├── PublishError          NATS did not confirm that the request was stored
     ├── ResultTimeoutError    no result arrived within the timeout (also a TimeoutError)
     └── DurableConflictError  a results durable of that name exists with another filter

Messages are one sentence and never carry a secret (a URL's user and password are dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


class SyncbusError(Exception):
    """Base of every error the syncbus client raises."""


class ConnectError(SyncbusError):
    def __init__(self, servers: str, timeout: float) -> None:
        self.servers = servers
        self.timeout = timeout
        super().__init__(f"cannot reach NATS at {servers} within {timeout:g} s")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (`field`, dotted, empty for the whole) and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def _clean(message: str) -> str:
    # pydantic prefixes the text of a ValueError raised in a validator; the text is the point.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def problems_of(exc: ValidationError) -> tuple[Problem, ...]:
    """The problems of a pydantic validation error, without the input (it may be a secret)."""
    return tuple(
        Problem(".".join(str(part) for part in error["loc"]), _clean(error["msg"]))
        for error in exc.errors(include_input=False, include_url=False)
    )


class InvalidRequestError(SyncbusError, ValueError):
    """A request or voucher that breaks the v1 contract; `problems` says where and what."""

    def __init__(
        self, problems: tuple[Problem, ...] | list[Problem], what: str = "request"
    ) -> None:
        self.problems = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"invalid {what}: {first}{more}")

    @classmethod
    def from_validation_error(
        cls, exc: ValidationError, what: str = "request"
    ) -> InvalidRequestError:
        return cls(problems_of(exc), what)


class PublishError(SyncbusError):
    """NATS did not confirm the request. Publishing again with the same key is always safe."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"the request on {subject} was not confirmed by NATS ({reason})")


class ResultTimeoutError(SyncbusError, TimeoutError):
    def __init__(self, request_id: str, timeout: float) -> None:
        self.request_id = request_id
        self.timeout = timeout
        super().__init__(f"no result for request {request_id} within {timeout:g} s")


class DurableConflictError(SyncbusError):
    def __init__(self, durable: str, existing: str | None, wanted: str) -> None:
        self.durable = durable
        self.existing = existing
        self.wanted = wanted
        super().__init__(
            f"the results durable {durable!r} already follows {existing or 'every subject'}, "
            f"not {wanted}; choose another name or delete it with delete_results_durable()"
        )
