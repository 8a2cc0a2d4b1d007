"""`python -m syncbus_fakes.xledger [--host 127.0.0.1] [--port 0] [--token T ...]`

Binds the socket itself (port 0 = a free port), then prints one JSON line to stderr once
uvicorn accepts connections:

    {"event": "fake.xledger.ready", "url": "http://127.0.0.1:PORT"}

Nothing is printed to stdout; other log lines on stderr are JSON too (uvicorn's access log is
off). SIGTERM or SIGINT shuts it down gracefully, exit code 0. Tokens come from `--token`
(repeatable) and `SYNCBUS_FAKE_XLEDGER_TOKENS` (comma-separated) together; they are never
printed.
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
from .settings import XledgerFakeSettings

READY_EVENT = "fake.xledger.ready"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m syncbus_fakes.xledger", description="A faithful fake of Xledger's API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument(
        "--token", action="append", default=[], help="an accepted API token (repeatable)"
    )
    parser.add_argument("--burst-requests", type=int, help="requests per burst window (20)")
    parser.add_argument("--burst-window-seconds", type=float, help="burst window length (5)")
    parser.add_argument("--max-concurrent", type=int, help="requests in flight per token (10)")
    parser.add_argument("--monthly-credits", type=int, help="requests per month (5000)")
    parser.add_argument(
        "--account", action="append", help="a code of the chart of accounts (repeatable)"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


def _settings(args: argparse.Namespace) -> XledgerFakeSettings:
    from_env = XledgerFakeSettings()
    overrides: dict[str, Any] = {
        "burst_requests": args.burst_requests,
        "burst_window_seconds": args.burst_window_seconds,
        "max_concurrent": args.max_concurrent,
        "monthly_credits": args.monthly_credits,
        "accounts": tuple(args.account) if args.account else None,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    tokens = (*from_env.tokens, *(SecretStr(token) for token in args.token))
    return XledgerFakeSettings(**given, tokens=tokens)


def _ready(url: str) -> None:
    sys.stderr.write(json.dumps({"event": READY_EVENT, "url": url}) + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("fake-xledger", args.log_level)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        sys.stderr.write(
            json.dumps({"event": "fake.xledger.bad_settings", "error": str(exc)}) + "\n"
        )
        return 2
    app = create_app(settings)
    asyncio.run(
        serve_until_signalled(
            app, args.host, args.port, on_ready=_ready, log_level=args.log_level.lower()
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
