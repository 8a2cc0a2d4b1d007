"""`python -m syncbus_health_monitor`: run the health monitor."""

from __future__ import annotations

import asyncio

from syncbus_shared.logs import configure_logging
from syncbus_shared.probes import ProbeSettings
from syncbus_shared.settings import ServiceSettings
from syncbus_shared.startup import fail_fast_on_bad_settings
from syncbus_shared.tracing import setup_tracing

from .service import build_app


def main() -> None:
    with fail_fast_on_bad_settings("health-monitor"):
        configure_logging("health-monitor", ServiceSettings().log_level)
        setup_tracing("health-monitor")
        asyncio.run(build_app(probes=ProbeSettings()).run())


if __name__ == "__main__":
    main()
