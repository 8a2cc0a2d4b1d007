"""docs/asyncapi.json read by an independent implementation: the official @asyncapi/parser.

The parser comes from the npm registry into `.cache/asyncapi-validator/` (gitignored) the first
time, under a lock so that parallel runs install it once. Without Node.js the test is skipped,
saying so; with SYNCBUS_REQUIRE_ASYNCAPI_VALIDATOR=1 that skip (or a failed install) fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.json"
SCRIPT = Path(__file__).with_name("validate_asyncapi.mjs")
PARSER_VERSION = "3.6.6"
CACHE = ROOT / ".cache"
INSTALL = CACHE / "asyncapi-validator"
REQUIRED = os.environ.get("SYNCBUS_REQUIRE_ASYNCAPI_VALIDATOR") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (SYNCBUS_REQUIRE_ASYNCAPI_VALIDATOR=1)")
    pytest.skip(reason)


def _installed_version() -> str | None:
    manifest = INSTALL / "node_modules" / "@asyncapi" / "parser" / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_parser() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("Node.js (node and npm) is not installed: the AsyncAPI parser cannot run")
    INSTALL.mkdir(parents=True, exist_ok=True)
    with (CACHE / "asyncapi-validator.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version() != PARSER_VERSION:
            done = subprocess.run(
                [
                    "npm",
                    "install",
                    "--prefix",
                    str(INSTALL),
                    "--no-audit",
                    "--no-fund",
                    "--no-package-lock",
                    "--cache",
                    str(CACHE / "npm"),
                    f"@asyncapi/parser@{PARSER_VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                _unavailable(
                    f"npm could not install @asyncapi/parser@{PARSER_VERSION}: {' / '.join(tail)}"
                )
    return INSTALL


def test_the_official_asyncapi_parser_reads_the_committed_document_without_errors():
    install = ensure_parser()
    done = subprocess.run(
        ["node", str(SCRIPT), str(install), str(DOCUMENT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID: AsyncAPI 3.0.0" in done.stdout
    errors = [line for line in done.stdout.splitlines() if line.startswith(("Error", "Warning"))]
    assert errors == [], "\n".join(errors)
