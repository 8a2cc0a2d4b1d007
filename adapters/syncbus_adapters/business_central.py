"""Business Central (API v2.0): vouchers as general journal lines, posted one journal per batch.

One `export_batch`:

    1. POST  companies({c})/journals  {"code": "SB<8>", "displayName": ...}      a journal of
         its own, its code derived from the batch's voucher ids; when a journal with that code
         is left from an earlier attempt (lines added, never posted) it is deleted first, and
         its lines with it, so nothing is sent twice into one journal
    2. POST  $batch  (Isolation: snapshot, at most 100 operations each)          the lines
    3. POST  companies({c})/journals({j})/Microsoft.NAV.post                    -> 204
    4. DELETE companies({c})/journals({j})  (If-Match: *)                        tidy up; a
         failure here is ignored: the journal is empty after the post

Only step 3 can leave the books in doubt: a timeout, a dropped connection, 408, 502 or 504 on
the post is AMBIGUOUS, and the dispatcher then calls `lookup`, which asks
`generalLedgerEntries?$filter=documentNumber eq '...'` (one GET per voucher, up to 100 of them
in one `$batch`) before anything is sent again. A post is one transaction, so a batch's
vouchers are either all posted or none. Failures before the post leave at most unposted lines
in a journal of ours: they are RETRYABLE (or DATA), never AMBIGUOUS.

A voucher line becomes one journal line:

    lineNumber              10000, 20000, ... in batch order (so a retry sends the same)
    accountType             "G/L Account"          accountNumber  line.account_id (<= 20)
    postingDate             voucher.posting_date
    documentNumber          `document_number(voucher_id)`: "SB" + 18 characters of base32 of the
                            voucher id's SHA-256; 20 characters, upper case (Business Central
                            stores Code fields in upper case), the same on every attempt
    externalDocumentNumber  `external_reference(voucher_id)`: the voucher id when it fits in
                            35 characters, else its first 26, "~" and 8 hash characters
    amount                  the signed amount (debit positive), rounded half up to 0.01; the
                            rounded lines of each voucher must still add up to zero, or the
                            batch is refused (DATA) before anything is sent
    description             line.description, else the voucher's, cut to 100 characters
                            (`options["description_length"]`; the older API takes 50)
    comment                 "<voucher_id>#<record_id>", cut to 250: which SAF-T line it was

Not mapped (the API's journal lines have no field for them, or they need set-up in Business
Central that syncbus cannot assume): currencies (amounts are posted in the local currency the
voucher carries), tax codes (`taxCode` must name a tax group of that company), analysis
dimensions (separate `dimensionSetLines`), customer and supplier ids (need `accountType`
Customer/Vendor, which journal lines of this API do not take).

Where the company is (`AdapterContext.endpoint` and `options`):

    endpoint  https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}/api/v2.0
              optionally followed by /companies({id})
    or        https://api.businesscentral.dynamics.com with options tenant and environment
    options   company_id, or company_name (looked up once per adapter instance)

Pacing (`pacing.py`): every request goes through the pacer of this credential (6,000 per
sliding 5 minutes, 5 at once; `options["rate_limit"]` = "N/SECONDS", `options["max_concurrent"]`),
shared with every other export and probe of the same service principal in the process. A 429
holds that pacer back for the `Retry-After` it carries, or, since Business Central often sends
none, for min(window, 5 s).

Errors (see `base.py`):

    401 (JSON, or XML for a wrong audience), an access token past its `exp`   AUTH
    429 Application_TooManyRequests, 500, 503, connection refused           RETRYABLE
    400/404/409/413 with the OData envelope (validation, out of balance...) DATA
    408, 502, 504, read timeout or dropped connection on the post          AMBIGUOUS
    the same on any other call (nothing was posted)                         RETRYABLE

The access token goes only into the `Authorization: Bearer` header; errors are raised outside
`except` blocks (no httpx exception, which holds the request, is chained to them) and every
message is scrubbed of the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from syncbus_shared.contracts import ErrorClass, Voucher

from .base import AdapterContext, AdapterError, BatchReceipt, ProbeResult, VendorAdapter
from .pacing import BUSINESS_CENTRAL_RULES, Pacer, credential_identity, pacer_for, parse_rules

__all__ = [
    "BusinessCentralAdapter",
    "document_number",
    "external_reference",
    "journal_code",
]

CENT = Decimal("0.01")
DOCUMENT_NUMBER_LENGTH = 20
EXTERNAL_DOCUMENT_NUMBER_LENGTH = 35
ACCOUNT_NUMBER_LENGTH = 20
JOURNAL_CODE_LENGTH = 10
COMMENT_LENGTH = 250
DEFAULT_DESCRIPTION_LENGTH = 100
PREFIX = "SB"
_API_ROOT = re.compile(r"^(?P<root>.+?/api/v2\.0)(?:/companies\((?P<company>[^)]+)\))?/?$")
_AMBIGUOUS_STATUSES = frozenset({408, 502, 504})


def _base32(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:length]


def document_number(voucher_id: str) -> str:
    """The voucher's documentNumber: "SB" + 18 base32 characters of SHA-256(voucher id)."""
    return PREFIX + _base32(voucher_id, DOCUMENT_NUMBER_LENGTH - len(PREFIX))


