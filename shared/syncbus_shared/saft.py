"""Reading a SAF-T Financial file as vouchers: bytes or a path in, vouchers and problems out.

Each `GeneralLedgerEntries/Journal/Transaction` becomes one `Voucher` whose id,
`<Company RegistrationNumber>-<JournalID>-<TransactionID>`, is the same every time the file is
read, so staging the same file twice stages nothing new. Each `Line` becomes a `VoucherLine`.

How the file is read:

- Parsing goes through defusedxml with DTDs refused, so no entity is ever expanded and no
  external resource is fetched. SAF-T files have no DTD.
- Elements are matched by their local name: a file with any namespace prefix (`n1:`), a default
  namespace or none at all reads the same. The byte-order mark and the declared encoding are
  left to the XML parser; text is kept exactly as written (Norwegian letters included), with
  only the surrounding white space stripped.
- Amounts are parsed from the element text as `Decimal`, never through float, and must be
  plain `xs:decimal` text: `12,50` and `1e3` are refused, and so is a monetary amount with more
  than two decimals (SAFmonetaryType) or an exchange rate with more than eight.
- Both schema versions are understood: 1.10's `TaxAmount` and `AnalysisAmount` and 1.30's
  `DebitTaxAmount`/`CreditTaxAmount` and `DebitAnalysisAmount`/`CreditAnalysisAmount`. Tax and
  analysis amounts are kept as written (without a sign); the line's side says which way it goes.
- `Period` and `PeriodYear` become the period id `YYYY-MM`; a period outside 1..12 is a problem.
  `GLPostingDate` falls back to `TransactionDate` when it is missing.
- Only the line's own `CustomerID`/`SupplierID` are read; the transaction-level ones of the
  schema have no place in the voucher contract yet.

Fail safe, whole file or nothing: every problem found is collected (rather than stopping at the
first) and returned in `SaftImport.problems`, each as one line that names the transaction and,
where it applies, the line's RecordID. A caller must not stage anything from a file with any
problem (`SaftImport.ok` is false): an accountant expects a file to be imported whole or not at
all, and half a month in the ledger is worse than none. `vouchers` still holds the transactions
that could be read, for inspection only. Besides each transaction balancing, the file's own
`NumberOfEntries`, `TotalDebit` and `TotalCredit` are checked against what was read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from os import PathLike
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree
from pydantic import ValidationError

from .contracts import AnalysisDimension, Voucher, VoucherLine

__all__ = [
    "PeriodSummary",
    "SaftImport",
    "SaftProblem",
    "parse_saft",
    "read_saft",
]

_DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_INTEGER = re.compile(r"^[+]?[0-9]+$")
_DATE = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MONETARY_DECIMALS = 2  # SAFmonetaryType: 18 digits, 2 of them fractional
_EXCHANGE_RATE_DECIMALS = 8  # SAFexchangerateType: 18 digits, 8 of them fractional
_MAX_DIGITS = 18
_VOUCHER_DECIMALS = 6  # what the voucher contract's Amount carries
_SHOWN = 40  # how much of a bad value a message quotes


@dataclass(frozen=True)
class SaftProblem:
    """One thing wrong with the file, as one line that says where (transaction, line) and what."""

    message: str
    journal_id: str | None = None
    transaction_id: str | None = None
    record_id: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PeriodSummary:
    vouchers: int
    lines: int
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class SaftImport:
    """What a SAF-T file holds. Stage `vouchers` only when `ok`: see the module's docstring."""

    source: str
    vouchers: tuple[Voucher, ...]
    problems: tuple[SaftProblem, ...]
    company_id: str | None = None
    company_name: str | None = None
    currency: str | None = None
    audit_file_version: str | None = None
    number_of_entries: int | None = None
    """`GeneralLedgerEntries/NumberOfEntries` as the file states it (None when absent)."""
    total_debit: Decimal | None = None
    """`GeneralLedgerEntries/TotalDebit` as the file states it (None when absent)."""
    total_credit: Decimal | None = None
    """`GeneralLedgerEntries/TotalCredit` as the file states it (None when absent)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def line_count(self) -> int:
        return sum(len(voucher.lines) for voucher in self.vouchers)

    @property
    def debit_total(self) -> Decimal:
        return sum((voucher.debit_total for voucher in self.vouchers), Decimal(0))

    @property
    def credit_total(self) -> Decimal:
        return sum((voucher.credit_total for voucher in self.vouchers), Decimal(0))

    def periods(self) -> dict[str, PeriodSummary]:
        """Vouchers, lines, debit and credit per period id, sorted by period id."""
        totals: dict[str, list[Any]] = {}
        for voucher in self.vouchers:
            entry = totals.setdefault(voucher.period_id, [0, 0, Decimal(0), Decimal(0)])
            entry[0] += 1
            entry[1] += len(voucher.lines)
            entry[2] += voucher.debit_total
            entry[3] += voucher.credit_total
        return {
            period: PeriodSummary(vouchers=v, lines=n, debit=d, credit=c)
            for period, (v, n, d, c) in sorted(totals.items())
        }

    def summary(self) -> dict[str, Any]:
        """JSON-ready: `{"vouchers", "lines", "periods": {id: {vouchers, lines, debit, credit}}}`.

        Amounts are decimal strings with at least two decimals (`"9487049.35"`, `"100.00"`).
        """
        return {
            "vouchers": len(self.vouchers),
            "lines": self.line_count,
            "periods": {
                period: {
                    "vouchers": s.vouchers,
                    "lines": s.lines,
                    "debit": money_text(s.debit),
                    "credit": money_text(s.credit),
                }
                for period, s in self.periods().items()
            },
        }


def money_text(amount: Decimal) -> str:
    """A decimal string with at least two decimals and never an exponent."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -_MONETARY_DECIMALS:
        amount = amount.quantize(Decimal(1).scaleb(-_MONETARY_DECIMALS))
    return format(amount, "f")


