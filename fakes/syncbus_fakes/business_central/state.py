"""What the fake remembers: companies, journals and their lines, posted G/L entries, counters.

Posting a journal moves its lines into `generalLedgerEntries` in one step (all or nothing) and
empties the journal, as Business Central does. Every entry remembers which post (1-based, in
commit order) created it, so a test can count documents posted more than once.

`Store.transaction()` gives a `$batch` with `Isolation: snapshot` its all-or-nothing: each change
made inside registers how to undo it, and `rollback()` undoes them newest first. A posting made
inside the transaction is not undone (Business Central commits a posting inside the batch).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .odata import etag


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ZERO_GUID = "00000000-0000-0000-0000-000000000000"


@dataclass
class JournalLine:
    id: str
    journal_id: str
    line_number: int
    fields: dict[str, Any]
    version: int = 1
    modified_at: str = field(default_factory=now_text)

    @property
    def etag(self) -> str:
        return etag(self.id, self.version)

    @property
    def amount(self) -> Decimal:
        value = self.fields.get("amount", Decimal(0))
        return value if isinstance(value, Decimal) else Decimal(value)


@dataclass
class Journal:
    id: str
    code: str
    display_name: str
    lines: dict[str, JournalLine] = field(default_factory=dict)
    version: int = 1
    modified_at: str = field(default_factory=now_text)

    @property
    def etag(self) -> str:
        return etag(self.id, self.version)

    def next_line_number(self) -> int:
        return max((line.line_number for line in self.lines.values()), default=0) + 10_000


@dataclass(frozen=True)
class Entry:
    """One posted G/L entry."""

    id: str
    entry_number: int
    post: int
    journal_code: str
    posting_date: str
    document_number: str
    external_document_number: str
    account_number: str
    description: str
    amount: Decimal
    modified_at: str

    def as_json(self) -> dict[str, Any]:
        debit = self.amount if self.amount > 0 else Decimal("0.00")
        credit = -self.amount if self.amount < 0 else Decimal("0.00")
        return {
            "@odata.etag": etag(self.id, 1),
            "id": self.id,
            "entryNumber": self.entry_number,
            "postingDate": self.posting_date,
            "documentNumber": self.document_number,
            "documentType": " ",
            "externalDocumentNumber": self.external_document_number,
            "accountId": ZERO_GUID,
            "accountNumber": self.account_number,
            "description": self.description,
            "debitAmount": debit,
            "creditAmount": credit,
            "additionalCurrencyDebitAmount": Decimal(0),
            "additionalCurrencyCreditAmount": Decimal(0),
            "lastModifiedDateTime": self.modified_at,
        }


@dataclass
class Company:
    id: str
    name: str
    environment: str
    journals: dict[str, Journal] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "systemVersion": "25.0.00000.0",
            "timestamp": 1,
            "name": self.name,
            "displayName": self.name,
            "businessProfileId": "",
            "systemCreatedAt": "2017-01-01T00:00:00Z",
            "systemCreatedBy": ZERO_GUID,
            "systemModifiedAt": "2017-01-01T00:00:00Z",
            "systemModifiedBy": ZERO_GUID,
        }


def company_id(tenant_id: str, environment: str, name: str) -> str:
    """Deterministic, so a restarted fake keeps its company ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"syncbus-fake-bc/{tenant_id}/{environment}/{name}"))


