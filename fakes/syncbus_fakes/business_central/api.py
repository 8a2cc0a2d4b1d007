"""The API root's resources, as one function from a request to a result (used by `$batch` too).

Paths are relative to `.../v2.0/{tenant}/{environment}/api/v2.0`:

    GET    companies                                   list ($filter, $top, $skip, paging)
    GET    companies({id})
    GET    companies({id})/accounts                    the chart of accounts, when one is set
    GET    companies({id})/journals                    list
    POST   companies({id})/journals                    {"code" (<= 10), "displayName"} -> 201
    GET    companies({id})/journals({id})
    PATCH  companies({id})/journals({id})              If-Match required
    DELETE companies({id})/journals({id})              If-Match required; deletes its lines
    GET    companies({id})/journals({id})/journalLines
    POST   companies({id})/journals({id})/journalLines  -> 201 with the line
    GET    companies({id})/journals({id})/journalLines({id})
    PATCH  companies({id})/journals({id})/journalLines({id})   If-Match required
    DELETE companies({id})/journals({id})/journalLines({id})   If-Match required
    POST   companies({id})/journals({id})/Microsoft.NAV.post   -> 204, or 400
    GET    companies({id})/generalLedgerEntries        list, e.g. $filter=documentNumber eq '...'
    GET    $metadata                                   a small CSDL document (XML)
    POST   $batch                                      see `Api.batch`

Journal line rules (the facts; Code fields are stored in upper case, as Business Central does):

    lineNumber              integer >= 0; 0 or missing: the next multiple of 10,000
    accountType             "G/L Account" (default) or "Bank Account"
    accountNumber           <= 20; must be in the chart of accounts when one is set
    postingDate             YYYY-MM-DD
    documentNumber          <= 20                externalDocumentNumber  <= 35
    amount                  a JSON number (positive debit, negative credit); any precision is
                            stored, but an amount not rounded to 0.01 fails at posting
    description             <= description_max_length (100; older API 50)
    comment                 <= 250               taxCode                 <= 20
    balanceAccountType      "G/L Account" or "Bank Account"
    balancingAccountNumber  <= 20
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .errors import (
    BATCH_ROLLED_BACK,
    DIALOG_EXCEPTION,
    ENTITY_CHANGED,
    ENTITY_CHANGED_MESSAGE,
    ENTITY_EXISTS,
    IF_MATCH_MISSING,
    INVALID_REQUEST_BODY,
    INVALID_TABLE_RELATION,
    INVALID_TOKEN,
    NOTHING_TO_POST,
    RESOURCE_NOT_FOUND,
    TOO_MANY_BATCH_OPERATIONS,
    ODataError,
    error_envelope,
    string_too_long,
)
from .odata import Segment, etag_matches, max_page_size, parse_filter, parse_path, read_query
from .state import ZERO_GUID, Company, Journal, JournalLine, Store

ACCOUNT_TYPES = ("G/L Account", "Bank Account")
CENT = Decimal("0.01")

_LINE_LIMITS: Mapping[str, int] = {
    "accountNumber": 20,
    "documentNumber": 20,
    "externalDocumentNumber": 35,
    "comment": 250,
    "taxCode": 20,
    "balancingAccountNumber": 20,
}
_CODE_FIELDS = frozenset({"accountNumber", "documentNumber", "externalDocumentNumber", "taxCode"})
_LINE_FIELDS = frozenset(
    {
        "lineNumber",
        "accountType",
        "accountId",
        "accountNumber",
        "postingDate",
        "documentNumber",
        "externalDocumentNumber",
        "amount",
        "description",
        "comment",
        "taxCode",
        "balanceAccountType",
        "balancingAccountId",
        "balancingAccountNumber",
    }
)
_READ_ONLY_LINE_FIELDS = frozenset(
    {"id", "journalId", "journalDisplayName", "lastModifiedDateTime"}
)
_JOURNAL_FIELDS = frozenset({"code", "displayName", "balancingAccountId", "balancingAccountNumber"})
_ENTRY_FIELDS = frozenset(
    {
        "id",
        "entryNumber",
        "postingDate",
        "documentNumber",
        "documentType",
        "externalDocumentNumber",
        "accountId",
        "accountNumber",
        "description",
        "debitAmount",
        "creditAmount",
        "lastModifiedDateTime",
    }
)
_COMPANY_FIELDS = frozenset({"id", "name", "displayName", "systemVersion", "businessProfileId"})
_JOURNAL_LIST_FIELDS = frozenset({"id", "code", "displayName", "lastModifiedDateTime"})
_LINE_LIST_FIELDS = frozenset({"id", "lineNumber", *_LINE_FIELDS})
_ACCOUNT_FIELDS = frozenset({"id", "number", "displayName", "category", "blocked"})

METADATA_XML = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
    '<edmx:DataServices><Schema Namespace="Microsoft.NAV" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
    '<EntityType Name="company"/><EntityType Name="journal"/><EntityType Name="journalLine"/>'
    '<EntityType Name="generalLedgerEntry"/><EntityType Name="account"/>'
    "</Schema></edmx:DataServices></edmx:Edmx>"
)


@dataclass
class ApiRequest:
    method: str
    path: str
    """Relative to the API root, without a leading slash."""
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    body: Any
    root_url: str
    """The absolute API root, for `@odata.context` and `@odata.nextLink`."""
    environment: str


@dataclass
class ApiResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None
    """None: JSON; otherwise the body is text of that type."""
    wrote: bool = False
    posted: bool = False

    @property
    def error_code(self) -> str | None:
        if self.status >= 400 and isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                return str(error["code"])
        return None


def _error(exc: ODataError) -> ApiResult:
    return ApiResult(exc.status, error_envelope(exc.code, exc.message))


def _not_found(what: str) -> ODataError:
    return ODataError(
        404,
        RESOURCE_NOT_FOUND,
        f"The {what} does not exist. Identification fields and values: Id='{{...}}'",
    )


def operation_label(method: str, path: str) -> str:
    """A short name for what a request does (stats, and which requests a fault hits)."""
    try:
        segments = parse_path(path)
    except ODataError:
        return "invalid"
    names = [s.name for s in segments]
    if names in (["$batch"], ["$metadata"]):
        return names[0]
    if not names:
        return "root"
    last = segments[-1]
    if last.name == "Microsoft.NAV.post":
        return "journals.post"
    if last.key is None:
        verb = {"GET": "list", "POST": "create"}.get(method, method.lower())
    else:
        verb = {"GET": "get", "PATCH": "update", "DELETE": "delete"}.get(method, method.lower())
    return f"{last.name}.{verb}"


class Api:
    def __init__(
        self,
        store: Store,
        *,
        max_batch_operations: Callable[[], int],
        max_page_size: Callable[[], int],
        description_max_length: Callable[[], int],
        accounts: Callable[[], frozenset[str] | None],
    ) -> None:
        self.store = store
        self._max_batch_operations = max_batch_operations
        self._max_page_size = max_page_size
        self._description_max_length = description_max_length
        self._accounts = accounts

    # ---- one request --------------------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiResult:
        try:
            return self._route(request)
        except ODataError as exc:
            return _error(exc)

    def _route(self, request: ApiRequest) -> ApiResult:
        segments = parse_path(request.path)
        method = request.method
        if [s.name for s in segments] == ["$metadata"] and method == "GET":
            return ApiResult(200, METADATA_XML, media_type="application/xml")
        if not segments or segments[0].name != "companies":
            raise ODataError(404, RESOURCE_NOT_FOUND, f"No resource at '{request.path}'.")
        companies = self.store.in_environment(request.environment)
        if len(segments) == 1:
            if segments[0].key is None and method == "GET":
                rows = [c.as_json() for c in companies]
                return self._list(request, "companies", rows, _COMPANY_FIELDS, "company")
            if segments[0].key is not None and method == "GET":
                return ApiResult(200, self._company(companies, segments[0].key).as_json())
            raise _method_not_allowed(method)
        company = self._company(companies, segments[0].key)
        rest = segments[1:]
        kind = rest[0].name
        if kind == "journals":
            return self._journals(request, company, rest)
        if kind == "generalLedgerEntries" and len(rest) == 1 and rest[0].key is None:
            if method != "GET":
                raise _method_not_allowed(method)
            rows = [e.as_json() for e in company.entries]
            return self._list(
                request,
                f"companies({company.id})/generalLedgerEntries",
                rows,
                _ENTRY_FIELDS,
                "generalLedgerEntry",
            )
        if kind == "accounts" and len(rest) == 1 and rest[0].key is None and method == "GET":
            numbers = sorted(self._accounts() or ())
            rows = [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"syncbus-fake-bc/account/{n}")),
                    "number": n,
                    "displayName": f"Account {n}",
                    "category": "",
                    "blocked": False,
                }
                for n in numbers
            ]
            return self._list(
                request, f"companies({company.id})/accounts", rows, _ACCOUNT_FIELDS, "account"
            )
        raise ODataError(404, RESOURCE_NOT_FOUND, f"No resource at '{request.path}'.")

    @staticmethod
    def _company(companies: list[Company], key: str | None) -> Company:
        for company in companies:
            if key is not None and company.id == key.lower():
                return company
        raise _not_found("Company")

    # ---- journals -----------------------------------------------------------------------

    def _journals(self, request: ApiRequest, company: Company, rest: list[Segment]) -> ApiResult:
        method = request.method
        context = f"companies({company.id})/journals"
        if len(rest) == 1 and rest[0].key is None:
            if method == "GET":
                rows = [self._journal_json(j) for j in company.journals.values()]
                return self._list(request, context, rows, _JOURNAL_LIST_FIELDS, "journal")
            if method == "POST":
                return self._create_journal(request, company)
            raise _method_not_allowed(method)
        journal = company.journals.get((rest[0].key or "").lower())
        if journal is None:
            raise _not_found("General Journal Batch")
        if len(rest) == 1:
            if method == "GET":
                return ApiResult(200, self._journal_json(journal), {"ETag": journal.etag})
            if method == "PATCH":
                _check_if_match(request, journal.etag)
                changes = self._journal_fields(request.body, company, journal)
                self.store.update_journal(journal, changes)
                return ApiResult(
                    200, self._journal_json(journal), {"ETag": journal.etag}, wrote=True
                )
            if method == "DELETE":
                _check_if_match(request, journal.etag)
                self.store.delete_journal(company, journal)
                return ApiResult(204, wrote=True)
            raise _method_not_allowed(method)
        action = rest[1]
        if action.name == "Microsoft.NAV.post" and len(rest) == 2:
            if method != "POST":
                raise _method_not_allowed(method)
            return self._post(company, journal)
        if action.name == "journalLines":
            return self._lines(request, journal, rest[1:])
        raise ODataError(404, RESOURCE_NOT_FOUND, f"No resource at '{request.path}'.")

    def _create_journal(self, request: ApiRequest, company: Company) -> ApiResult:
        changes = self._journal_fields(request.body, company, None)
        code = changes.get("code")
        if not code:
            raise ODataError(400, INVALID_REQUEST_BODY, "The field code must have a value.")
        journal = self.store.add_journal(company, code, changes.get("displayName", ""))
        return ApiResult(201, self._journal_json(journal), {"ETag": journal.etag}, wrote=True)

    def _journal_fields(
        self, body: Any, company: Company, journal: Journal | None
    ) -> dict[str, str]:
        if not isinstance(body, dict):
            raise ODataError(400, INVALID_REQUEST_BODY, "The request body must be a JSON object.")
        changes: dict[str, str] = {}
        for name, value in body.items():
            if name.startswith("@odata.") or name == "id":
                continue
            if name not in _JOURNAL_FIELDS:
                raise _unknown_property(name, "journal")
            if not isinstance(value, str):
                raise _wrong_type(name, "Edm.String")
            changes[name] = value
        if "code" in changes:
            code = changes["code"].upper()
            if len(code) > 10:
                raise string_too_long(code, 10)
            for other in company.journals.values():
                if other.code == code and other is not journal:
                    raise ODataError(
                        400,
                        ENTITY_EXISTS,
                        "The record in table Gen. Journal Batch already exists. Identification "
                        f"fields and values: Journal Template Name='GENERAL',Name='{code}'",
                    )
            changes["code"] = code
        if len(changes.get("displayName", "")) > 100:
            raise string_too_long(changes["displayName"], 100)
        return changes

    @staticmethod
    def _journal_json(journal: Journal) -> dict[str, Any]:
        return {
            "@odata.etag": journal.etag,
            "id": journal.id,
            "code": journal.code,
            "displayName": journal.display_name,
            "templateDisplayName": "GENERAL",
            "lastModifiedDateTime": journal.modified_at,
            "balancingAccountId": ZERO_GUID,
            "balancingAccountNumber": "",
        }

    # ---- journal lines ------------------------------------------------------------------

    def _lines(self, request: ApiRequest, journal: Journal, rest: list[Segment]) -> ApiResult:
        method = request.method
        if len(rest) == 1 and rest[0].key is None:
            if method == "GET":
                rows = [
                    self._line_json(journal, line)
                    for line in sorted(journal.lines.values(), key=lambda x: x.line_number)
                ]
                return self._list(
                    request,
                    f"journals({journal.id})/journalLines",
                    rows,
                    _LINE_LIST_FIELDS,
                    "journalLine",
                )
            if method == "POST":
                fields = self._line_fields(request.body, journal, None)
                number = int(fields.pop("lineNumber", 0) or 0)
                if number == 0:
                    number = journal.next_line_number()
                defaults: dict[str, Any] = {
                    "accountType": "G/L Account",
                    "amount": Decimal(0),
                    "balanceAccountType": "G/L Account",
                }
                line = self.store.add_line(journal, number, {**defaults, **fields})
                return ApiResult(
                    201, self._line_json(journal, line), {"ETag": line.etag}, wrote=True
                )
            raise _method_not_allowed(method)
        found = journal.lines.get((rest[0].key or "").lower())
        if found is None or len(rest) != 1:
            raise _not_found("Gen. Journal Line")
        line = found
        if method == "GET":
            return ApiResult(200, self._line_json(journal, line), {"ETag": line.etag})
        if method == "PATCH":
            _check_if_match(request, line.etag)
            fields = self._line_fields(request.body, journal, line)
            self.store.update_line(line, fields)
            return ApiResult(200, self._line_json(journal, line), {"ETag": line.etag}, wrote=True)
        if method == "DELETE":
            _check_if_match(request, line.etag)
            self.store.delete_line(journal, line)
            return ApiResult(204, wrote=True)
        raise _method_not_allowed(method)

    def _line_fields(self, body: Any, journal: Journal, line: JournalLine | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ODataError(400, INVALID_REQUEST_BODY, "The request body must be a JSON object.")
        fields: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@odata.") or name in _READ_ONLY_LINE_FIELDS:
                continue
            if name not in _LINE_FIELDS:
                raise _unknown_property(name, "journalLine")
            fields[name] = self._line_value(name, value)
        number = fields.get("lineNumber")
        if number:
            for other in journal.lines.values():
                if other.line_number == number and other is not line:
                    raise ODataError(
                        400,
                        ENTITY_EXISTS,
                        "The record in table Gen. Journal Line already exists. Identification "
                        f"fields and values: Journal Template Name='GENERAL',"
                        f"Journal Batch Name='{journal.code}',Line No.='{number}'",
                    )
        return fields

    def _line_value(self, name: str, value: Any) -> Any:
        if name == "lineNumber":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _wrong_type(name, "Edm.Int32")
            return value
        if name == "amount":
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                raise ODataError(
                    400,
                    INVALID_REQUEST_BODY,
                    "Cannot convert a primitive value to the expected type 'Edm.Decimal'. "
                    "See the inner exception for more details.",
                )
            return Decimal(value)
        if not isinstance(value, str):
            raise _wrong_type(name, "Edm.String")
        if name in {"accountType", "balanceAccountType"}:
            if value not in ACCOUNT_TYPES:
                raise ODataError(
                    400,
                    INVALID_REQUEST_BODY,
                    f"Cannot convert the literal '{value}' to the expected type "
                    f"'Microsoft.NAV.{name}'. Allowed: {', '.join(ACCOUNT_TYPES)}.",
                )
            return value
        if name == "postingDate":
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise _wrong_type(name, "Edm.Date", value)
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise _wrong_type(name, "Edm.Date", value) from None
            return value
        if name in {"accountId", "balancingAccountId"}:
            return value.lower()
        if name in _CODE_FIELDS:
            value = value.upper()
        limit = self._description_max_length() if name == "description" else _LINE_LIMITS.get(name)
        if limit is not None and len(value) > limit:
            raise string_too_long(value, limit)
        if name == "accountNumber" and value:
            chart = self._accounts()
            if chart is not None and value not in chart:
                raise ODataError(
                    400,
                    INVALID_TABLE_RELATION,
                    f"The field Account No. of table Gen. Journal Line contains a value "
                    f"({value}) that cannot be found in the related table (G/L Account).",
                )
        return value

    @staticmethod
    def _line_json(journal: Journal, line: JournalLine) -> dict[str, Any]:
        f = line.fields
        return {
            "@odata.etag": line.etag,
            "id": line.id,
            "journalId": journal.id,
            "journalDisplayName": journal.code,
            "lineNumber": line.line_number,
            "accountType": f.get("accountType", "G/L Account"),
            "accountId": f.get("accountId", ZERO_GUID),
            "accountNumber": f.get("accountNumber", ""),
            "postingDate": f.get("postingDate", "0001-01-01"),
            "documentNumber": f.get("documentNumber", ""),
            "externalDocumentNumber": f.get("externalDocumentNumber", ""),
            "amount": line.amount,
            "description": f.get("description", ""),
            "comment": f.get("comment", ""),
            "taxCode": f.get("taxCode", ""),
            "balanceAccountType": f.get("balanceAccountType", "G/L Account"),
            "balancingAccountId": f.get("balancingAccountId", ZERO_GUID),
            "balancingAccountNumber": f.get("balancingAccountNumber", ""),
            "lastModifiedDateTime": line.modified_at,
        }

    # ---- posting ------------------------------------------------------------------------

    def _post(self, company: Company, journal: Journal) -> ApiResult:
        lines = sorted(journal.lines.values(), key=lambda x: x.line_number)
        if not lines:
            raise ODataError(400, DIALOG_EXCEPTION, NOTHING_TO_POST)
        where = "Gen. Journal Line Journal Template Name='GENERAL',Journal Batch Name="
        for line in lines:
            place = f"{where}'{journal.code}',Line No.='{line.line_number}'"
            for name, shown in (
                ("accountNumber", "Account No."),
                ("documentNumber", "Document No."),
                ("postingDate", "Posting Date"),
            ):
                if not line.fields.get(name):
                    raise ODataError(
                        400, DIALOG_EXCEPTION, f"{shown} must have a value in {place}."
                    )
            if line.amount != line.amount.quantize(CENT):
                raise ODataError(
                    400,
                    DIALOG_EXCEPTION,
                    f"Amount {line.amount} must be rounded to the currency's precision (0.01) "
                    f"in {place}.",
                )
        balances: dict[tuple[str, str], Decimal] = {}
        for line in lines:
            key = (str(line.fields["documentNumber"]), str(line.fields["postingDate"]))
            balances[key] = balances.get(key, Decimal(0)) + line.amount
        for (document, posting_date), balance in balances.items():
            if balance != 0:
                raise ODataError(
                    400,
                    DIALOG_EXCEPTION,
                    f"Document No. {document} is out of balance by {abs(balance):.2f}. Please "
                    "check that Posting Date, Document Type, Document No. and Account No. are "
                    f"correct for each line (Posting Date {posting_date}).",
                )
        self.store.post(company, journal)
        return ApiResult(204, wrote=True, posted=True)

    # ---- lists --------------------------------------------------------------------------

    def _list(
        self,
        request: ApiRequest,
        context: str,
        rows: list[dict[str, Any]],
        fields: frozenset[str],
        entity: str,
    ) -> ApiResult:
        query = read_query(request.query)
        if query.filter:
            keep = parse_filter(query.filter, fields, entity)
            rows = [row for row in rows if keep(row)]
        rows = rows[query.skip :]
        if query.top is not None:
            rows = rows[: query.top]
        page = min(max_page_size(request.headers.get("prefer")) or 10**9, self._max_page_size())
        body: dict[str, Any] = {"@odata.context": f"{request.root_url}/$metadata#{context}"}
        if len(rows) > page:
            rest = dict(request.query)
            rest["$skip"] = str(query.skip + page)
            if query.top is not None:
                rest["$top"] = str(query.top - page)
            body["@odata.nextLink"] = f"{request.root_url}/{request.path}?{urlencode(rest)}"
            rows = rows[:page]
        body["value"] = rows
        return ApiResult(200, body)

    # ---- $batch -------------------------------------------------------------------------

    def batch(self, request: ApiRequest, *, snapshot: bool) -> tuple[ApiResult, int]:
        """Run a JSON `$batch`; returns the result and the number of operations.

        Each operation `{"id", "method", "url", "headers"?, "body"?}` has a URL relative to the
        API root (query string allowed). Without `Isolation: snapshot` each runs on its own.
        With it, they run in one transaction: at the first operation that fails, every change
        of the batch is undone (a posting excepted: it commits inside), the failed operation
        keeps its error, and every other operation is answered 424 `BadRequest_BatchRolledBack`
        (the ones before it were undone, the ones after it did not run). The `$batch` itself
        answers 200 either way.
        """
        body = request.body
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not all(isinstance(r, dict) for r in requests):
            return _error(
                ODataError(
                    400,
                    INVALID_REQUEST_BODY,
                    'A JSON batch body is {"requests": [{"id", "method", "url", ...}, ...]}.',
                )
            ), 0
        limit = self._max_batch_operations()
        if len(requests) > limit:
            return _error(
                ODataError(
                    400,
                    TOO_MANY_BATCH_OPERATIONS,
                    f"The batch request contains {len(requests)} operations; the maximum is "
                    f"{limit}.",
                )
            ), len(requests)
        responses: list[dict[str, Any]] = []
        wrote = posted = False
        with self.store.transaction() as rollback:
            failed_at: int | None = None
            for index, operation in enumerate(requests):
                result = self._operation(request, operation)
                wrote = wrote or result.wrote
                posted = posted or result.posted
                responses.append(_batch_response(operation, result))
                if snapshot and result.status >= 400:
                    failed_at = index
                    break
            if failed_at is not None:
                rollback()
                rolled = ODataError(
                    424,
                    BATCH_ROLLED_BACK,
                    "The operation was rolled back because another operation of the batch failed.",
                )
                answered = []
                for index, operation in enumerate(requests):
                    if index == failed_at:
                        answered.append(responses[index])
                    else:
                        answered.append(_batch_response(operation, _error(rolled)))
                responses = answered
                wrote = posted
        return ApiResult(200, {"responses": responses}, wrote=wrote, posted=posted), len(requests)

    def _operation(self, batch: ApiRequest, operation: dict[str, Any]) -> ApiResult:
        method = str(operation.get("method", "")).upper()
        url = operation.get("url")
        if method not in {"GET", "POST", "PATCH", "DELETE"} or not isinstance(url, str):
            return _error(
                ODataError(400, INVALID_REQUEST_BODY, "Each operation needs a method and a url.")
            )
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith("/"):
            return _error(
                ODataError(
                    400,
                    INVALID_REQUEST_BODY,
                    f"The url '{url}' must be relative to the API root, e.g. "
                    "'companies(<id>)/journals'.",
                )
            )
        if parts.path.strip("/") == "$batch":
            return _error(ODataError(400, INVALID_REQUEST_BODY, "A $batch cannot hold a $batch."))
        headers = operation.get("headers")
        lowered = (
            {str(k).lower(): str(v) for k, v in headers.items()}
            if isinstance(headers, dict)
            else {}
        )
        inner = ApiRequest(
            method=method,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=lowered,
            body=operation.get("body"),
            root_url=batch.root_url,
            environment=batch.environment,
        )
        return self.handle(inner)


def _batch_response(operation: dict[str, Any], result: ApiResult) -> dict[str, Any]:
    response: dict[str, Any] = {"id": str(operation.get("id", "")), "status": result.status}
    headers = {"content-type": "application/json; odata.metadata=minimal"}
    headers.update({k.lower(): v for k, v in result.headers.items()})
    response["headers"] = headers
    if result.body is not None:
        response["body"] = result.body
    return response


def _check_if_match(request: ApiRequest, current: str) -> None:
    given = request.headers.get("if-match")
    if not given:
        raise ODataError(400, INVALID_TOKEN, IF_MATCH_MISSING)
    if not etag_matches(given, current):
        raise ODataError(409, ENTITY_CHANGED, ENTITY_CHANGED_MESSAGE)


def _method_not_allowed(method: str) -> ODataError:
    return ODataError(405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed here.")


def _unknown_property(name: str, entity: str) -> ODataError:
    return ODataError(
        400,
        INVALID_REQUEST_BODY,
        f"The property '{name}' does not exist on type 'Microsoft.NAV.{entity}'. Make sure to "
        "only use property names that are defined by the type.",
    )


def _wrong_type(name: str, edm: str, value: str | None = None) -> ODataError:
    shown = f"the literal '{value}'" if value is not None else f"the value of '{name}'"
    return ODataError(
        400, INVALID_REQUEST_BODY, f"Cannot convert {shown} to the expected type '{edm}'."
    )
