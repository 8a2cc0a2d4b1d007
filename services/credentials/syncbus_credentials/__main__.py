"""`python -m syncbus_credentials`: run the credential service."""

from __future__ import annotations

import asyncio

from syncbus_shared.logs import configure_logging
from syncbus_shared.probes import ProbeSettings
from syncbus_shared.settings import ServiceSettings
from syncbus_shared.startup import fail_fast_on_bad_settings
from syncbus_shared.tracing import setup_tracing

from .metrics import credential_probes
from .service import build


def main() -> None:
    with fail_fast_on_bad_settings("credentials"):
        configure_logging("credentials", ServiceSettings().log_level)
        setup_tracing("credentials")
        built = build()
        credential_probes(built, ProbeSettings())
        asyncio.run(built.app.run())


if __name__ == "__main__":
    main()
