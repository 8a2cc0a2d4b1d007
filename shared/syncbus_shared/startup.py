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
from pydantic_settings import BaseSettings

from .natsclient import NatsTlsConfigError
from .probes import ProbeBindError

EXIT_BAD_SETTINGS = 2


def _env_prefix(model_name: str) -> str | None:
    pending: list[type[BaseSettings]] = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__name__ == model_name:
            return str(cls.model_config.get("env_prefix", ""))
        pending.extend(cls.__subclasses__())
    return None


def describe_settings_error(exc: ValidationError) -> str:
    """`the setting SYNCBUS_DISPATCHER_BATCH_ATTEMPTS is not valid: Input should be ...`."""
    first = exc.errors(include_input=False, include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    field = ".".join(str(part) for part in first["loc"])
    prefix = _env_prefix(exc.title)
    if not field:
        return f"the {exc.title} are not valid: {message}"
    name = f"{prefix}{field}".upper() if prefix is not None else f"{exc.title}.{field}"
    more = exc.error_count() - 1
    return f"the setting {name} is not valid: {message}" + (
        f" (and {more} more problem(s))" if more else ""
    )


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
