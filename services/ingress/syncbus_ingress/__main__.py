"""`python -m syncbus_ingress`: run the HTTP ingress (configured by SYNCBUS_* variables).

`python -m syncbus_ingress hash-key` reads an API key on stdin and prints the SHA-256 digest
to put in SYNCBUS_INGRESS_API_KEY_HASHES (the key itself is never stored).
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from syncbus_shared.logs import configure_logging, get_logger
from syncbus_shared.settings import ServiceSettings

from .auth import ApiKeyConfigError, digest_of
from .server import serve


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["hash-key"]:
        key = sys.stdin.readline().rstrip("\r\n")
        if not key:
            sys.stderr.write("syncbus_ingress hash-key: no key on stdin\n")
            return 2
        sys.stdout.write(digest_of(key) + "\n")
        return 0
    if args:
        sys.stderr.write("usage: python -m syncbus_ingress [hash-key]\n")
        return 2
    configure_logging("ingress", ServiceSettings().log_level)
    try:
        asyncio.run(serve())
    except ApiKeyConfigError as exc:
        get_logger().error("ingress.bad_api_key_config", detail=str(exc))
        return 2
    except ValidationError as exc:  # a SYNCBUS_INGRESS_* or SYNCBUS_NATS_* value (not echoed)
        problems = [".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False)]
        get_logger().error("ingress.bad_settings", title=exc.title, fields=problems)
        return 2
    except OSError as exc:
        get_logger().error("ingress.cannot_listen", detail=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
