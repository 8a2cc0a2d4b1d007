"""The SAF-T importer against the Tax Administration's real example file and variants of it.

Expected figures are computed here from the XML text with regular expressions and `Decimal`,
independently of the importer, rather than copied from its output.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from syncbus_shared.contracts import Voucher
from syncbus_shared.saft import SaftImport, parse_saft, read_saft

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "saft"
REAL = DATA / "SAF-T_Financial_888888888_20180228235959.xml"
XMLSPY = DATA / "SAF-T_Financial_v1.30_xmlspy_example.xml"
BOM = "\ufeff"


def real_text() -> str:
    """The real file as text, BOM included (decoded with plain utf-8 on purpose)."""
    return REAL.read_bytes().decode("utf-8")


def write(tmp_path: Path, text: str, name: str = "variant.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def ledger_part(text: str) -> str:
    start = text.index("<n1:GeneralLedgerEntries>")
    return text[start : text.index("</n1:GeneralLedgerEntries>")]


def transactions_in(text: str) -> list[str]:
    return re.findall(r"<n1:Transaction>(.*?)</n1:Transaction>", text, flags=re.DOTALL)


def tag(block: str, name: str) -> str:
    match = re.search(rf"<n1:{name}>([^<]*)</n1:{name}>", block)
    assert match, name
    return match.group(1)


def side_amounts(block: str, side: str) -> list[Decimal]:
    pattern = rf"<n1:{side}>\s*<n1:Amount>([^<]*)</n1:Amount>"
    return [Decimal(text) for text in re.findall(pattern, block)]


def expected_periods(text: str) -> dict[str, dict[str, object]]:
    """Per period id: vouchers, lines, debit and credit, read from the XML text with regexes."""
    periods: dict[str, dict[str, object]] = defaultdict(
        lambda: {"vouchers": 0, "lines": 0, "debit": Decimal(0), "credit": Decimal(0)}
    )
    for block in transactions_in(text):
        period = f"{tag(block, 'PeriodYear')}-{int(tag(block, 'Period')):02d}"
        entry = periods[period]
        entry["vouchers"] = int(str(entry["vouchers"])) + 1
        entry["lines"] = int(str(entry["lines"])) + block.count("<n1:Line>")
        entry["debit"] = Decimal(str(entry["debit"])) + sum(side_amounts(block, "DebitAmount"))
        entry["credit"] = Decimal(str(entry["credit"])) + sum(side_amounts(block, "CreditAmount"))
    return dict(sorted(periods.items()))


def edit_transaction(text: str, transaction_id: str, old: str, new: str) -> str:
    """Replace the first `old` inside the transaction with this TransactionID, and only there."""
    marker = f"<n1:TransactionID>{transaction_id}</n1:TransactionID>"
    start = text.index(marker)
    end = text.index("</n1:Transaction>", start)
    block = text[start:end]
    assert old in block, f"{old!r} not in transaction {transaction_id}"
    return text[:start] + block.replace(old, new, 1) + text[end:]


def voucher(result: SaftImport, transaction_id: str) -> Voucher:
    (found,) = [v for v in result.vouchers if v.transaction_id == transaction_id]
    return found


def messages(result: SaftImport) -> list[str]:
    return [str(problem) for problem in result.problems]


@pytest.fixture(scope="module")
def real() -> SaftImport:
    return read_saft(REAL)


# --- the real file ----------------------------------------------------------------------------


def test_the_real_file_is_what_the_tests_assume_utf8_with_a_bom_and_the_n1_prefix() -> None:
    raw = REAL.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "<n1:AuditFile" in raw.decode("utf-8")


def test_the_real_file_imports_without_problems_as_53_vouchers_with_170_lines(
    real: SaftImport,
) -> None:
    text = ledger_part(real_text())
    assert real.problems == ()
    assert real.ok
    assert len(real.vouchers) == len(transactions_in(text)) == 53
    assert real.line_count == text.count("<n1:Line>") == 170


def test_the_real_file_has_four_periods_with_the_counts_and_totals_of_its_text(
    real: SaftImport,
) -> None:
    expected = expected_periods(ledger_part(real_text()))
    assert list(expected) == ["2017-01", "2017-02", "2017-03", "2017-04"]
    periods = real.periods()
    assert list(periods) == list(expected)
    for period_id, summary in periods.items():
        want = expected[period_id]
        assert summary.vouchers == want["vouchers"], period_id
        assert summary.lines == want["lines"], period_id
        assert summary.debit == want["debit"], period_id
        assert summary.credit == want["credit"], period_id
        assert summary.debit == summary.credit, period_id


def test_the_real_file_debits_9487049_35_in_total_as_its_header_says(real: SaftImport) -> None:
    text = ledger_part(real_text())
    assert sum(side_amounts(text, "DebitAmount")) == Decimal("9487049.35")
    assert real.debit_total == real.credit_total == Decimal("9487049.35")
    assert real.total_debit == real.total_credit == Decimal("9487049.35")
    assert real.number_of_entries == 53


def test_the_header_gives_company_name_and_currency_with_norwegian_letters(
    real: SaftImport,
) -> None:
    assert real.company_id == "888888888"
    assert real.company_name == "Tøyen Lekefabrikk AS"
    assert real.currency == "NOK"
    assert {v.currency for v in real.vouchers} == {"NOK"}
    assert {v.company_id for v in real.vouchers} == {"888888888"}


def test_amounts_are_decimals_never_floats(real: SaftImport) -> None:
    for v in real.vouchers:
        for line in v.lines:
            amount = line.debit if line.debit is not None else line.credit
            assert type(amount) is Decimal
            for dimension in line.dimensions:
                assert dimension.amount is None or type(dimension.amount) is Decimal
            assert line.tax_amount is None or type(line.tax_amount) is Decimal


def test_voucher_ids_are_company_journal_transaction_unique_and_stable_across_two_parses() -> None:
    first, second = read_saft(REAL), parse_saft(REAL.read_bytes())
    ids = [v.voucher_id for v in first.vouchers]
    assert ids == [v.voucher_id for v in second.vouchers]
    assert len(set(ids)) == len(ids) == 53
    transaction_ids = [tag(b, "TransactionID") for b in transactions_in(real_text())]
    assert ids == [f"888888888-123ABC-{t}" for t in transaction_ids]
    assert first.vouchers == second.vouchers


def test_a_voucher_carries_period_dates_and_description_of_its_transaction(
    real: SaftImport,
) -> None:
    v = voucher(real, "1001")
    assert v.journal_id == "123ABC"
    assert v.period_id == "2017-01"
    assert str(v.transaction_date) == "2017-01-04"
    assert str(v.posting_date) == "2017-01-05"  # GLPostingDate, not TransactionDate
    assert v.description == "Faktura 1155 - Stoff til kosebamser"
    assert [line.record_id for line in v.lines] == ["1", "2", "3"]
    assert [line.account_id for line in v.lines] == ["4000", "2400", "2710"]
    assert [line.debit for line in v.lines] == [Decimal(10000), None, Decimal(2500)]
    assert [line.credit for line in v.lines] == [None, Decimal(12500), None]
    assert str(v.lines[0].value_date) == "2017-01-04"
    assert v.lines[0].source_document_id == "1234"
    assert v.lines[0].reference_number == "1155"


def test_norwegian_letters_in_descriptions_are_kept_exactly(real: SaftImport) -> None:
    text = real_text()
    wanted = "Råvarer til leketøysproduksjon. Faktnr 20170035"
    (block,) = [b for b in transactions_in(text) if f"<n1:Description>{wanted}<" in b]
    v = voucher(real, tag(block, "TransactionID"))
    assert v.description == wanted
    assert voucher(real, "1003").description == "Strøm siste to mnd 2016"
    assert "Ansattlønn januar" in {v.description for v in real.vouchers}


def test_analysis_dimensions_are_on_the_lines_that_have_them_with_their_amounts(
    real: SaftImport,
) -> None:
    first = voucher(real, "1001").lines[0]
    assert [(d.analysis_type, d.analysis_id, d.amount) for d in first.dimensions] == [
        ("A", "102", None),
        ("P", "202", Decimal(10000)),
    ]
    assert voucher(real, "1001").lines[1].dimensions == ()
    total = sum(len(line.dimensions) for v in real.vouchers for line in v.lines)
    assert total == ledger_part(real_text()).count("<n1:Analysis>")


def test_tax_information_is_on_the_lines_that_have_it(real: SaftImport) -> None:
    line = voucher(real, "1001").lines[0]
    assert line.tax_type == "MVA"
    assert line.tax_code == "1"
    assert line.tax_percentage == Decimal(25)
    assert line.tax_base == Decimal(10000)
    assert line.tax_amount == Decimal(2500)
    assert voucher(real, "1001").lines[2].tax_code is None
    taxed = sum(1 for v in real.vouchers for li in v.lines if li.tax_code is not None)
    assert taxed == ledger_part(real_text()).count("<n1:TaxInformation>")


def test_supplier_and_customer_ids_are_on_the_lines_that_have_them(real: SaftImport) -> None:
    text = ledger_part(real_text())
    assert voucher(real, "1001").lines[1].supplier_id == "2002"
    assert voucher(real, "1001").lines[0].supplier_id is None
    suppliers = [li.supplier_id for v in real.vouchers for li in v.lines if li.supplier_id]
    customers = [li.customer_id for v in real.vouchers for li in v.lines if li.customer_id]
    assert suppliers == re.findall(r"<n1:SupplierID>([^<]*)</n1:SupplierID>", text)
    assert customers == re.findall(r"<n1:CustomerID>([^<]*)</n1:CustomerID>", text)
    assert customers  # the file has customers; the check above must not pass on empty lists


def test_the_summary_has_the_shape_the_cli_prints(real: SaftImport) -> None:
    summary = real.summary()
    assert set(summary) == {"vouchers", "lines", "periods"}
    assert summary["vouchers"] == 53
    assert summary["lines"] == 170
    expected = expected_periods(ledger_part(real_text()))
    assert summary["periods"] == {
        period: {
            "vouchers": want["vouchers"],
            "lines": want["lines"],
            "debit": f"{want['debit']:.2f}",
            "credit": f"{want['credit']:.2f}",
        }
        for period, want in expected.items()
    }


# --- the same file written differently --------------------------------------------------------


def assert_same_as_real(result: SaftImport, real: SaftImport) -> None:
    assert result.problems == ()
    assert result.vouchers == real.vouchers
    assert result.company_name == "Tøyen Lekefabrikk AS"


def test_another_namespace_prefix_reads_the_same(tmp_path: Path, real: SaftImport) -> None:
    text = (
        real_text()
        .replace("<n1:", "<saft:")
        .replace("</n1:", "</saft:")
        .replace("xmlns:n1=", "xmlns:saft=")
    )
    assert "n1:" not in text
    assert_same_as_real(read_saft(write(tmp_path, text)), real)


def test_no_prefix_with_a_default_namespace_reads_the_same(
    tmp_path: Path, real: SaftImport
) -> None:
    text = real_text().replace("<n1:", "<").replace("</n1:", "</").replace("xmlns:n1=", "xmlns=")
    assert_same_as_real(read_saft(write(tmp_path, text)), real)


def test_no_namespace_at_all_reads_the_same(tmp_path: Path, real: SaftImport) -> None:
    text = real_text().replace("<n1:", "<").replace("</n1:", "</")
    text = text.replace('xmlns:n1="urn:StandardAuditFile-Taxation-Financial:NO" ', "")
    assert 'urn:StandardAuditFile-Taxation-Financial:NO"' not in text
    assert_same_as_real(read_saft(write(tmp_path, text)), real)


def test_a_file_without_a_bom_reads_the_same(tmp_path: Path, real: SaftImport) -> None:
    text = real_text()
    assert text.startswith(BOM)
    assert_same_as_real(read_saft(write(tmp_path, text.removeprefix(BOM))), real)


def test_a_latin1_file_keeps_its_norwegian_letters(tmp_path: Path) -> None:
    text = real_text().removeprefix(BOM).replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    path = tmp_path / "latin1.xml"
    path.write_bytes(text.encode("iso-8859-1"))
    result = read_saft(path)
    assert result.ok, messages(result)
    assert result.company_name == "Tøyen Lekefabrikk AS"
    assert voucher(result, "1003").description == "Strøm siste to mnd 2016"


def test_a_foreign_currency_amount_and_exchange_rate_are_read(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(),
        "1001",
        "<n1:Amount>10000</n1:Amount>\r\n\t\t\t\t\t</n1:DebitAmount>",
        "<n1:Amount>10000</n1:Amount><n1:CurrencyCode>EUR</n1:CurrencyCode>"
        "<n1:CurrencyAmount>1000.00</n1:CurrencyAmount>"
        "<n1:ExchangeRate>10.00000000</n1:ExchangeRate></n1:DebitAmount>",
    )
    result = read_saft(write(tmp_path, text))
    assert result.ok, messages(result)
    line = voucher(result, "1001").lines[0]
    assert line.debit == Decimal(10000)
    assert line.currency == "EUR"
    assert line.currency_amount == Decimal("1000.00")
    assert line.exchange_rate == Decimal("10.00000000")


def test_an_exchange_rate_with_more_decimals_than_a_voucher_carries_is_a_problem(
    tmp_path: Path,
) -> None:
    text = edit_transaction(
        real_text(),
        "1001",
        "<n1:Amount>10000</n1:Amount>\r\n\t\t\t\t\t</n1:DebitAmount>",
        "<n1:Amount>10000</n1:Amount><n1:CurrencyCode>EUR</n1:CurrencyCode>"
        "<n1:CurrencyAmount>1012.49</n1:CurrencyAmount>"
        "<n1:ExchangeRate>9.87654321</n1:ExchangeRate></n1:DebitAmount>",
    )
    (problem,) = read_saft(write(tmp_path, text)).problems
    assert "transaction 1001" in problem.message
    assert "line 1" in problem.message
    assert "ExchangeRate 9.87654321" in problem.message


def test_a_missing_gl_posting_date_falls_back_to_the_transaction_date(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(), "1001", "<n1:GLPostingDate>2017-01-05</n1:GLPostingDate>", ""
    )
    v = voucher(read_saft(write(tmp_path, text)), "1001")
    assert v.posting_date == v.transaction_date


SCHEMA_130 = """<?xml version="1.0" encoding="UTF-8"?>
<AuditFile xmlns="urn:StandardAuditFile-Taxation-Financial:NO">
  <Header>
    <AuditFileVersion>1.30</AuditFileVersion>
    <Company><RegistrationNumber>999999999</RegistrationNumber><Name>Ås Økonomi</Name></Company>
    <DefaultCurrencyCode>NOK</DefaultCurrencyCode>
  </Header>
  <GeneralLedgerEntries>
    <NumberOfEntries>1</NumberOfEntries>
    <TotalDebit>125.00</TotalDebit>
    <TotalCredit>125.00</TotalCredit>
    <Journal>
      <JournalID>GL</JournalID>
      <Transaction>
        <TransactionID>T-1</TransactionID>
        <Period>12</Period>
        <PeriodYear>2024</PeriodYear>
        <TransactionDate>2024-12-31</TransactionDate>
        <Description>Kaffe og wienerbrød</Description>
        <SystemEntryDate>2024-12-31</SystemEntryDate>
        <GLPostingDate>2024-12-31</GLPostingDate>
        <Line>
          <RecordID>1</RecordID>
          <AccountID>6800</AccountID>
          <Analysis>
            <AnalysisType>A</AnalysisType>
            <AnalysisID>100</AnalysisID>
            <DebitAnalysisAmount><Amount>100.00</Amount></DebitAnalysisAmount>
          </Analysis>
          <Description>Kaffe</Description>
          <DebitAmount><Amount>100.00</Amount></DebitAmount>
          <TaxInformation>
            <TaxType>MVA</TaxType>
            <TaxCode>1</TaxCode>
            <TaxPercentage>25</TaxPercentage>
            <TaxBase>100.00</TaxBase>
            <DebitTaxAmount><Amount>25.00</Amount></DebitTaxAmount>
          </TaxInformation>
        </Line>
        <Line>
          <RecordID>2</RecordID>
          <AccountID>2710</AccountID>
          <Description>MVA</Description>
          <DebitAmount><Amount>25.00</Amount></DebitAmount>
        </Line>
        <Line>
          <RecordID>3</RecordID>
          <AccountID>1920</AccountID>
          <CustomerID>K-7</CustomerID>
          <Description>Bank</Description>
          <CreditAmount><Amount>125.00</Amount></CreditAmount>
        </Line>
      </Transaction>
    </Journal>
  </GeneralLedgerEntries>
