"""Xledger: vouchers as GL import items through the GraphQL mass mutation `addGLImportItems`.

One `export_batch` is one HTTP request: every line of the batch's vouchers in one
`addGLImportItems(inputs: $inputs)` call, sent as GraphQL variables (never interpolated), so
quotes, backslashes, newlines and Norwegian letters reach Xledger byte for byte. At most 500
lines per call (`max_lines_per_call`); a larger batch is refused before anything is sent.

A line becomes one input `{clientId, node}`:

    clientId          "<voucher_id>#<record_id>"
    extIdentifier     voucher_id (the natural key `lookup` queries back)
    amount            the line's signed amount as a decimal string, at least 2 decimals
                      ("-12500.00": negative = credit)
    postedDate        voucher.posting_date        invoiceDate   voucher.transaction_date
    account {code}    line.account_id             text          line.description, else the
                                                                voucher's description
    taxRule {code}    line.tax_code               subledger {code}  customer_id or supplier_id
    currency {code}   line.currency, else voucher.currency (only when set)
    exchangeRate      line.exchange_rate (decimal string, only when set)
    invoiceNumber     line.source_document_id (only when set)
    trRegNumber       voucher.transaction_id when it is a number that fits a GraphQL Int
    transactionSource {code}  options["transaction_source"] (only when configured)

Analysis dimensions map by SAF-T analysis type through a fixed table, by default
`A` (department, "Avdeling") -> `glObject1` and `P` (project) -> `project`. The table is set
with `options["dimensions"]`, e.g. `"A=glObject1,P=project,K=glObject2"` (targets: `glObject1`
to `glObject5`, `project`). A dimension whose type is not in the table is skipped: mapping
"in order" would put the same type in different fields depending on which other types a line
happens to carry.

A SAF-T line may split its amount across several values of one dimension (three projects,
each with its `AnalysisAmount`); an Xledger line carries one value per field, so such a line
becomes one Xledger line per value, with that value's amount (signed like the line) and the
clientId `<voucher_id>#<record_id>.<n>`. The split amounts must add up to the line's amount.
A line that splits over two fields at once is refused (DATA): there is no one way to cross
them without inventing an allocation the books do not hold.

Errors (see `base.py`), with the reason for each choice:

    BURST_RATE_LIMIT_REACHED, CONCURRENCY_LIMIT_REACHED  RETRYABLE; retry_after 5 s for a burst
                                  (Xledger's own sample waits 5 s), none for concurrency
    INSUFFICIENT_CREDITS          QUOTA; retry_after = seconds until `extensions.resetAt`
                                  (CET/CEST local when it has no offset), else 20 min
    "Bad format for API Token", "Authentication failed", HTTP 401/403   AUTH
    "Your query timed out."       AMBIGUOUS for the mutation (it may have committed),
                                  RETRYABLE for the read-only lookup and ping
    other GraphQL errors          DATA with the vendor's messages; but when the mutation's
                                  answer carries errors *and* posted edges, AMBIGUOUS
    HTTP 429, 5xx                 RETRYABLE (Retry-After honoured), except 504 on the mutation:
                                  a gateway timeout after the request went through is AMBIGUOUS
    connect error / connect or pool timeout (nothing sent)             RETRYABLE
    read/write timeout, dropped connection, unreadable 200 answer after the mutation was sent
                                  AMBIGUOUS; the same for lookup or ping is RETRYABLE

The API token (`context.credential.secret`) goes only into the `Authorization: token <...>`
header. Errors are raised outside `except` blocks, so no httpx exception (which holds the
request and so the header) is chained to them, and every message is scrubbed of the token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx

from syncbus_shared.contracts import AnalysisDimension, ErrorClass, Voucher, VoucherLine

from .base import AdapterError, BatchReceipt, ProbeResult, VendorAdapter
from .pacing import XLEDGER_RULES, credential_identity, pacer_for, parse_rules

BURST_RATE_LIMIT_REACHED = "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
CONCURRENCY_LIMIT_REACHED = "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"
INSUFFICIENT_CREDITS = "BAD_REQUEST.INSUFFICIENT_CREDITS"

BURST_RETRY_AFTER_SECONDS = 5.0
QUOTA_RETRY_AFTER_SECONDS = 20 * 60.0
XLEDGER_TIME_ZONE = ZoneInfo("Europe/Oslo")

DEFAULT_DIMENSIONS: Mapping[str, str] = {"A": "glObject1", "P": "project"}
DIMENSION_TARGETS = frozenset(
    {"glObject1", "glObject2", "glObject3", "glObject4", "glObject5", "project"}
)
_GRAPHQL_INT_MAX = 2**31 - 1

PROBE_QUERY = "query { __typename }"

EXPORT_MUTATION = """
mutation ExportVouchers($inputs: [AddGLImportItemsInput!]!) {
  addGLImportItems(inputs: $inputs) {
    edges { clientId node { dbId } }
  }
}
"""

LOOKUP_QUERY = """
query LookupVouchers($first: Int, $after: String, $ids: [String!]) {
  glImportItems(first: $first, after: $after, filter: { extIdentifier_in: $ids }) {
    edges { cursor node { dbId extIdentifier } }
    pageInfo { hasNextPage }
  }
}
"""


def decimal_text(value: Decimal) -> str:
    """A decimal string with at least two decimals and no exponent: -12500 -> "-12500.00"."""
    if value == 0:
        value = Decimal(0)  # no "-0.00"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


def parse_dimension_map(text: str | None) -> dict[str, str]:
    """`"A=glObject1,P=project"` -> {"A": "glObject1", "P": "project"}."""
    if text is None:
        return dict(DEFAULT_DIMENSIONS)
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, sep, target = part.partition("=")
        kind, target = kind.strip(), target.strip()
        if not sep or not kind or target not in DIMENSION_TARGETS:
            raise AdapterError(
                ErrorClass.CONFIGURATION,
                f"xledger option dimensions: {part.strip()!r} is not TYPE=TARGET with TARGET one"
                f" of {', '.join(sorted(DIMENSION_TARGETS))}",
            )
        mapping[kind] = target
    return mapping


def _ref(code: str) -> dict[str, str]:
    return {"code": code}


@dataclass(frozen=True)
class _Call:
    """What one GraphQL call is, for classifying its failures."""

    name: str
    writes: bool


_EXPORT = _Call("addGLImportItems", writes=True)
_LOOKUP = _Call("glImportItems", writes=False)
_PING = _Call("__typename", writes=False)


class XledgerAdapter(VendorAdapter):
    name: ClassVar[str] = "xledger"
    max_lines_per_call: ClassVar[int] = 500
    lookup_page_size: ClassVar[int] = 10_000
    """Xledger returns at most 10,000 records per query (`options["lookup_page_size"]`)."""
    lookup_ids_per_query: ClassVar[int] = 500

    # ---- the three calls -----------------------------------------------------------------

    async def export_batch(self, vouchers: Sequence[Voucher]) -> BatchReceipt:
        if not vouchers:
            return BatchReceipt(voucher_ids=())
        inputs = self.build_inputs(vouchers)
        data = await self._call(EXPORT_MUTATION, {"inputs": inputs}, _EXPORT)
        edges = _edges(data, "addGLImportItems")
        refs = []
        for edge in edges:
            node = edge.get("node") if isinstance(edge, dict) else None
            db_id = node.get("dbId") if isinstance(node, dict) else None
            if db_id is None:
                raise self._error(
                    ErrorClass.AMBIGUOUS, "Xledger answered the export with an edge without a dbId"
                )
            refs.append(str(db_id))
        if len(refs) != len(inputs):
            raise self._error(
                ErrorClass.AMBIGUOUS,
                f"Xledger confirmed {len(refs)} of {len(inputs)} lines of the export",
            )
        return BatchReceipt(
            voucher_ids=tuple(v.voucher_id for v in vouchers), vendor_refs=tuple(refs)
        )

    async def lookup(self, voucher_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        wanted = list(dict.fromkeys(voucher_ids))
        found: dict[str, list[str]] = {}
        for start in range(0, len(wanted), self.lookup_ids_per_query):
            chunk = wanted[start : start + self.lookup_ids_per_query]
            asked = set(chunk)
            after: str | None = None
            while True:
                variables = {"first": self._page_size(), "after": after, "ids": chunk}
                data = await self._call(LOOKUP_QUERY, variables, _LOOKUP)
                connection = data.get("glImportItems") if isinstance(data, dict) else None
                edges = _edges(data, "glImportItems")
                for edge in edges:
                    node = edge.get("node") or {}
                    ext, db_id = node.get("extIdentifier"), node.get("dbId")
                    if isinstance(ext, str) and ext in asked and db_id is not None:
                        found.setdefault(ext, []).append(str(db_id))
                page_info = connection.get("pageInfo") if isinstance(connection, dict) else None
                has_next = isinstance(page_info, dict) and page_info.get("hasNextPage") is True
                if not has_next or not edges:
                    break
                after = edges[-1].get("cursor")
                if not isinstance(after, str):
                    break
        return {voucher_id: tuple(refs) for voucher_id, refs in found.items()}

    async def ping(self) -> ProbeResult:
        started = time.perf_counter()
        await self._call(PROBE_QUERY, None, _PING)
        return ProbeResult(latency_ms=(time.perf_counter() - started) * 1000.0)

    # ---- mapping -------------------------------------------------------------------------

    def build_inputs(self, vouchers: Sequence[Voucher]) -> list[dict[str, Any]]:
        """The `inputs` variable of one addGLImportItems call. Raises AdapterError(DATA)."""
        seen: set[str] = set()
        for voucher in vouchers:
            if voucher.voucher_id in seen:
                raise self._error(
                    ErrorClass.DATA, f"voucher {voucher.voucher_id} appears twice in one batch"
                )
            seen.add(voucher.voucher_id)
        lines = sum(self.vendor_lines(v) for v in vouchers)
        if lines > self.max_lines_per_call:
            raise self._error(
                ErrorClass.DATA,
                f"a batch of {lines} lines is more than Xledger takes in one call"
                f" ({self.max_lines_per_call}); nothing was sent",
            )
        dimensions = parse_dimension_map(self.context.options.get("dimensions"))
        source = self.context.options.get("transaction_source")
        inputs: list[dict[str, Any]] = []
        for voucher in vouchers:
            for line in voucher.lines:
                client_id = f"{voucher.voucher_id}#{line.record_id}"
                parts = self._parts(voucher, line, dimensions)
                for n, (amount, refs) in enumerate(parts, start=1):
                    node = self._node(voucher, line, source)
                    node["amount"] = decimal_text(amount)
                    node.update(refs)
                    inputs.append(
                        {
                            "clientId": client_id if len(parts) == 1 else f"{client_id}.{n}",
                            "node": node,
                        }
                    )
        return inputs

    def vendor_lines(self, voucher: Voucher) -> int:
        dimensions = parse_dimension_map(self.context.options.get("dimensions"))
        return sum(len(self._parts(voucher, line, dimensions)) for line in voucher.lines)

    def _parts(
        self, voucher: Voucher, line: VoucherLine, dimensions: Mapping[str, str]
    ) -> list[tuple[Decimal, dict[str, Any]]]:
        """The Xledger lines one voucher line becomes: (signed amount, dimension fields) each."""
        by_target: dict[str, list[AnalysisDimension]] = {}
        for dimension in line.dimensions:
            target = dimensions.get(dimension.analysis_type)
            if target is not None:
                by_target.setdefault(target, []).append(dimension)
        fixed = {t: _ref(ds[0].analysis_id) for t, ds in by_target.items() if len(ds) == 1}
        split = {t: ds for t, ds in by_target.items() if len(ds) > 1}
        where = f"voucher {voucher.voucher_id} line {line.record_id}"
        if not split:
            return [(line.signed_amount, fixed)]
        if len(split) > 1:
            raise self._error(
                ErrorClass.DATA,
                f"{where} splits its amount over {' and '.join(sorted(split))} at once;"
                " Xledger lines carry one value per field",
            )
        [(target, entries)] = split.items()
        amounts = [d.amount for d in entries]
        total = abs(line.signed_amount)
        if any(a is None for a in amounts) or sum(a for a in amounts if a is not None) != total:
            raise self._error(
                ErrorClass.DATA,
                f"{where} has {len(entries)} values for Xledger's {target} whose amounts do not"
                f" add up to the line's {total}",
            )
        sign = Decimal(1) if line.signed_amount >= 0 else Decimal(-1)
        return [
            (sign * d.amount, {**fixed, target: _ref(d.analysis_id)})
            for d in entries
            if d.amount is not None
        ]

    def _node(self, voucher: Voucher, line: VoucherLine, source: str | None) -> dict[str, Any]:
        node: dict[str, Any] = {
            "extIdentifier": voucher.voucher_id,
            "postedDate": voucher.posting_date.isoformat(),
            "invoiceDate": voucher.transaction_date.isoformat(),
            "account": _ref(line.account_id),
            "amount": decimal_text(line.signed_amount),
        }
        text = line.description or voucher.description
        if text:
            node["text"] = text
        number = voucher.transaction_id
        if number is not None and number.isascii() and number.isdigit():
            value = int(number)
            if value <= _GRAPHQL_INT_MAX:
                node["trRegNumber"] = value
        if source:
            node["transactionSource"] = _ref(source)
        if line.tax_code:
            node["taxRule"] = _ref(line.tax_code)
        subledger = line.customer_id or line.supplier_id
        if subledger:
            node["subledger"] = _ref(subledger)
        currency = line.currency or voucher.currency
        if currency:
            node["currency"] = _ref(currency)
        if line.exchange_rate is not None:
            node["exchangeRate"] = format(line.exchange_rate, "f")
        if line.source_document_id:
            node["invoiceNumber"] = line.source_document_id
        return node

    # ---- HTTP and errors -----------------------------------------------------------------

    def _page_size(self) -> int:
        raw = self.context.options.get("lookup_page_size")
        if raw is None:
            return self.lookup_page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.lookup_page_size:
            raise self._error(
                ErrorClass.CONFIGURATION,
                f"xledger option lookup_page_size must be 1..{self.lookup_page_size}",
            )
        return size

    def _headers(self) -> dict[str, str]:
        secret = self._secret()
        if not secret or not all("\x21" <= ch <= "\x7e" for ch in secret):
            # httpx would refuse the header with a message that quotes its value.
            raise self._error(
                ErrorClass.AUTH,
                "the Xledger API token is empty or has characters an HTTP header cannot carry",
            )
        return {
            "Authorization": f"token {secret}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _timeout(self) -> httpx.Timeout:
        seconds = self.context.timeout_seconds
        return httpx.Timeout(seconds, connect=min(seconds, 10.0))

    async def _call(self, query: str, variables: dict[str, Any] | None, call: _Call) -> Any:
        """POST one GraphQL request; return its `data`, or raise a classified AdapterError."""
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        headers = self._headers()
        failure: AdapterError | None = None
        response: httpx.Response | None = None
        # Every call of this credential in this process, exports and probes alike, goes
        # through one pacer that keeps within Xledger's burst window (pacing.py).
        pacer = pacer_for(
            self.name,
            credential_identity(self.context.credential),
            parse_rules(XLEDGER_RULES, self.context.options),
        )
        try:
            async with pacer.slot():
                response = await self.context.http.post(
                    self.context.endpoint, json=body, headers=headers, timeout=self._timeout()
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            failure = self._error(
                ErrorClass.RETRYABLE,
                f"could not reach Xledger ({type(exc).__name__}); nothing was sent",
            )
        except httpx.TransportError as exc:
            failure = self._after_send_failure(call, f"{type(exc).__name__}: {exc}")
        if failure is not None:
            raise failure
        assert response is not None
        try:
            return self._read(response, call)
        except AdapterError as exc:
            if exc.vendor_code == BURST_RATE_LIMIT_REACHED or response.status_code == 429:
                pacer.hold(exc.retry_after or BURST_RETRY_AFTER_SECONDS)
            raise

    def _after_send_failure(self, call: _Call, what: str) -> AdapterError:
        if call.writes:
            return self._error(
                ErrorClass.AMBIGUOUS,
                f"the {call.name} request was sent but no answer came back ({what});"
                " Xledger may have posted it: look it up before sending again",
            )
        return self._error(ErrorClass.RETRYABLE, f"the {call.name} request got no answer ({what})")

    def _read(self, response: httpx.Response, call: _Call) -> Any:
        status = response.status_code
        retry_after = _retry_after_header(response)
        if status in {401, 403}:
            raise self._error(
                ErrorClass.AUTH,
                f"Xledger refused the API token (HTTP {status})",
                status_code=status,
            )
        if status == 429:
            raise self._error(
                ErrorClass.RETRYABLE,
                "Xledger answered HTTP 429 Too Many Requests",
                retry_after=retry_after,
                status_code=status,
            )
        if status >= 500:
            error_class = (
                ErrorClass.AMBIGUOUS if status == 504 and call.writes else ErrorClass.RETRYABLE
            )
            raise self._error(
                error_class,
                f"Xledger answered HTTP {status} to {call.name}",
                retry_after=retry_after,
                status_code=status,
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if status >= 400:
                raise self._error(
                    ErrorClass.DATA,
                    f"Xledger refused {call.name} (HTTP {status})",
                    status_code=status,
                )
            raise self._after_send_failure(call, f"HTTP {status} with a body that is not JSON")
        errors = payload.get("errors")
        if errors:
            raise self._classify(errors, payload.get("data"), call, status)
        if status >= 400:
            raise self._error(
                ErrorClass.DATA, f"Xledger refused {call.name} (HTTP {status})", status_code=status
            )
        if "data" not in payload or payload["data"] is None:
            raise self._after_send_failure(call, "an answer without data")
        return payload["data"]

    def _classify(self, errors: Any, data: Any, call: _Call, status: int) -> AdapterError:
        entries = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        codes = [e.get("code") for e in entries if isinstance(e.get("code"), str)]
        messages = [str(e.get("message", "")) for e in entries]
        joined = "; ".join(m for m in messages if m) or "Xledger answered with an error"
        if INSUFFICIENT_CREDITS in codes:
            entry = next(e for e in entries if e.get("code") == INSUFFICIENT_CREDITS)
            return self._error(
                ErrorClass.QUOTA,
                joined,
                vendor_code=INSUFFICIENT_CREDITS,
                retry_after=_seconds_until_reset(entry.get("extensions")),
                status_code=status,
            )
        if BURST_RATE_LIMIT_REACHED in codes:
            return self._error(
                ErrorClass.RETRYABLE,
                joined,
                vendor_code=BURST_RATE_LIMIT_REACHED,
                retry_after=BURST_RETRY_AFTER_SECONDS,
                status_code=status,
            )
        if CONCURRENCY_LIMIT_REACHED in codes:
            return self._error(
                ErrorClass.RETRYABLE,
                joined,
                vendor_code=CONCURRENCY_LIMIT_REACHED,
                status_code=status,
            )
        lowered = [m.lower() for m in messages]
        if any("api token" in m or m.startswith("authentication failed") for m in lowered):
            return self._error(
                ErrorClass.AUTH, joined, vendor_code=_first(codes), status_code=status
            )
        if any("timed out" in m for m in lowered):
            return self._error(
                ErrorClass.AMBIGUOUS if call.writes else ErrorClass.RETRYABLE,
                joined,
                vendor_code=_first(codes),
                status_code=status,
            )
        if call.writes and _edges(data, call.name):
            return self._error(
                ErrorClass.AMBIGUOUS,
                f"Xledger posted some lines and refused others: {joined}",
                vendor_code=_first(codes),
                status_code=status,
            )
        return self._error(ErrorClass.DATA, joined, vendor_code=_first(codes), status_code=status)


def _first(codes: list[Any]) -> str | None:
    return str(codes[0]) if codes else None


def _edges(data: Any, field: str) -> list[dict[str, Any]]:
    connection = data.get(field) if isinstance(data, dict) else None
    edges = connection.get("edges") if isinstance(connection, dict) else None
    return [edge for edge in edges if isinstance(edge, dict)] if isinstance(edges, list) else []


def _retry_after_header(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _seconds_until_reset(extensions: Any) -> float:
    """Seconds until `extensions.resetAt`; naive times are CET/CEST (Xledger's local time)."""
    raw = extensions.get("resetAt") if isinstance(extensions, dict) else None
    if not isinstance(raw, str):
        return QUOTA_RETRY_AFTER_SECONDS
    try:
        reset = datetime.fromisoformat(raw)  # 3.11 reads a trailing Z too
    except ValueError:
        return QUOTA_RETRY_AFTER_SECONDS
    if reset.tzinfo is None:
        reset = reset.replace(tzinfo=XLEDGER_TIME_ZONE)
    return max((reset - datetime.now(UTC)).total_seconds(), 0.0)
