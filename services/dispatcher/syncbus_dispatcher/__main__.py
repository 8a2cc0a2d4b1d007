"""`python -m syncbus_dispatcher`: run a dispatcher."""

from __future__ import annotations

import asyncio

from syncbus_shared.logs import configure_logging
from syncbus_shared.probes import ProbeSettings
from syncbus_shared.settings import ServiceSettings
from syncbus_shared.startup import fail_fast_on_bad_settings
from syncbus_shared.tracing import setup_tracing

from .service import build_app


def main() -> None:
    with fail_fast_on_bad_settings("dispatcher"):
        configure_logging("dispatcher", ServiceSettings().log_level)
        setup_tracing("dispatcher")
        asyncio.run(build_app(probes=ProbeSettings()).run())


if __name__ == "__main__":
    main()