class Store:
    def __init__(
        self,
        tenant_id: str,
        environments: tuple[str, ...],
        companies: tuple[str, ...],
        first_entry_number: int,
    ) -> None:
        self.tenant_id = tenant_id
        self._environments = environments
        self._company_names = companies
        self._first_entry_number = first_entry_number
        self._undo: list[Callable[[], object]] | None = None
        self.clear()

    def clear(self) -> None:
        self.companies: dict[tuple[str, str], Company] = {}
        for environment in self._environments:
            for name in self._company_names:
                cid = company_id(self.tenant_id, environment, name)
                self.companies[(environment, cid)] = Company(cid, name, environment)
        self.posts = 0
        self._next_entry = self._first_entry_number

    @property
    def environments(self) -> tuple[str, ...]:
        return self._environments

    def in_environment(self, environment: str) -> list[Company]:
        return [c for (env, _), c in self.companies.items() if env == environment]

    # ---- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Callable[[], None]]:
        """Inside: changes are recorded; call the yielded `rollback` to undo them."""
        outer = self._undo
        self._undo = []
        undo = self._undo

        def rollback() -> None:
            while undo:
                undo.pop()()

        try:
            yield rollback
        finally:
            self._undo = outer

    def _record(self, step: Callable[[], object]) -> None:
        if self._undo is not None:
            self._undo.append(step)

    # ---- changes ------------------------------------------------------------------------

    def add_journal(self, company: Company, code: str, display_name: str) -> Journal:
        journal = Journal(id=str(uuid.uuid4()), code=code, display_name=display_name)
        company.journals[journal.id] = journal
        self._record(lambda: company.journals.pop(journal.id, None))
        return journal

    def update_journal(self, journal: Journal, changes: dict[str, Any]) -> None:
        before = (journal.code, journal.display_name, journal.version, journal.modified_at)

        def undo() -> None:
            journal.code, journal.display_name, journal.version, journal.modified_at = before

        journal.code = changes.get("code", journal.code)
        journal.display_name = changes.get("displayName", journal.display_name)
        journal.version += 1
        journal.modified_at = now_text()
        self._record(undo)

    def delete_journal(self, company: Company, journal: Journal) -> None:
        del company.journals[journal.id]
        self._record(lambda: company.journals.__setitem__(journal.id, journal))

    def add_line(self, journal: Journal, line_number: int, fields: dict[str, Any]) -> JournalLine:
        line = JournalLine(
            id=str(uuid.uuid4()), journal_id=journal.id, line_number=line_number, fields=fields
        )
        journal.lines[line.id] = line
        self._record(lambda: journal.lines.pop(line.id, None))
        return line

    def update_line(self, line: JournalLine, changes: dict[str, Any]) -> None:
        before = (dict(line.fields), line.line_number, line.version, line.modified_at)

        def undo() -> None:
            line.fields, line.line_number, line.version, line.modified_at = (
                before[0],
                before[1],
                before[2],
                before[3],
            )

        line.fields.update({k: v for k, v in changes.items() if k != "lineNumber"})
        if "lineNumber" in changes:
            line.line_number = int(changes["lineNumber"])
        line.version += 1
        line.modified_at = now_text()
        self._record(undo)

    def delete_line(self, journal: Journal, line: JournalLine) -> None:
        del journal.lines[line.id]
        self._record(lambda: journal.lines.__setitem__(line.id, line))

    def post(self, company: Company, journal: Journal) -> list[Entry]:
        """Move every line of the journal into the ledger (the caller has checked them)."""
        self.posts += 1
        stamp = now_text()
        entries = []
        for line in sorted(journal.lines.values(), key=lambda item: item.line_number):
            entry = Entry(
                id=str(uuid.uuid4()),
                entry_number=self._next_entry,
                post=self.posts,
                journal_code=journal.code,
                posting_date=str(line.fields.get("postingDate") or ""),
                document_number=str(line.fields.get("documentNumber") or ""),
                external_document_number=str(line.fields.get("externalDocumentNumber") or ""),
                account_number=str(line.fields.get("accountNumber") or ""),
                description=str(line.fields.get("description") or ""),
                amount=line.amount,
                modified_at=stamp,
            )
            self._next_entry += 1
            entries.append(entry)
        company.entries.extend(entries)
        journal.lines.clear()
        journal.version += 1
        journal.modified_at = stamp
        return entries

    # ---- reading ------------------------------------------------------------------------

    def all_entries(self) -> list[tuple[Company, Entry]]:
        found = [(c, e) for c in self.companies.values() for e in c.entries]
        return sorted(found, key=lambda pair: pair[1].entry_number)

    def counts(self) -> dict[str, Any]:
        """Per documentNumber: how many posts posted it and how many entries it has."""
        posts: dict[str, set[int]] = {}
        lines: Counter[str] = Counter()
        for _, entry in self.all_entries():
            posts.setdefault(entry.document_number, set()).add(entry.post)
            lines[entry.document_number] += 1
        return {
            "documents": {number: len(found) for number, found in posts.items()},
            "lines": dict(lines),
            "total_posts": self.posts,
            "total_lines": sum(lines.values()),
        }


@dataclass
class Stats:
    """Traffic counters (token endpoint and API; the control API is not counted)."""

    requests_total: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    auth_failures: int = 0
    auth_failures_by_reason: Counter[str] = field(default_factory=Counter)
    token_requests: int = 0
    tokens_issued: int = 0
    token_errors: Counter[str] = field(default_factory=Counter)
    batch_operations: int = 0
    started_at: str = field(default_factory=now_text)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_operation": dict(self.by_operation),
            "by_status": dict(self.by_status),
            "errors_by_code": dict(self.errors_by_code),
            "rate_limited": self.rate_limited,
            "auth_failures": self.auth_failures,
            "auth_failures_by_reason": dict(self.auth_failures_by_reason),
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "token_errors": dict(self.token_errors),
            "batch_operations": self.batch_operations,
            "started_at": self.started_at,
        }
