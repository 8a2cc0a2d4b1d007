"""`python -m syncbus_dispatcher`: run a dispatcher."""

from __future__ import annotations

import asyncio

from syncbus_shared.logs import configure_logging
from syncbus_shared.settings import ServiceSettings

from .service import build_app


def main() -> None:
    configure_logging("dispatcher", ServiceSettings().log_level)
    asyncio.run(build_app().run())


if __name__ == "__main__":
    main()
