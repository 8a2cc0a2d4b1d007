"""How a service process starts: a setting that cannot work is one sentence and exit code 2.

    def main() -> None:
        with fail_fast_on_bad_settings("dispatcher"):
            configure_logging(...)
            asyncio.run(build_app(...).run())

Settings classes hide their input in errors, so the sentence names the variable, never its value.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from .natsclient import NatsTlsConfigError
from .probes import ProbeBindError
from .settings import describe_settings_error

EXIT_BAD_SETTINGS = 2


@contextmanager
def fail_fast_on_bad_settings(service: str) -> Iterator[None]:
    """Turn a settings error at start into one line on stderr and `SystemExit(2)`."""
    try:
        yield
    except ValidationError as exc:
        problem = describe_settings_error(exc)
    except (NatsTlsConfigError, ProbeBindError) as exc:
        problem = str(exc)
    else:
        return
    sys.stderr.write(f"{service}: {problem}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_BAD_SETTINGS)