def external_reference(voucher_id: str) -> str:
    """Our reference in externalDocumentNumber (<= 35): the voucher id, or a cut with a hash."""
    if len(voucher_id) <= EXTERNAL_DOCUMENT_NUMBER_LENGTH:
        return voucher_id
    return f"{voucher_id[:26]}~{_base32(voucher_id, 8)}"


def journal_code(voucher_ids: Sequence[str]) -> str:
    """The code of the batch's own journal: "SB" + 8 base32 characters of the sorted ids."""
    return PREFIX + _base32("\n".join(sorted(voucher_ids)), JOURNAL_CODE_LENGTH - len(PREFIX))


def _json_bytes(value: Any) -> bytes:
    """JSON in which a Decimal is a JSON number with exactly its digits (never a float)."""
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
    text = re.sub(f'"{marker}:([0-9]+)"', lambda m: format(numbers[int(m.group(1))], "f"), text)
    return text.encode("utf-8")


def _quoted(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Call:
    name: str
    posts: bool = False
    """True for Microsoft.NAV.post: the one call whose lost answer leaves the books in doubt."""


_CREATE_JOURNAL = _Call("create journal")
_FIND_JOURNAL = _Call("find journal")
_DELETE_JOURNAL = _Call("delete journal")
_ADD_LINES = _Call("add journal lines ($batch)")
_POST = _Call("post journal", posts=True)
_LOOKUP = _Call("look up documents ($batch)")
_PING = _Call("companies?$top=1")
_COMPANY = _Call("find company")


@dataclass
class _Answer:
    status: int
    body: Any
    headers: httpx.Headers


class BusinessCentralAdapter(VendorAdapter):
    name: ClassVar[str] = "business_central"
    max_lines_per_call: ClassVar[int] = 500
    """One export call posts one journal; its lines go in `$batch` chunks of 100."""
    batch_operations: ClassVar[int] = 100
    """Business Central takes at most 100 operations in one `$batch`."""

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(context)
        options = context.options
        match = _API_ROOT.match(context.endpoint.strip())
        company: str | None = None
        if match is not None:
            self.api_root = match.group("root")
            company = match.group("company")
        elif options.get("tenant") and options.get("environment"):
            base = context.endpoint.rstrip("/")
            self.api_root = f"{base}/v2.0/{options['tenant']}/{options['environment']}/api/v2.0"
        else:
            raise AdapterError(
                ErrorClass.CONFIGURATION,
                "business_central endpoint must be the API root .../v2.0/{tenant}/{environment}"
                "/api/v2.0 (optionally with /companies({id})), or the service URL with options "
                "tenant and environment",
            )
        company = options.get("company_id") or company
        self._company_id = company.strip("'").lower() if company else None
        self._company_name = options.get("company_name")
        if self._company_id is None and not self._company_name:
            raise AdapterError(
                ErrorClass.CONFIGURATION,
                "business_central needs the company: /companies({id}) in the endpoint, or "
                "option company_id or company_name",
            )
        try:
            rules = parse_rules(BUSINESS_CENTRAL_RULES, options)
            raw_length = options.get("description_length", str(DEFAULT_DESCRIPTION_LENGTH))
            self.description_length = int(raw_length)
        except ValueError as exc:
            raise AdapterError(ErrorClass.CONFIGURATION, f"business_central {exc}") from None
        if self.description_length < 1:
            raise AdapterError(
                ErrorClass.CONFIGURATION, "business_central option description_length must be >= 1"
            )
        self.pacer: Pacer | None = None
        self._rules = rules

    # ---- the interface --------------------------------------------------------------------

    async def export_batch(self, vouchers: Sequence[Voucher]) -> BatchReceipt:
        if not vouchers:
            return BatchReceipt(voucher_ids=())
        lines = self.build_lines(vouchers)
        company = await self._company()
        code = journal_code([v.voucher_id for v in vouchers])
        journal_id = await self._fresh_journal(company, code, vouchers)
        journal = f"companies({company})/journals({journal_id})"
        try:
            for start in range(0, len(lines), self.batch_operations):
                chunk = lines[start : start + self.batch_operations]
                await self._add_lines(journal, chunk, start)
            await self._post(journal)
        except AdapterError as exc:
            if exc.error_class is ErrorClass.DATA:
                await self._tidy(journal)  # the journal's lines would never be posted
            raise
        await self._tidy(journal)
        return BatchReceipt(
            voucher_ids=tuple(v.voucher_id for v in vouchers),
            vendor_refs=tuple(document_number(v.voucher_id) for v in vouchers),
        )

    async def lookup(self, voucher_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        wanted = list(dict.fromkeys(voucher_ids))
        if not wanted:
            return {}
        company = await self._company()
        found: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(wanted), self.batch_operations):
            chunk = wanted[start : start + self.batch_operations]
            operations = []
            for n, voucher_id in enumerate(chunk):
                number = document_number(voucher_id)
                query = f"$filter={quote(f'documentNumber eq {_quoted(number)}', safe=chr(39))}"
                operations.append(
                    {
                        "id": str(n),
                        "method": "GET",
                        "url": f"companies({company})/generalLedgerEntries?{query}&$top=1",
                    }
                )
            answer = await self._send("POST", "$batch", _LOOKUP, body={"requests": operations})
            ids = [str(n) for n in range(len(chunk))]
            answers = self._operation_answers(answer, _LOOKUP, ids)
            for n, voucher_id in enumerate(chunk):
                if _values(answers[str(n)].get("body")):
                    found[voucher_id] = (document_number(voucher_id),)
        return found

    async def ping(self) -> ProbeResult:
        started = time.perf_counter()
        await self._send("GET", "companies?$top=1", _PING)
        return ProbeResult(latency_ms=(time.perf_counter() - started) * 1000.0)

    async def warm_up(self) -> ProbeResult:
        """One cheap call (it proves the token), then the company id when given by name."""
        result = await self.ping()
        await self._company()
        return result

    # ---- mapping ----------------------------------------------------------------------------

    def build_lines(self, vouchers: Sequence[Voucher]) -> list[dict[str, Any]]:
        """The journal lines of one batch, in order. Raises AdapterError(DATA) before sending."""
        seen: set[str] = set()
        count = sum(len(v.lines) for v in vouchers)
        if count > self.max_lines_per_call:
            raise self._error(
                ErrorClass.DATA,
                f"a batch of {count} lines is more than one Business Central journal post takes "
                f"here ({self.max_lines_per_call}); nothing was sent",
            )
        lines: list[dict[str, Any]] = []
        for voucher in vouchers:
            if voucher.voucher_id in seen:
                raise self._error(
                    ErrorClass.DATA, f"voucher {voucher.voucher_id} appears twice in one batch"
                )
            seen.add(voucher.voucher_id)
            rounded = [line.signed_amount.quantize(CENT, ROUND_HALF_UP) for line in voucher.lines]
            off = sum(rounded, Decimal(0))
            if off != 0:
                raise self._error(
                    ErrorClass.DATA,
                    f"voucher {voucher.voucher_id} does not balance once its amounts are rounded "
                    f"to 0.01 (off by {off}); Business Central would refuse it, nothing was sent",
                )
            number = document_number(voucher.voucher_id)
            reference = external_reference(voucher.voucher_id)
            for line, amount in zip(voucher.lines, rounded, strict=True):
                if len(line.account_id) > ACCOUNT_NUMBER_LENGTH:
                    raise self._error(
                        ErrorClass.DATA,
                        f"voucher {voucher.voucher_id} line {line.record_id}: account "
                        f"{line.account_id!r} is longer than Business Central's "
                        f"{ACCOUNT_NUMBER_LENGTH} characters",
                    )
                entry: dict[str, Any] = {
                    "lineNumber": (len(lines) + 1) * 10_000,
                    "accountType": "G/L Account",
                    "accountNumber": line.account_id,
                    "postingDate": voucher.posting_date.isoformat(),
                    "documentNumber": number,
                    "externalDocumentNumber": reference,
                    "amount": amount if amount != 0 else Decimal("0.00"),
                    "comment": f"{voucher.voucher_id}#{line.record_id}"[:COMMENT_LENGTH],
                }
                text = line.description or voucher.description
                if text:
                    entry["description"] = _cut(text, self.description_length)
                lines.append(entry)
        return lines

    # ---- steps ------------------------------------------------------------------------------

    async def _company(self) -> str:
        if self._company_id is not None:
            return self._company_id
        name = self._company_name or ""
        path = f"companies?$filter={quote(f'name eq {_quoted(name)}', safe=chr(39))}"
        answer = await self._send("GET", path, _COMPANY)
        values = answer.body.get("value") if isinstance(answer.body, dict) else None
        ids = [v.get("id") for v in values or [] if isinstance(v, dict)]
        if not ids or not isinstance(ids[0], str):
            raise self._error(
                ErrorClass.CONFIGURATION, f"Business Central has no company named {name!r}"
            )
        self._company_id = ids[0].lower()
        return self._company_id

    async def _fresh_journal(self, company: str, code: str, vouchers: Sequence[Voucher]) -> str:
        first = vouchers[0].voucher_id
        more = f" +{len(vouchers) - 1}" if len(vouchers) > 1 else ""
        body = {"code": code, "displayName": _cut(f"syncbus {first}{more}", 100)}
        path = f"companies({company})/journals"
        answer = await self._send("POST", path, _CREATE_JOURNAL, body=body, accept={201, 400})
        if answer.status == 400 and _code_of(answer.body) == "Internal_EntityWithSameKeyExists":
            # An earlier attempt of this batch left its journal: drop it with its lines.
            query = f"$filter={quote(f'code eq {_quoted(code)}', safe=chr(39))}"
            found = await self._send("GET", f"{path}?{query}", _FIND_JOURNAL)
            for old in _values(found.body):
                etag = old.get("@odata.etag") or "*"
                await self._send(
                    "DELETE",
                    f"{path}({old.get('id')})",
                    _DELETE_JOURNAL,
                    headers={"If-Match": str(etag)},
                    accept={204, 404},
                )
            answer = await self._send("POST", path, _CREATE_JOURNAL, body=body)
        elif answer.status == 400:
            raise self._refusal(answer, _CREATE_JOURNAL)
        journal_id = answer.body.get("id") if isinstance(answer.body, dict) else None
        if not isinstance(journal_id, str):
            raise self._error(
                ErrorClass.RETRYABLE, "Business Central created the journal but sent no id"
            )
        return journal_id

    async def _add_lines(self, journal: str, chunk: list[dict[str, Any]], offset: int) -> None:
        operations = [
            {
                "id": str(offset + n),
                "method": "POST",
                "url": f"{journal}/journalLines",
                "headers": {"Content-Type": "application/json"},
                "body": line,
            }
            for n, line in enumerate(chunk)
        ]
        answer = await self._send(
            "POST",
            "$batch",
            _ADD_LINES,
            body={"requests": operations},
            headers={"Isolation": "snapshot"},
        )
        ids = [str(offset + n) for n in range(len(chunk))]
        answers = self._operation_answers(answer, _ADD_LINES, ids)
        if any(not isinstance(r.get("body"), dict) for r in answers.values()):
            raise self._error(ErrorClass.RETRYABLE, "Business Central's $batch answer lacks lines")

    async def _post(self, journal: str) -> None:
        await self._send("POST", f"{journal}/Microsoft.NAV.post", _POST, accept={204})

    async def _tidy(self, journal: str) -> None:
        try:
            await self._send(
                "DELETE", journal, _DELETE_JOURNAL, headers={"If-Match": "*"}, accept={204, 404}
            )
        except AdapterError:
            return  # an empty (or never to be posted) journal of ours stays behind; harmless

    # ---- HTTP, pacing and errors ------------------------------------------------------------

    def _pacer(self) -> Pacer:
        if self.pacer is None:
            identity = credential_identity(self.context.credential)
            self.pacer = pacer_for(self.name, identity, self._rules)
        return self.pacer

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        secret = self._secret()
        if not secret or not all("\x21" <= ch <= "\x7e" for ch in secret):
            raise self._error(
                ErrorClass.AUTH,
                "the Business Central access token is empty or has characters an HTTP header "
                "cannot carry",
            )
        expires = _expires_at(secret)
        if expires is not None and expires <= time.time():
            raise self._error(
                ErrorClass.AUTH,
                "the Business Central access token has expired; a fresh one is needed "
                "(nothing was sent)",
            )
        return {
            "Authorization": f"Bearer {secret}",
            "Accept": "application/json",
            "Content-Type": "application/json",
            **(extra or {}),
        }

    def _timeout(self) -> httpx.Timeout:
        seconds = self.context.timeout_seconds
        return httpx.Timeout(seconds, connect=min(seconds, 10.0))

    async def _send(
        self,
        method: str,
        path: str,
        call: _Call,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        accept: set[int] | None = None,
    ) -> _Answer:
        """One request, paced; the answer when its status is accepted, else a classified error."""
        url = f"{self.api_root}/{path}"
        all_headers = self._headers(headers)
        content = _json_bytes(body) if body is not None else None
        pacer = self._pacer()
        failure: AdapterError | None = None
        response: httpx.Response | None = None
        async with pacer.slot():
            try:
                response = await self.context.http.request(
                    method, url, content=content, headers=all_headers, timeout=self._timeout()
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure = self._error(
                    ErrorClass.RETRYABLE,
                    f"could not reach Business Central ({type(exc).__name__}); nothing was sent",
                )
            except httpx.TransportError as exc:
                failure = self._lost(call, type(exc).__name__)
        if failure is not None:
            raise failure
        assert response is not None
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response)
            pacer.hold(
                retry_after if retry_after is not None else min(self._rules.window_seconds, 5.0)
            )
        parsed = _parse_body(response)
        answer = _Answer(status, parsed, response.headers)
        if accept is not None and status in accept:
            return answer
        if accept is None and 200 <= status < 300:
            return answer
        raise self._classify(answer, call, _retry_after(response))

    def _lost(self, call: _Call, what: str) -> AdapterError:
        if call.posts:
            return self._error(
                ErrorClass.AMBIGUOUS,
                f"the {call.name} request was sent but no answer came back ({what}); Business "
                "Central may have posted it: look the documents up before sending again",
            )
        return self._error(
            ErrorClass.RETRYABLE,
            f"the {call.name} request got no answer ({what}); nothing was posted",
        )

    def _classify(self, answer: _Answer, call: _Call, retry_after: float | None) -> AdapterError:
        status = answer.status
        code, message = _code_of(answer.body), _message_of(answer.body)
        shown = (
            f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        )
        if status in {401, 403}:
            return self._error(
                ErrorClass.AUTH,
                f"Business Central refused the access token ({shown})",
                vendor_code=code,
                status_code=status,
            )
        if call.posts and status in _AMBIGUOUS_STATUSES:
            return self._error(
                ErrorClass.AMBIGUOUS,
                f"Business Central answered the post with {shown}; it may have posted: look the "
                "documents up before sending again",
                vendor_code=code,
                retry_after=retry_after,
                status_code=status,
            )
        if status == 429 or status >= 500 or status == 408:
            return self._error(
                ErrorClass.RETRYABLE,
                f"Business Central answered {call.name} with {shown}",
                vendor_code=code,
                retry_after=retry_after,
                status_code=status,
            )
        return self._error(
            ErrorClass.DATA,
            f"Business Central refused {call.name}: {shown}",
            vendor_code=code,
            status_code=status,
        )

    def _refusal(self, answer: _Answer, call: _Call) -> AdapterError:
        return self._classify(answer, call, _retry_after_headers(answer.headers))

    def _operation_answers(
        self, answer: _Answer, call: _Call, ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The operations' answers of a `$batch`, by operation id; a failed operation raises."""
        responses = answer.body.get("responses") if isinstance(answer.body, dict) else None
        if not isinstance(responses, list):
            raise self._error(
                ErrorClass.RETRYABLE, f"Business Central's answer to {call.name} has no responses"
            )
        by_id = {
            str(r.get("id")): r
            for r in responses
            if isinstance(r, dict) and str(r.get("id")) in ids
        }
        failures = [
            (op_id, r)
            for op_id, r in by_id.items()
            if not isinstance(r.get("status"), int) or int(r["status"]) >= 400
        ]
        if failures:
            # The operation that failed, not the ones rolled back because of it (424).
            failures.sort(key=lambda item: item[1].get("status") == 424)
            op_id, failed = failures[0]
            raw_status = failed.get("status")
            status = raw_status if isinstance(raw_status, int) else 500
            raw_headers = failed.get("headers")
            headers = httpx.Headers(raw_headers if isinstance(raw_headers, dict) else {})
            inner = _Answer(status, failed.get("body"), headers)
            error = self._classify(inner, call, _retry_after_headers(headers))
            raise self._error(
                error.error_class,
                f"{error.message} (operation {op_id} of the $batch)",
                vendor_code=error.vendor_code,
                retry_after=error.retry_after,
                status_code=status,
            )
        if len(by_id) != len(ids):
            raise self._error(
                ErrorClass.RETRYABLE,
                f"Business Central answered {len(by_id)} of {len(ids)} operations of {call.name}",
            )
        return by_id


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _parse_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return response.text


def _code_of(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
    if isinstance(body, str):
        match = re.search(r"<code>([^<]{1,100})</code>", body)
        if match:
            return match.group(1)
    return None


def _message_of(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = str(error["message"])
            return re.sub(r"\s+CorrelationId:\s+[0-9a-fA-F-]+\.?\s*$", "", message).strip()
    if isinstance(body, str):
        match = re.search(r"<message>([^<]{1,300})</message>", body)
        if match:
            return match.group(1)
        text = body.strip()
        return text[:200] if text else None
    return None


def _values(body: Any) -> list[dict[str, Any]]:
    values = body.get("value") if isinstance(body, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _retry_after_headers(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    return _retry_after_headers(response.headers)


def _expires_at(token: str) -> float | None:
    """The `exp` claim of a JWT access token (read, not verified), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
