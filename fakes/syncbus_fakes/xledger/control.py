"""The control API under `/_fake/` (JSON, no auth, not counted against any limit).

    GET  /_fake/health            {"ok": true}
    GET  /_fake/postings          {"postings": [{"call", "dbId", "clientId", "extIdentifier",
                                                 "node", "createdAt"}, ...]}  (commit order)
    GET  /_fake/postings/counts   {"calls": {extIdentifier: mutation calls that posted it},
                                   "lines": {extIdentifier: lines}, "total_calls", "total_lines"}
    GET  /_fake/stats             {"requests_total", "by_operation", "rate_limited",
                                   "auth_failures", "errors_by_code", "credits_used",
                                   "credits_remaining", "fault_hits", "postings", "started_at"}
    POST /_fake/reset             postings, stats, faults, limits and chart of accounts back to
                                  the start-up state; tokens are kept -> {"reset": true}
    POST /_fake/tokens            {"token": "..."} -> 201 {"tokens": <how many are valid>}
    POST /_fake/tokens/revoke     {"token": "..."} -> {"revoked": bool, "tokens": n}
    GET  /_fake/faults            {"faults": {...}, "fault_hits": {...}, "limits": {...}, "known"}
    POST /_fake/faults            {name: params | null, ...} -> same as GET; 400 on a bad one.
                                  Faults: see `faults.py`. Limits: "burst_limit": {"requests",
                                  "window_seconds"}, "concurrency_limit": {"max"},
                                  "monthly_credits": {"limit", "used"?}; null = start-up value
    POST /_fake/accounts          {"codes": ["1920", ...] | null} -> {"codes": [...] | null}

Token values are never echoed, logged or kept (only their digests are).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncbus_fakes.control import bad as _bad
from syncbus_fakes.control import fault_routes
from syncbus_fakes.control import json_object as _object

from .service import XledgerFake


def control_routes(fake: XledgerFake) -> list[Route]:
    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def postings(_: Request) -> Response:
        return JSONResponse({"postings": [p.as_json() for p in fake.ledger.postings]})

    async def counts(_: Request) -> Response:
        return JSONResponse(fake.ledger.counts())

    async def stats(_: Request) -> Response:
        return JSONResponse(fake.stats_json())

    async def reset(_: Request) -> Response:
        fake.reset()
        return JSONResponse({"reset": True})

    async def add_token(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        token = body.get("token")
        if not isinstance(token, str):
            return _bad('give the token as {"token": "..."}')
        try:
            fake.tokens.add(token)
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"tokens": len(fake.tokens)}, status_code=201)

    async def revoke_token(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        token = body.get("token")
        if not isinstance(token, str):
            return _bad('give the token as {"token": "..."}')
        return JSONResponse({"revoked": fake.tokens.revoke(token), "tokens": len(fake.tokens)})

    async def set_accounts(request: Request) -> Response:
        body = await _object(request)
        if isinstance(body, Response):
            return body
        codes = body.get("codes")
        if codes is None:
            fake.accounts = None
        elif isinstance(codes, list) and all(isinstance(code, str) for code in codes):
            fake.accounts = frozenset(codes)
        else:
            return _bad('give the chart as {"codes": ["1920", ...]} or {"codes": null}')
        shown = sorted(fake.accounts) if fake.accounts is not None else None
        return JSONResponse({"codes": shown})

    return [
        Route("/_fake/health", health, methods=["GET"]),
        Route("/_fake/postings", postings, methods=["GET"]),
        Route("/_fake/postings/counts", counts, methods=["GET"]),
        Route("/_fake/stats", stats, methods=["GET"]),
        Route("/_fake/reset", reset, methods=["POST"]),
        Route("/_fake/tokens", add_token, methods=["POST"]),
        Route("/_fake/tokens/revoke", revoke_token, methods=["POST"]),
        *fault_routes(fake),
        Route("/_fake/accounts", set_accounts, methods=["POST"]),
    ]
