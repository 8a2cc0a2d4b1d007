"""run_dev_stack (`syncbus dev`): prints what runs where, runs until told to stop, stops all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

from syncbus_devstack import run_dev_stack

READY_THEN_WAIT = (
    "import json, sys, threading; "
    "print(json.dumps({'event': 'echo.ready'}), file=sys.stderr, flush=True); "
    "threading.Event().wait()"
)

DEV_MAIN = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from syncbus_devstack import run_dev_stack

    ECHO = sys.argv[2]
    asyncio.run(run_dev_stack(
        Path(sys.argv[1]), services=("echo",), fakes=(),
        service_commands={"echo": [sys.executable, "-c", ECHO]},
    ))
    """
)


def _pids(lines: list[str]) -> list[int]:
    return [int(pid) for line in lines for pid in re.findall(r"\bpid (\d+)", line)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_run_dev_stack_prints_what_runs_where_and_stops_everything(tmp_path: Path) -> None:
    lines: list[str] = []
    stop = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            stop.set()

    await run_dev_stack(
        tmp_path,
        services=("echo",),
        fakes=(),
        service_commands={"echo": [sys.executable, "-c", READY_THEN_WAIT]},
        out=out,
        stop=stop,
        handle_signals=False,
    )

    text = "\n".join(lines)
    assert "nats://127.0.0.1:" in text
    assert "http://127.0.0.1:" in text
    assert str(tmp_path / "logs" / "echo.log") in text
    assert lines[-1] == "stopped."
    pids = _pids(lines)
    assert len(pids) == 3  # nats-server, openbao, echo
    assert all(_gone(pid) for pid in pids)


async def test_a_child_that_exits_while_the_stack_runs_is_reported(tmp_path: Path) -> None:
    lines: list[str] = []
    stop = asyncio.Event()
    stack_up = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            stack_up.set()
        if "exited unexpectedly" in line:
            stop.set()

    async def kill_the_quitter() -> None:
        await stack_up.wait()
        pid = next(
            int(p) for line in lines if "quitter" in line for p in re.findall(r"pid (\d+)", line)
        )
        os.kill(pid, signal.SIGTERM)

    killer = asyncio.create_task(kill_the_quitter())
    await asyncio.wait_for(
        run_dev_stack(
            tmp_path,
            services=("quitter",),
            fakes=(),
            service_commands={"quitter": [sys.executable, "-c", READY_THEN_WAIT]},
            out=out,
            stop=stop,
            handle_signals=False,
        ),
        timeout=30,
    )
    await killer
    assert any(
        line.startswith("quitter exited unexpectedly with code -15") and "quitter.log" in line
        for line in lines
    )


async def test_sigint_stops_the_dev_stack_and_leaves_no_process(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DEV_MAIN,
        str(tmp_path),
        READY_THEN_WAIT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("Ctrl-C"):
                raw = await process.stdout.readline()
                assert raw, f"the dev stack ended early:\n{''.join(lines)}"
                lines.append(raw.decode().rstrip("\n"))
            pids = _pids(lines)
            process.send_signal(signal.SIGINT)
            rest = (await process.stdout.read()).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert rest.rstrip().endswith("stopped.")
    assert len(pids) == 3
    assert all(_gone(pid) for pid in pids)


# A service that says it has started (on a FIFO the test reads) but never gets ready.
STARTED_NEVER_READY = textwrap.dedent(
    """
    import os, sys, threading
    with open(sys.argv[1], "w") as fifo:
        fifo.write(f"{os.getpid()}\\n")
    threading.Event().wait()
    """
)


async def test_a_stop_during_the_start_cancels_it_and_leaves_no_process(tmp_path: Path) -> None:
    fifo = tmp_path / "started.fifo"
    os.mkfifo(fifo)
    lines: list[str] = []
    stop = asyncio.Event()
    run = asyncio.create_task(
        run_dev_stack(
            tmp_path,
            services=("slow",),
            fakes=(),
            service_commands={"slow": [sys.executable, "-c", STARTED_NEVER_READY, str(fifo)]},
            out=lines.append,
            stop=stop,
            handle_signals=False,
        )
    )
    # Opening a FIFO for reading blocks until the service opens it for writing.
    service_pid = int(await asyncio.wait_for(asyncio.to_thread(fifo.read_text), timeout=30))
    nats_log = (tmp_path / "logs" / "nats-server.log").read_text()
    nats_pid = int(re.match(r"\[(\d+)\]", nats_log).group(1))

    stop.set()
    await asyncio.wait_for(run, timeout=30)

    assert lines == ["stopping ...", "stopped."]
    assert _gone(service_pid)
    assert _gone(nats_pid)