</AuditFile>
"""


def test_schema_1_30_tax_and_analysis_amounts_are_read() -> None:
    result = parse_saft(SCHEMA_130.encode("utf-8"))
    assert result.ok, messages(result)
    (v,) = result.vouchers
    assert v.voucher_id == "999999999-GL-T-1"
    assert v.period_id == "2024-12"
    assert v.description == "Kaffe og wienerbrød"
    first = v.lines[0]
    assert first.tax_amount == Decimal("25.00")
    assert [(d.analysis_type, d.analysis_id, d.amount) for d in first.dimensions] == [
        ("A", "100", Decimal("100.00"))
    ]
    assert v.lines[2].customer_id == "K-7"
    assert result.company_name == "Ås Økonomi"


# --- problems ---------------------------------------------------------------------------------


def test_an_unbalanced_transaction_is_a_problem_naming_it_and_both_totals(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(), "1001", "<n1:Amount>12500</n1:Amount>", "<n1:Amount>12501</n1:Amount>"
    )
    result = read_saft(write(tmp_path, text))
    assert not result.ok
    (problem,) = [p for p in result.problems if "balance" in p.message]
    assert problem.transaction_id == "1001"
    assert "1001" in problem.message
    assert "12500" in problem.message
    assert "12501" in problem.message
    assert "1001" not in {v.transaction_id for v in result.vouchers}
    # The file's own TotalCredit no longer matches what the lines add up to, and says so.
    assert any("TotalCredit" in m and "9487049.35" in m for m in messages(result))


@pytest.mark.parametrize("bad", ["12,50", "1e3", "12.505", "abc", "1 000"])
def test_a_malformed_amount_is_a_problem_naming_transaction_line_and_text(
    tmp_path: Path, bad: str
) -> None:
    text = edit_transaction(
        real_text(), "1002", "<n1:Amount>6250</n1:Amount>", f"<n1:Amount>{bad}</n1:Amount>"
    )
    result = read_saft(write(tmp_path, text))
    assert not result.ok
    (problem,) = result.problems  # no follow-on balance or total problems from one bad text
    assert problem.transaction_id == "1002"
    assert problem.record_id == "2"
    assert "transaction 1002" in problem.message
    assert "line 2" in problem.message
    assert repr(bad) in problem.message


def test_a_negative_line_amount_is_a_problem_naming_transaction_and_line(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(),
        "1002",
        "<n1:DebitAmount>\r\n\t\t\t\t\t\t<n1:Amount>1250</n1:Amount>",
        "<n1:DebitAmount><n1:Amount>-1250</n1:Amount>",
    )
    text = edit_transaction(
        text, "1002", "<n1:Amount>6250</n1:Amount>", "<n1:Amount>3750</n1:Amount>"
    )
    result = read_saft(write(tmp_path, text))
    negative = [p for p in result.problems if "negative" in p.message]
    assert [(p.transaction_id, p.record_id) for p in negative] == [("1002", "3")]
    assert "-1250" in negative[0].message


def test_a_line_with_both_amounts_is_a_problem(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(),
        "1001",
        "<n1:ReferenceNumber>1155</n1:ReferenceNumber>",
        "<n1:CreditAmount><n1:Amount>1</n1:Amount></n1:CreditAmount>",
    )
    result = read_saft(write(tmp_path, text))
    assert any(
        "transaction 1001" in m and "line 1" in m and "both" in m for m in messages(result)
    ), messages(result)


def test_a_line_with_neither_amount_is_a_problem(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(),
        "1001",
        "<n1:DebitAmount>\r\n\t\t\t\t\t\t<n1:Amount>2500</n1:Amount>\r\n\t\t\t\t\t</n1:DebitAmount>",
        "",
    )
    result = read_saft(write(tmp_path, text))
    assert any(
        "transaction 1001" in m and "line 3" in m and "neither" in m for m in messages(result)
    ), messages(result)


@pytest.mark.parametrize(("period", "why"), [("00", "'00'"), ("13", "'13'"), ("", "missing")])
def test_a_period_missing_or_outside_1_to_12_is_a_problem(
    tmp_path: Path, period: str, why: str
) -> None:
    new = f"<n1:Period>{period}</n1:Period>" if period else ""
    text = edit_transaction(real_text(), "1004", "<n1:Period>01</n1:Period>", new)
    result = read_saft(write(tmp_path, text))
    (problem,) = result.problems
    assert "transaction 1004" in problem.message
    assert "Period" in problem.message
    assert why in problem.message
    assert len(result.vouchers) == 52


@pytest.mark.parametrize("field", ["TransactionDate", "AccountID", "RecordID"])
def test_a_missing_required_field_is_a_problem_naming_it(tmp_path: Path, field: str) -> None:
    block = transactions_in(real_text())[4]
    transaction_id = tag(block, "TransactionID")
    old = f"<n1:{field}>{tag(block, field)}</n1:{field}>"
    result = read_saft(write(tmp_path, edit_transaction(real_text(), transaction_id, old, "")))
    assert not result.ok
    assert any(
        f"transaction {transaction_id}" in m and f"{field} is missing" in m
        for m in messages(result)
    ), messages(result)


def test_problems_are_collected_from_every_transaction_not_only_the_first(tmp_path: Path) -> None:
    text = edit_transaction(
        real_text(), "1001", "<n1:Amount>12500</n1:Amount>", "<n1:Amount>12,500</n1:Amount>"
    )
    text = edit_transaction(text, "1003", "<n1:Period>01</n1:Period>", "<n1:Period>0</n1:Period>")
    result = read_saft(write(tmp_path, text))
    assert {p.transaction_id for p in result.problems} == {"1001", "1003"}


def test_a_number_of_entries_that_does_not_match_the_file_is_a_problem(tmp_path: Path) -> None:
    text = real_text().replace(
        "<n1:NumberOfEntries>53</n1:NumberOfEntries>", "<n1:NumberOfEntries>54</n1:NumberOfEntries>"
    )
    result = read_saft(write(tmp_path, text))
    (problem,) = result.problems
    assert "NumberOfEntries" in problem.message
    assert "54" in problem.message
    assert "53" in problem.message


def test_a_header_total_that_does_not_match_the_lines_is_a_problem(tmp_path: Path) -> None:
    text = real_text().replace(
        "<n1:TotalDebit>9487049.35</n1:TotalDebit>", "<n1:TotalDebit>9487049.30</n1:TotalDebit>"
    )
    (problem,) = read_saft(write(tmp_path, text)).problems
    assert "TotalDebit" in problem.message
    assert "9487049.30" in problem.message
    assert "9487049.35" in problem.message


def test_a_transaction_appearing_twice_is_a_problem(tmp_path: Path) -> None:
    text = real_text()
    (first,) = [b for b in transactions_in(text) if "<n1:TransactionID>1001<" in b]
    text = text.replace(
        "<n1:Transaction>", f"<n1:Transaction>{first}</n1:Transaction><n1:Transaction>", 1
    )
    result = read_saft(write(tmp_path, text))
    assert any("not unique" in m and "1001" in m for m in messages(result)), messages(result)


def test_every_problem_is_one_line() -> None:
    result = parse_saft(b"<AuditFile><GeneralLedgerEntries>\n</oops>")
    result2 = read_saft(XMLSPY)
    for problem in (*result.problems, *result2.problems):
        assert "\n" not in problem.message
        assert problem.message.strip() == problem.message


# --- files that are not SAF-T Financial -------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"this is not xml", b'{"vouchers": []}', b"<AuditFile>", "\ufeff".encode()],
)
def test_something_that_is_not_xml_is_refused_with_a_message_saying_so(data: bytes) -> None:
    result = parse_saft(data)
    assert result.vouchers == ()
    (problem,) = result.problems
    assert "not a SAF-T Financial file" in problem.message


def test_xml_with_another_root_element_is_refused_naming_that_root() -> None:
    result = parse_saft(b"<?xml version='1.0'?><Invoice><ID>1</ID></Invoice>")
    (problem,) = result.problems
    assert "not a SAF-T Financial file" in problem.message
    assert "<Invoice>" in problem.message


def test_an_audit_file_without_general_ledger_entries_is_refused() -> None:
    result = parse_saft(b"<AuditFile xmlns='urn:x'><Header/><MasterFiles/></AuditFile>")
    (problem,) = result.problems
    assert "not a SAF-T Financial file" in problem.message
    assert "GeneralLedgerEntries" in problem.message


def test_entity_declarations_are_refused_and_never_expanded() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE AuditFile [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<AuditFile><GeneralLedgerEntries>&b;</GeneralLedgerEntries></AuditFile>"
    )
    result = parse_saft(laughs)
    assert result.vouchers == ()
    (problem,) = result.problems
    assert "refused" in problem.message
    assert "DTD" in problem.message


def test_the_xmlspy_1_30_example_is_refused_naming_its_transaction_without_crashing() -> None:
    result = read_saft(XMLSPY)
    assert not result.ok
    assert result.vouchers == ()
    assert any(
        "transaction a" in m and "Period '0' is not a month 1..12" in m for m in messages(result)
    ), messages(result)
    assert any("transaction a" in m and "at least two" in m for m in messages(result))
    assert {p.transaction_id for p in result.problems if p.transaction_id} == {"a"}
