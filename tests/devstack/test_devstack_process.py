"""ManagedProcess: ready on the child's `*.ready` line, clear errors, nothing left behind."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from syncbus_devstack import ManagedProcess, NotReadyError, ProcessExitedError, ready_event

READY_THEN_WAIT = textwrap.dedent(
    """
    import json, signal, sys, threading

    def on_sigterm(*_):
        print("stopping on SIGTERM", file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    def say(stream, **event):
        print(json.dumps(event), file=stream, flush=True)
    print("starting on stdout", flush=True)
    say(sys.stderr, event="echo.starting")
    say(sys.stdout, event="echo.ready", url="http://127.0.0.1:1")  # stdout: does not count
    print("not json {", file=sys.stderr, flush=True)
    say(sys.stderr, event="echo.ready", url="http://127.0.0.1:2")
    threading.Event().wait()
    """
)

DIES_BEFORE_READY = textwrap.dedent(
    """
    import sys
    print("connecting to nats://127.0.0.1:1", file=sys.stderr, flush=True)
    print("boom: connection refused", file=sys.stderr, flush=True)
    sys.exit(3)
    """
)

NEVER_READY = "import threading; threading.Event().wait()"

IGNORES_SIGTERM = textwrap.dedent(
    """
    import json, signal, sys, threading
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(json.dumps({"event": "stubborn.ready"}), file=sys.stderr, flush=True)
    threading.Event().wait()
    """
)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_only_a_json_line_whose_event_ends_with_ready_counts() -> None:
    assert ready_event('{"event": "fake.xledger.ready", "url": "u"}') == {
        "event": "fake.xledger.ready",
        "url": "u",
    }
    assert ready_event('{"event": "fake.xledger.starting"}') is None
    assert ready_event('{"event": 1}') is None
    assert ready_event("[1, 2]") is None
    assert ready_event("service.ready") is None
    assert ready_event("{not json") is None


async def test_start_waits_for_the_ready_line_on_stderr_and_returns_it(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "echo.log"
    process = ManagedProcess("echo", _python(READY_THEN_WAIT), dict(os.environ), log)
    try:
        info = await process.start()
        assert info == {"event": "echo.ready", "url": "http://127.0.0.1:2"}
        assert process.ready_info == info
        assert process.running
        assert process.returncode is None
    finally:
        await process.stop()
    text = log.read_text()
    for line in ("starting on stdout", '"echo.starting"', "not json {", "stopping on SIGTERM"):
        assert line in text


async def test_a_child_that_dies_before_ready_is_reported_with_its_last_lines(
    tmp_path: Path,
) -> None:
    process = ManagedProcess(
        "dispatcher", _python(DIES_BEFORE_READY), dict(os.environ), tmp_path / "d.log"
    )
    with pytest.raises(ProcessExitedError) as caught:
        await process.start()
    error = caught.value
    assert error.returncode == 3
    assert error.component == "dispatcher"
    assert str(error).startswith("dispatcher exited with code 3 before it was ready")
    assert "boom: connection refused" in str(error)
    assert error.tail[-1] == "boom: connection refused"
    assert "boom: connection refused" in (tmp_path / "d.log").read_text()


async def test_a_child_that_is_never_ready_times_out_and_is_killed(tmp_path: Path) -> None:
    process = ManagedProcess(
        "sleepy", _python(NEVER_READY), dict(os.environ), tmp_path / "s.log", ready_timeout=0.3
    )
    with pytest.raises(NotReadyError) as caught:
        await process.start()
    assert str(caught.value).startswith("sleepy was not ready after 0.3 s")
    assert process.pid is not None
    assert _gone(process.pid)


async def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    process = ManagedProcess("echo", _python(READY_THEN_WAIT), dict(os.environ), tmp_path / "e.log")
    await process.start()
    pid = process.pid
    assert pid is not None
    assert not _gone(pid)
    code = await process.stop()
    assert code == 0  # it exits cleanly on SIGTERM
    assert process.returncode == 0
    assert _gone(pid)


async def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    process = ManagedProcess(
        "stubborn", _python(IGNORES_SIGTERM), dict(os.environ), tmp_path / "x.log"
    )
    await process.start()
    assert await process.stop(grace=0.2) == -9
    assert process.pid is not None
    assert _gone(process.pid)


async def test_a_killed_child_can_be_started_again(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    process = ManagedProcess("echo", _python(READY_THEN_WAIT), dict(os.environ), log)
    await process.start()
    first = process.pid
    assert await process.kill() == -9
    assert await process.wait() == -9
    await process.start()
    try:
        assert process.pid != first
        assert process.running
    finally:
        await process.stop()
    # The ready line is in the log before start() returns; the log is appended to, not replaced.
    assert log.read_text().count("http://127.0.0.1:2") == 2


async def test_the_child_gets_exactly_the_environment_it_is_given(tmp_path: Path) -> None:
    code = (
        "import json, os, sys; "
        "print(json.dumps({'event': 'env.ready', 'env': dict(os.environ)}), file=sys.stderr)"
    )
    env = {"SYNCBUS_NATS_URL": "nats://127.0.0.1:1", "PATH": os.environ["PATH"]}
    process = ManagedProcess("env", _python(code), env, tmp_path / "env.log")
    info = await process.start()
    await process.stop()
    assert info["env"]["SYNCBUS_NATS_URL"] == "nats://127.0.0.1:1"
    assert "HOME" not in info["env"]


LAUNCHER = textwrap.dedent(
    """
    import asyncio, json, os, sys, threading
    from pathlib import Path
    from syncbus_devstack import ManagedProcess

    CHILD = (
        "import json, sys, threading; "
        "print(json.dumps({'event': 'grandchild.ready'}), file=sys.stderr, flush=True); "
        "threading.Event().wait()"
    )

    async def main():
        child = ManagedProcess(
            "grandchild", [sys.executable, "-c", CHILD], dict(os.environ), Path(sys.argv[1])
        )
        await child.start()
        print(json.dumps({"event": "launcher.ready", "child_pid": child.pid}), file=sys.stderr,
              flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.fixture
def subreaper():
    """Make this test process the reaper of orphaned descendants, so that it can reap them."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_child_subreaper = 36
    assert prctl(pr_set_child_subreaper, 1) == 0
    try:
        yield
    finally:
        prctl(pr_set_child_subreaper, 0)


async def test_a_child_dies_when_its_launcher_is_sigkilled(tmp_path: Path, subreaper) -> None:
    launcher = ManagedProcess(
        "launcher",
        [*_python(LAUNCHER), str(tmp_path / "grandchild.log")],
        dict(os.environ),
        tmp_path / "launcher.log",
    )
    info = await launcher.start()
    child_pid = info["child_pid"]
    # A pidfd becomes readable when the process exits: a real signal, not a poll.
    pidfd = os.pidfd_open(child_pid)
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await launcher.kill()  # SIGKILL: the launcher gets no chance to stop its child
        await asyncio.wait_for(exited, timeout=5)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    # The orphan was handed to us (the subreaper): it was killed by the death signal.
    _, status = os.waitpid(child_pid, 0)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert _gone(child_pid)
