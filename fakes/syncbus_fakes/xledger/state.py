"""What the fake remembers: every posting exactly as received, and counters of its traffic."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .limits import xledger_local


@dataclass(frozen=True)
class Posting:
    """One GL import item: the node as the client sent it, and what the fake added."""

    call: int
    """1-based number of the addGLImportItems call (among the committed ones) that posted it."""
    db_id: int
    client_id: str | None
    node: dict[str, Any]
    created_at: str

    @property
    def ext_identifier(self) -> str | None:
        value = self.node.get("extIdentifier")
        return value if isinstance(value, str) else None

    def as_item(self) -> dict[str, Any]:
        """The node as glImportItems returns it: what was sent, plus dbId and createdAt."""
        return {**copy.deepcopy(self.node), "dbId": self.db_id, "createdAt": self.created_at}

    def as_json(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "dbId": self.db_id,
            "clientId": self.client_id,
            "extIdentifier": self.ext_identifier,
            "node": copy.deepcopy(self.node),
            "createdAt": self.created_at,
        }


class Ledger:
    """Committed postings, in the order they were committed."""

    def __init__(self, first_db_id: int = 1001) -> None:
        self._first_db_id = first_db_id
        self.clear()

    def clear(self) -> None:
        self.postings: list[Posting] = []
        self.calls = 0
        self._next_db_id = self._first_db_id

    def commit(self, inputs: list[tuple[str | None, dict[str, Any]]]) -> list[Posting]:
        """Post one call's nodes together and give each a dbId."""
        self.calls += 1
        created_at = xledger_local(datetime.now(UTC))
        posted = []
        for client_id, node in inputs:
            posting = Posting(
                call=self.calls,
                db_id=self._next_db_id,
                client_id=client_id,
                node=copy.deepcopy(node),
                created_at=created_at,
            )
            self._next_db_id += 1
            posted.append(posting)
        self.postings.extend(posted)
        return posted

    def counts(self) -> dict[str, Any]:
        """Per extIdentifier: how many calls posted it and how many lines it has."""
        calls: dict[str, set[int]] = {}
        lines: Counter[str] = Counter()
        for posting in self.postings:
            key = posting.ext_identifier or ""
            calls.setdefault(key, set()).add(posting.call)
            lines[key] += 1
        return {
            "calls": {key: len(numbers) for key, numbers in calls.items()},
            "lines": dict(lines),
            "total_calls": self.calls,
            "total_lines": len(self.postings),
        }


@dataclass
class Stats:
    """Traffic counters (GraphQL requests only; the control API is not counted)."""

    requests_total: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    auth_failures: int = 0
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def as_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_operation": dict(self.by_operation),
            "rate_limited": self.rate_limited,
            "auth_failures": self.auth_failures,
            "errors_by_code": dict(self.errors_by_code),
            "started_at": self.started_at,
        }
