"""The control API under `/_fake/` (JSON, no auth, not counted against any limit).

    GET  /_fake/health             {"ok": true}
    GET  /_fake/companies          {"tenant_id", "environments": {env: [{"id", "name"}]}}
    GET  /_fake/postings           {"entries": [{"environment", "company", "post", "journal",
                                    "entryNumber", "postingDate", "documentNumber",
                                    "externalDocumentNumber", "accountNumber", "description",
                                    "amount"}, ...]}   (entry order)
    GET  /_fake/postings/counts    {"documents": {documentNumber: posts that posted it},
                                    "lines": {documentNumber: entries}, "total_posts",
                                    "total_lines"}
    GET  /_fake/journals           {"journals": [{"environment", "company", "id", "code",
                                    "lines"}]}   (to see lines left behind unposted)
    GET  /_fake/stats              requests, by_operation, by_status, errors_by_code,
                                   rate_limited, auth_failures(_by_reason), token_requests,
                                   tokens_issued, token_errors, max_running, max_waiting, ...
    POST /_fake/reset              entries, journals, stats, faults, limits, token cut-offs and
                                   chart of accounts back to the start-up state; clients are
                                   kept -> {"reset": true}
    POST /_fake/clients            {"client_id", "client_secret", "roles"?: [...]} -> 201
                                   {"clients": n}; registering an id again replaces its secret
    POST /_fake/clients/remove     {"client_id"} -> {"removed": bool, "clients": n}
    POST /_fake/tokens/revoke      {"client_id"?} -> {"before": <unix time>}: every token of
                                   that client (or of all) issued so far is refused (401)
    POST /_fake/tokens/expire      the same, but the 401 says the token has expired
    GET  /_fake/faults             {"faults", "fault_hits", "limits", "known"}
    POST /_fake/faults             {name: params | null, ...} -> same as GET; 400 on a bad one.
                                   Faults: see `faults.py`. Limits: "rate_limit": {"requests",
                                   "window_seconds"}, "concurrency_limit": {"max_concurrent",
                                   "max_queued"?, "queue_timeout_seconds"?}, "token_lifetime":
                                   {"seconds"}, "retry_after": {"every"}; null = start-up value
    POST /_fake/accounts           {"numbers": ["1920", ...] | null} -> {"numbers": [...] | null}

Client secrets and tokens are never echoed, logged or kept (only digests of secrets are).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncbus_fakes.control import bad as _bad
from syncbus_fakes.control import fault_routes
from syncbus_fakes.control import json_object as _object

from .errors import ExactJSONResponse
from .service import BusinessCentralFake
from .settings import FULL_ACCESS_ROLE


def _client_id(body: dict[str, Any]) -> str | Response | None:
    value = body.get("client_id")
    if value is None or isinstance(value, str):
        return value
    return _bad("client_id must be a string")


def control_routes(fake: BusinessCentralFake) -> list[Route]:
    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def companies(_: Request) -> Response:
        return JSONResponse(
            {
                "tenant_id": fake.settings.tenant_id,
                "environments": {
                    env: [{"id": c.id, "name": c.name} for c in fake.store.in_environment(env)]
                    for env in fake.store.environments
                },
            }
        )

    async def postings(_: Request) -> Response:
        entries = [
            {
                "environment": company.environment,
                "company": company.name,
                "post": entry.post,
                "journal": entry.journal_code,
                "entryNumber": entry.entry_number,
                "postingDate": entry.posting_date,
                "documentNumber": entry.document_number,
                "externalDocumentNumber": entry.external_document_number,
                "accountNumber": entry.account_number,
                "description": entry.description,
                "amount": entry.amount,
            }
            for company, entry in fake.store.all_entries()
        ]
        return ExactJSONResponse({"entries": entries})

    async def counts(_: Request) -> Response:
        return JSONResponse(fake.store.counts())

    async def journals(_: Request) -> Response:
        found = [
            {
                "environment": company.environment,
                "company": company.name,
                "id": journal.id,
                "code": journal.code,
                "lines": len(journal.lines),
            }
            for company in fake.store.companies.values()
            for journal in company.journals.values()
        ]
        return JSONResponse({"journals": found})

    async def stats(_: Request) -> Response:
        return JSONResponse(fake.stats_json())

    async def reset(_: Request) -> Response:
        fake.reset()
        return JSONResponse({"reset": True})

    async def add_client(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        client_id, secret = body.get("client_id"), body.get("client_secret")
        roles = body.get("roles", [FULL_ACCESS_ROLE])
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return _bad('give {"client_id": "...", "client_secret": "...", "roles"?: [...]}')
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return _bad("roles must be a list of strings")
        try:
            fake.clients.register(client_id, secret, tuple(roles))
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"clients": len(fake.clients)}, status_code=201)

    async def remove_client(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        client_id = _client_id(body)
        if not isinstance(client_id, str):
            return client_id if isinstance(client_id, Response) else _bad("give the client_id")
        return JSONResponse(
            {"removed": fake.clients.remove(client_id), "clients": len(fake.clients)}
        )

    async def revoke(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        client_id = _client_id(body)
        if isinstance(client_id, Response):
            return client_id
        return JSONResponse({"before": fake.issuer.revoke(client_id)})

    async def expire(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        client_id = _client_id(body)
        if isinstance(client_id, Response):
            return client_id
        return JSONResponse({"before": fake.issuer.expire(client_id)})

    async def set_accounts(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        numbers = body.get("numbers")
        if numbers is None:
            fake.accounts = None
        elif isinstance(numbers, list) and all(isinstance(n, str) for n in numbers):
            fake.accounts = frozenset(numbers)
        else:
            return _bad('give the chart as {"numbers": ["1920", ...]} or {"numbers": null}')
        shown = sorted(fake.accounts) if fake.accounts is not None else None
        return JSONResponse({"numbers": shown})

    return [
        Route("/_fake/health", health, methods=["GET"]),
        Route("/_fake/companies", companies, methods=["GET"]),
        Route("/_fake/postings", postings, methods=["GET"]),
        Route("/_fake/postings/counts", counts, methods=["GET"]),
        Route("/_fake/journals", journals, methods=["GET"]),
        Route("/_fake/stats", stats, methods=["GET"]),
        Route("/_fake/reset", reset, methods=["POST"]),
        Route("/_fake/clients", add_client, methods=["POST"]),
        Route("/_fake/clients/remove", remove_client, methods=["POST"]),
        Route("/_fake/tokens/revoke", revoke, methods=["POST"]),
        Route("/_fake/tokens/expire", expire, methods=["POST"]),
        *fault_routes(fake),
        Route("/_fake/accounts", set_accounts, methods=["POST"]),
    ]