def read_saft(path: str | PathLike[str]) -> SaftImport:
    """Read a SAF-T Financial file from disk. An unreadable file raises `OSError`."""
    file = Path(path)
    return parse_saft(file.read_bytes(), source=str(file))


def parse_saft(data: bytes, *, source: str = "<bytes>") -> SaftImport:
    """Read SAF-T Financial XML. Never raises on bad content: what is wrong is in `problems`."""
    return _Reader(source).read(data)


# --- reading ----------------------------------------------------------------------------------


class _BadValueError(ValueError):
    """A value that cannot be read; the message says why, without naming where."""


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _text(element: Element | None, name: str) -> str | None:
    """The stripped text of the first child called `name`; None when absent or empty."""
    child = _child(element, name)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(text: str) -> str:
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    return repr(shown)


def _parse_decimal(text: str, *, max_decimals: int | None = None) -> Decimal:
    if not _DECIMAL.match(text):
        raise _BadValueError(f"{_quote(text)} is not a decimal number such as 1234.50")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guards this
        raise _BadValueError(f"{_quote(text)} is not a decimal number") from exc
    if max_decimals is not None:
        digits = value.normalize().as_tuple() if value else Decimal(0).as_tuple()
        exponent = digits.exponent if isinstance(digits.exponent, int) else 0
        decimals = max(0, -exponent)
        if decimals > max_decimals:
            raise _BadValueError(
                f"{_quote(text)} has {decimals} decimals, at most {max_decimals} are allowed"
            )
        if len(digits.digits) + max(0, exponent) > _MAX_DIGITS:
            raise _BadValueError(f"{_quote(text)} has more than {_MAX_DIGITS} digits")
    return value


def _parse_date(text: str) -> date:
    match = _DATE.match(text)
    if not match:
        raise _BadValueError(f"{_quote(text)} is not a date such as 2017-01-31")
    try:
        return date.fromisoformat(match.group(1))
    except ValueError as exc:
        raise _BadValueError(f"{_quote(text)} is not a valid date") from exc


def _validation_messages(exc: ValidationError) -> list[str]:
    messages: list[str] = []
    for error in exc.errors():
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        loc = ".".join(str(part) for part in error.get("loc", ()))
        messages.append(_one_line(f"{loc}: {message}" if loc else message))
    return messages


