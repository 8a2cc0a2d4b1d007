"""The README's "Using syncbus from an application" example, run as it is against a real stack.

The code block is read from README.md on every run, so the documentation cannot drift from what
works: it runs twice as its own process (the second run is the application restarted), through
the real dispatcher, credential service, OpenBao and the Xledger fake.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from client_support import configure_xledger_integration, postings

from syncbus_devstack import Stack
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using syncbus from an application"


def example_code() -> str:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "the section has no ```python block"
    return match.group(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("stack"), services=("credentials", "dispatcher")
    ) as running:
        yield running


async def _run(script: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_the_readme_example_is_a_complete_program():
    code = example_code()
    compile(code, "README example", "exec")
    assert "from syncbus_client import" in code
    assert "asyncio.run(main())" in code


@pytest.mark.asyncio(loop_scope="module")
async def test_the_readme_example_exports_once_and_resumes_its_feed_after_a_restart(
    stack: Stack, tmp_path: Path
):
    integration = "readme-example"
    nc = await connect(NatsSettings(url=stack.nats_url), "pytest-readme")
    try:
        fake_url = await configure_xledger_integration(stack, nc.jetstream(), integration)
    finally:
        await nc.close()
    script = tmp_path / "example.py"
    script.write_text(example_code(), encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")},
        "SYNCBUS_NATS_URL": stack.nats_url,
        "SYNCBUS_EXAMPLE_INTEGRATION": integration,
    }

    code, first, err = await _run(script, env)
    assert code == 0, err
    assert "staged 1, already staged 0" in first
    assert f"requested {integration}:2017-05: duplicate=False" in first
    assert "result: succeeded, 1 voucher(s), debit 2500.00" in first
    assert first.count("feed: ") == 1
    assert f"feed: {integration}:2017-05 succeeded" in first

    code, second, err = await _run(script, env)
    assert code == 0, err
    assert "staged 0, already staged 1" in second
    assert f"requested {integration}:2017-05: duplicate=True" in second
    assert "result: succeeded, 1 voucher(s), debit 2500.00" in second
    assert "feed: " not in second  # resumed after the result the first run acknowledged

    sent = await postings(fake_url, integration)
    assert len(sent) == 2  # the voucher's two lines, exported once
