"""A voucher: one balanced journal transaction, shaped like SAF-T Financial's Transaction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from ._base import Amount, Message, PeriodId


class AnalysisDimension(Message):
    """One analysis dimension of a line (SAF-T `Analysis`: type `A` department, `P` project...)."""

    type: Literal["syncbus.analysis.v1"] = "syncbus.analysis.v1"
    analysis_type: str = Field(min_length=1, max_length=9)
    analysis_id: str = Field(min_length=1, max_length=35)
    amount: Amount | None = None


class VoucherLine(Message):
    """One journal line: an account and either a debit or a credit amount (never both)."""

    type: Literal["syncbus.voucher_line.v1"] = "syncbus.voucher_line.v1"
    record_id: str = Field(min_length=1, max_length=35)
    account_id: str = Field(min_length=1, max_length=70)
    debit: Amount | None = None
    credit: Amount | None = None
    description: str | None = Field(default=None, max_length=256)
    value_date: date | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    currency_amount: Amount | None = None
    exchange_rate: Amount | None = None
    tax_type: str | None = Field(default=None, max_length=9)
    tax_code: str | None = Field(default=None, max_length=9)
    tax_percentage: Amount | None = None
    tax_base: Amount | None = None
    tax_amount: Amount | None = None
    dimensions: tuple[AnalysisDimension, ...] = ()
    customer_id: str | None = Field(default=None, max_length=35)
    supplier_id: str | None = Field(default=None, max_length=35)
    source_document_id: str | None = Field(default=None, max_length=35)
    reference_number: str | None = Field(default=None, max_length=35)

    @model_validator(mode="after")
    def _one_side(self) -> VoucherLine:
        if (self.debit is None) == (self.credit is None):
            raise ValueError(f"line {self.record_id} must have either a debit or a credit amount")
        amount = self.debit if self.debit is not None else self.credit
        if amount is not None and amount < 0:
            raise ValueError(f"line {self.record_id} has a negative amount {amount}")
        return self

    @property
    def signed_amount(self) -> Decimal:
        """Positive for a debit, negative for a credit (how most ledgers take one amount)."""
        if self.debit is not None:
            return self.debit
        assert self.credit is not None
        return -self.credit


class Voucher(Message):
    """A balanced journal transaction. The sum of debits equals the sum of credits."""

    type: Literal["syncbus.voucher.v1"] = "syncbus.voucher.v1"
    voucher_id: str = Field(
        min_length=1,
        max_length=200,
        description="Stable across imports; for SAF-T `<company>-<journal>-<transaction>`.",
    )
    company_id: str | None = Field(default=None, max_length=35)
    journal_id: str | None = Field(default=None, max_length=35)
    transaction_id: str | None = Field(default=None, max_length=70)
    period_id: PeriodId
    transaction_date: date
    posting_date: date
    description: str | None = Field(default=None, max_length=256)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    lines: tuple[VoucherLine, ...] = Field(min_length=2, max_length=10_000)

    @model_validator(mode="after")
    def _balanced(self) -> Voucher:
        debit, credit = self.debit_total, self.credit_total
        if debit != credit:
            raise ValueError(
                f"voucher {self.voucher_id} does not balance: debit {debit} != credit {credit}"
            )
        return self

    @property
    def debit_total(self) -> Decimal:
        return sum((line.debit for line in self.lines if line.debit is not None), Decimal(0))

    @property
    def credit_total(self) -> Decimal:
        return sum((line.credit for line in self.lines if line.credit is not None), Decimal(0))