@dataclass
class _Amounts:
    """The raw debit and credit of a set of lines; `complete` is false if any could not be read."""

    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    complete: bool = True

    def add(self, other: _Amounts) -> None:
        self.debit += other.debit
        self.credit += other.credit
        self.complete = self.complete and other.complete


@dataclass
class _Where:
    journal_id: str | None = None
    transaction_id: str | None = None
    record_id: str | None = None
    label: str = ""


@dataclass
class _Reader:
    source: str
    problems: list[SaftProblem] = field(default_factory=list)

    def problem(self, where: _Where, message: str) -> None:
        self.problems.append(
            SaftProblem(
                message=_one_line(f"{where.label}: {message}" if where.label else message),
                journal_id=where.journal_id,
                transaction_id=where.transaction_id,
                record_id=where.record_id,
            )
        )

    def refused(self, message: str) -> SaftImport:
        self.problem(_Where(), message)
        return SaftImport(source=self.source, vouchers=(), problems=tuple(self.problems))

    # -- the file ----------------------------------------------------------------------------

    def read(self, data: bytes) -> SaftImport:
        if not data.strip():
            return self.refused("not a SAF-T Financial file: the file is empty")
        try:
            root: Element = SafeElementTree.fromstring(data, forbid_dtd=True)
        except DefusedXmlException as exc:
            return self.refused(
                "refused: the file declares a DTD, entities or external references "
                f"({type(exc).__name__}); SAF-T files have none and they are never expanded"
            )
        except SafeElementTree.ParseError as exc:
            return self.refused(f"not a SAF-T Financial file: it is not well-formed XML ({exc})")
        except (ValueError, LookupError) as exc:  # e.g. an unknown declared encoding
            return self.refused(f"not a SAF-T Financial file: it cannot be read as XML ({exc})")

        if _local(root.tag) != "AuditFile":
            return self.refused(
                f"not a SAF-T Financial file: the root element is <{_local(root.tag)}>, "
                "expected <AuditFile>"
            )
        entries = _child(root, "GeneralLedgerEntries")
        if entries is None:
            return self.refused(
                "not a SAF-T Financial file: <AuditFile> has no <GeneralLedgerEntries>"
            )

        header = _child(root, "Header")
        here = _Where(label="Header")
        if header is None:
            self.problem(here, "the file has no <Header>")
        company = _child(header, "Company")
        company_id = _text(company, "RegistrationNumber")
        if company_id is None:
            self.problem(
                here,
                "Company/RegistrationNumber is missing; voucher ids are built from it",
            )
        currency = _text(header, "DefaultCurrencyCode")
        if currency is None:
            self.problem(here, "DefaultCurrencyCode is missing")
        elif not _CURRENCY.match(currency):
            self.problem(
                here,
                f"DefaultCurrencyCode {_quote(currency)} is not a three-letter ISO 4217 code",
            )
            currency = None

        vouchers: list[Voucher] = []
        read = _Amounts()
        transactions = 0
        seen: dict[str, str] = {}
        for journal_number, journal in enumerate(_children(entries, "Journal"), start=1):
            journal_id = _text(journal, "JournalID")
            if journal_id is None:
                self.problem(
                    _Where(label=f"journal #{journal_number}"),
                    "JournalID is missing; voucher ids are built from it",
                )
            for number, transaction in enumerate(_children(journal, "Transaction"), start=1):
                transactions += 1
                voucher, amounts = self.transaction(
                    transaction,
                    number=number,
                    company_id=company_id,
                    journal_id=journal_id,
                    journal_label=journal_id or f"#{journal_number}",
                    currency=currency,
                )
                read.add(amounts)
                if voucher is None:
                    continue
                if voucher.voucher_id in seen:
                    self.problem(
                        _Where(
                            journal_id=journal_id,
                            transaction_id=voucher.transaction_id,
                            label=f"transaction {voucher.transaction_id}",
                        ),
                        f"voucher id {voucher.voucher_id} is not unique: journal "
                        f"{journal_id} holds transaction {voucher.transaction_id} twice",
                    )
                    continue
                seen[voucher.voucher_id] = voucher.voucher_id
                vouchers.append(voucher)

        if transactions == 0:
            self.problem(_Where(label="GeneralLedgerEntries"), "the file holds no transactions")

        number_of_entries, total_debit, total_credit = self.check_totals(
            entries, transactions=transactions, read=read
        )
        return SaftImport(
            source=self.source,
            vouchers=tuple(vouchers),
            problems=tuple(self.problems),
            company_id=company_id,
            company_name=_text(company, "Name"),
            currency=currency,
            audit_file_version=_text(header, "AuditFileVersion"),
            number_of_entries=number_of_entries,
            total_debit=total_debit,
            total_credit=total_credit,
        )

    def check_totals(
        self, entries: Element, *, transactions: int, read: _Amounts
    ) -> tuple[int | None, Decimal | None, Decimal | None]:
        here = _Where(label="GeneralLedgerEntries")
        number_text = _text(entries, "NumberOfEntries")
        number: int | None = None
        if number_text is not None:
            if _INTEGER.match(number_text):
                number = int(number_text)
                if number != transactions:
                    self.problem(
                        here,
                        f"NumberOfEntries says {number} transactions, "
                        f"the file holds {transactions}",
                    )
            else:
                self.problem(here, f"NumberOfEntries {_quote(number_text)} is not a number")

        stated: dict[str, Decimal | None] = {}
        for name, actual in (("TotalDebit", read.debit), ("TotalCredit", read.credit)):
            text = _text(entries, name)
            stated[name] = None
            if text is None:
                continue
            try:
                value = _parse_decimal(text, max_decimals=_MONETARY_DECIMALS)
            except _BadValueError as exc:
                self.problem(here, f"{name} {exc}")
                continue
            stated[name] = value
            # With an unreadable amount somewhere the sum means nothing; that amount is reported.
            if read.complete and value != actual:
                self.problem(
                    here,
                    f"{name} says {value}, the lines add up to {actual} "
                    f"(difference {actual - value})",
                )
        return number, stated["TotalDebit"], stated["TotalCredit"]

    # -- one transaction ---------------------------------------------------------------------

    def transaction(
        self,
        element: Element,
        *,
        number: int,
        company_id: str | None,
        journal_id: str | None,
        journal_label: str,
        currency: str | None,
    ) -> tuple[Voucher | None, _Amounts]:
        transaction_id = _text(element, "TransactionID")
        voucher_id = (
            f"{company_id}-{journal_id}-{transaction_id}"
            if company_id and journal_id and transaction_id
            else None
        )
        if transaction_id is None:
            label = f"transaction #{number} of journal {journal_label}"
        elif voucher_id is not None:
            label = f"transaction {transaction_id} (voucher {voucher_id})"
        else:
            label = f"transaction {transaction_id} of journal {journal_label}"
        where = _Where(journal_id=journal_id, transaction_id=transaction_id, label=label)
        count = len(self.problems)
        if transaction_id is None:
            self.problem(where, "TransactionID is missing")

        period_id = self.period(element, where)
        transaction_date = self.date(element, "TransactionDate", where, required=True)
        posting_date = self.date(element, "GLPostingDate", where, required=False)
        description = _text(element, "Description")

        lines: list[VoucherLine] = []
        amounts = _Amounts()
        line_elements = _children(element, "Line")
        for line_number, line_element in enumerate(line_elements, start=1):
            line, line_amounts = self.line(line_element, where, line_number)
            amounts.add(line_amounts)
            if line is not None:
                lines.append(line)
        if len(line_elements) < 2:
            self.problem(
                where,
                f"has {len(line_elements)} line{'' if len(line_elements) == 1 else 's'}; "
                "a voucher needs at least two",
            )
        if amounts.complete and amounts.debit != amounts.credit:
            self.problem(
                where,
                f"does not balance: debit {amounts.debit} != credit {amounts.credit} "
                f"(difference {amounts.debit - amounts.credit})",
            )

        if (
            len(self.problems) > count
            or voucher_id is None
            or period_id is None
            or transaction_date is None
        ):
            return None, amounts
        try:
            voucher = Voucher(
                voucher_id=voucher_id,
                company_id=company_id,
                journal_id=journal_id,
                transaction_id=transaction_id,
                period_id=period_id,
                transaction_date=transaction_date,
                posting_date=posting_date or transaction_date,
                description=description,
                currency=currency,
                lines=tuple(lines),
            )
        except ValidationError as exc:
            for message in _validation_messages(exc):
                self.problem(where, message)
            return None, amounts
        return voucher, amounts

    def period(self, element: Element, where: _Where) -> str | None:
        period_text = _text(element, "Period")
        year_text = _text(element, "PeriodYear")
        if period_text is None:
            self.problem(where, "Period is missing")
        if year_text is None:
            self.problem(where, "PeriodYear is missing")
        if period_text is None or year_text is None:
            return None
        ok = True
        if not _INTEGER.match(period_text) or not 1 <= int(period_text) <= 12:
            self.problem(where, f"Period {_quote(period_text)} is not a month 1..12")
            ok = False
        if not _INTEGER.match(year_text) or not 1970 <= int(year_text) <= 2100:
            self.problem(where, f"PeriodYear {_quote(year_text)} is not a year 1970..2100")
            ok = False
        if not ok:
            return None
        return f"{int(year_text):04d}-{int(period_text):02d}"

    def date(self, element: Element, name: str, where: _Where, *, required: bool) -> date | None:
        text = _text(element, name)
        if text is None:
            if required:
                self.problem(where, f"{name} is missing")
            return None
        try:
            return _parse_date(text)
        except _BadValueError as exc:
            self.problem(where, f"{name} {exc}")
            return None

    def decimal(
        self,
        text: str | None,
        what: str,
        where: _Where,
        *,
        max_decimals: int | None = _MONETARY_DECIMALS,
    ) -> Decimal | None:
        if text is None:
            return None
        try:
            return _parse_decimal(text, max_decimals=max_decimals)
        except _BadValueError as exc:
            self.problem(where, f"{what} {exc}")
            return None

    # -- one line ----------------------------------------------------------------------------

    def line(
        self, element: Element, transaction: _Where, number: int
    ) -> tuple[VoucherLine | None, _Amounts]:
        record_id = _text(element, "RecordID")
        where = _Where(
            journal_id=transaction.journal_id,
            transaction_id=transaction.transaction_id,
            record_id=record_id,
            label=f"{transaction.label} line {record_id or f'#{number}'}",
        )
        count = len(self.problems)
        amounts = _Amounts()
        if record_id is None:
            self.problem(where, "RecordID is missing")
        account_id = _text(element, "AccountID")
        if account_id is None:
            self.problem(where, "AccountID is missing")

        debit_element = _child(element, "DebitAmount")
        credit_element = _child(element, "CreditAmount")
        side: Element | None = None
        debit = credit = None
        if debit_element is not None and credit_element is not None:
            self.problem(where, "has both a DebitAmount and a CreditAmount")
            amounts.complete = False
        elif debit_element is None and credit_element is None:
            self.problem(where, "has neither a DebitAmount nor a CreditAmount")
            amounts.complete = False
        else:
            side = debit_element if debit_element is not None else credit_element
            assert side is not None
            name = _local(side.tag)
            amount_text = _text(side, "Amount")
            if amount_text is None:
                self.problem(where, f"{name} has no Amount")
                amounts.complete = False
            else:
                value = self.decimal(amount_text, f"{name}/Amount", where)
                if value is None:
                    amounts.complete = False
                elif side is debit_element:
                    debit = amounts.debit = value
                else:
                    credit = amounts.credit = value
                if value is not None and value < 0:
                    self.problem(
                        where,
                        f"{name}/Amount {value} is negative; a line's amount is positive, "
                        "its side (debit or credit) gives the direction",
                    )

        line_currency = _text(side, "CurrencyCode")
        currency_amount = self.decimal(_text(side, "CurrencyAmount"), "CurrencyAmount", where)
        exchange_rate = self.decimal(
            _text(side, "ExchangeRate"),
            "ExchangeRate",
            where,
            max_decimals=_EXCHANGE_RATE_DECIMALS,
        )
        exchange_rate = self.fit_exchange_rate(exchange_rate, where)
        if line_currency is not None and not _CURRENCY.match(line_currency):
            self.problem(
                where,
                f"CurrencyCode {_quote(line_currency)} is not a three-letter ISO 4217 code",
            )
        if currency_amount is not None and line_currency is None:
            self.problem(where, "has a CurrencyAmount without a CurrencyCode")

        value_date = self.date(element, "ValueDate", where, required=False)
        dimensions = self.dimensions(element, where)
        tax = self.tax(element, where)

        if len(self.problems) > count or record_id is None or account_id is None:
            return None, amounts
        try:
            line = VoucherLine(
                record_id=record_id,
                account_id=account_id,
                debit=debit,
                credit=credit,
                description=_text(element, "Description"),
                value_date=value_date,
                currency=line_currency,
                currency_amount=currency_amount,
                exchange_rate=exchange_rate,
                dimensions=dimensions,
                customer_id=_text(element, "CustomerID"),
                supplier_id=_text(element, "SupplierID"),
                source_document_id=_text(element, "SourceDocumentID"),
                reference_number=_text(element, "ReferenceNumber"),
                **tax,
            )
        except ValidationError as exc:
            for message in _validation_messages(exc):
                self.problem(where, message)
            return None, amounts
        return line, amounts

    def fit_exchange_rate(self, rate: Decimal | None, where: _Where) -> Decimal | None:
        """SAF-T allows eight decimals in a rate, a voucher amount six: drop only zeros."""
        if rate is None:
            return None
        exponent = rate.as_tuple().exponent
        if not isinstance(exponent, int) or exponent >= -_VOUCHER_DECIMALS:
            return rate
        fitted = rate.quantize(Decimal(1).scaleb(-_VOUCHER_DECIMALS))
        if fitted != rate:
            self.problem(
                where,
                f"ExchangeRate {rate} has more than the {_VOUCHER_DECIMALS} decimals "
                "a voucher carries",
            )
            return None
        return fitted

    def dimensions(self, element: Element, where: _Where) -> tuple[AnalysisDimension, ...]:
        dimensions: list[AnalysisDimension] = []
        for analysis in _children(element, "Analysis"):
            analysis_type = _text(analysis, "AnalysisType")
            analysis_id = _text(analysis, "AnalysisID")
            if analysis_type is None or analysis_id is None:
                self.problem(where, "an Analysis has no AnalysisType or no AnalysisID")
                continue
            amount_element = _first(
                analysis, ("AnalysisAmount", "DebitAnalysisAmount", "CreditAnalysisAmount")
            )
            amount = self.decimal(
                _text(amount_element, "Amount"),
                f"Analysis {analysis_type}/{analysis_id} amount",
                where,
            )
            try:
                dimensions.append(
                    AnalysisDimension(
                        analysis_type=analysis_type, analysis_id=analysis_id, amount=amount
                    )
                )
            except ValidationError as exc:
                for message in _validation_messages(exc):
                    self.problem(where, f"Analysis {analysis_type}/{analysis_id}: {message}")
        return tuple(dimensions)

    def tax(self, element: Element, where: _Where) -> dict[str, Any]:
        taxes = _children(element, "TaxInformation")
        if not taxes:
            return {}
        if len(taxes) > 1:
            self.problem(
                where,
                f"has {len(taxes)} TaxInformation elements; a voucher line carries one",
            )
            return {}
        tax = taxes[0]
        amount_element = _first(tax, ("TaxAmount", "DebitTaxAmount", "CreditTaxAmount"))
        return {
            "tax_type": _text(tax, "TaxType"),
            "tax_code": _text(tax, "TaxCode"),
            "tax_percentage": self.decimal(
                _text(tax, "TaxPercentage"), "TaxPercentage", where, max_decimals=None
            ),
            "tax_base": self.decimal(_text(tax, "TaxBase"), "TaxBase", where, max_decimals=None),
            "tax_amount": self.decimal(_text(amount_element, "Amount"), "TaxAmount", where),
        }


def _first(element: Element, names: Iterable[str]) -> Element | None:
    for name in names:
        found = _child(element, name)
        if found is not None:
            return found
    return None
