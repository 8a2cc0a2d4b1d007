"""`python -m syncbus_fakes.business_central [--host 127.0.0.1] [--port 0] [--client ID:SECRET]`

Binds the socket itself (port 0 = a free port), then prints one JSON line to stderr once
uvicorn accepts connections:

    {"event": "fake.business_central.ready", "url": "http://127.0.0.1:PORT",
     "tenant_id": "...", "token_url": ".../<tenant>/oauth2/v2.0/token",
     "api_root": ".../v2.0/<tenant>/<environment>/api/v2.0"}

Nothing is printed to stdout; other log lines on stderr are JSON too. SIGTERM or SIGINT shuts it
down gracefully, exit code 0. App registrations come from `--client` (repeatable) and
`SYNCBUS_FAKE_BUSINESS_CENTRAL_CLIENTS` (comma-separated) together, or later from
`POST /_fake/clients`; secrets are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pydantic import SecretStr, ValidationError

from syncbus_fakes.server import serve_until_signalled
from syncbus_shared.logs import configure_logging

from .app import create_app
from .settings import BusinessCentralFakeSettings

READY_EVENT = "fake.business_central.ready"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m syncbus_fakes.business_central",
        description="A faithful fake of Business Central's API v2.0 and Entra's token endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument(
        "--client", action="append", default=[], help="an app registration ID:SECRET (repeatable)"
    )
    parser.add_argument("--tenant", help="the tenant id")
    parser.add_argument("--company", action="append", help="a company name (repeatable)")
    parser.add_argument("--token-lifetime-seconds", type=int, help="expires_in of tokens (3599)")
    parser.add_argument("--rate-limit-requests", type=int, help="requests per window (6000)")
    parser.add_argument("--rate-limit-window-seconds", type=float, help="window length (300)")
    parser.add_argument("--max-concurrent", type=int, help="requests processed at once (5)")
    parser.add_argument("--max-queued", type=int, help="requests waiting for a slot (95)")
    parser.add_argument(
        "--account", action="append", help="a G/L account number of the chart (repeatable)"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


def _settings(args: argparse.Namespace) -> BusinessCentralFakeSettings:
    from_env = BusinessCentralFakeSettings()
    overrides: dict[str, Any] = {
        "tenant_id": args.tenant,
        "companies": tuple(args.company) if args.company else None,
        "token_lifetime_seconds": args.token_lifetime_seconds,
        "rate_limit_requests": args.rate_limit_requests,
        "rate_limit_window_seconds": args.rate_limit_window_seconds,
        "max_concurrent": args.max_concurrent,
        "max_queued": args.max_queued,
        "accounts": tuple(args.account) if args.account else None,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    clients = (*from_env.clients, *(SecretStr(client) for client in args.client))
    return BusinessCentralFakeSettings(**given, clients=clients)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("fake-business-central", args.log_level)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        sys.stderr.write(
            json.dumps({"event": "fake.business_central.bad_settings", "error": problems}) + "\n"
        )
        return 2

    def ready(url: str) -> None:
        tenant = settings.tenant_id
        line = {
            "event": READY_EVENT,
            "url": url,
            "tenant_id": tenant,
            "token_url": f"{url}/{tenant}/oauth2/v2.0/token",
            "api_root": f"{url}/v2.0/{tenant}/{settings.environments[0]}/api/v2.0",
        }
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()

    app = create_app(settings)
    asyncio.run(
        serve_until_signalled(
            app, args.host, args.port, on_ready=ready, log_level=args.log_level.lower()
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
