"""`syncbus dev`: run the embedded stack in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import asyncio
import fcntl
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from syncbus_shared.settings import TopologySettings

from .errors import StackError
from .process import DEFAULT_READY_TIMEOUT
from .stack import DEFAULT_FAKES, DEFAULT_SERVICES, Stack

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_dev_stack(
    state_dir: Path,
    *,
    services: Sequence[str] = DEFAULT_SERVICES,
    fakes: Sequence[str] = DEFAULT_FAKES,
    xledger_tokens: Sequence[str] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    topology: TopologySettings | None = None,
    nats_port: int | None = None,
    vault_port: int | None = None,
    service_commands: Mapping[str, Sequence[str]] | None = None,
    log_level: str = "INFO",
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    fresh: bool = False,
    out: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[Stack], Awaitable[Sequence[str]]] | None = None,
) -> None:
    """Start the stack, print what runs where, run until SIGINT/SIGTERM (or `stop`), stop it.

    `fresh` deletes the NATS store and the logs of an earlier run first (OpenBao keeps nothing:
    it runs in memory). A child that exits while the stack runs is reported through `out`,
    and the rest keeps running. Signal handlers are installed only while this runs, and only
    with `handle_signals` (the loop must run in the main thread then). `on_ready` runs once
    the stack is up (to configure it); the lines it returns are printed after `describe()`.
    """
    stop = stop or asyncio.Event()
    lock = lock_state_dir(state_dir)  # before anything touches the store
    if fresh:
        for part in ("nats", "logs"):
            shutil.rmtree(state_dir / part, ignore_errors=True)
    stack = Stack(
        state_dir,
        services=services,
        fakes=fakes,
        xledger_tokens=xledger_tokens,
        secrets=secrets,
        extra_env=extra_env,
        topology=topology,
        nats_port=nats_port,
        vault_port=vault_port,
        service_commands=service_commands,
        log_level=log_level,
        ready_timeout=ready_timeout,
    )
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    watchers: list[asyncio.Task[None]] = []
    try:
        if await _start_unless_stopped(stack, stop):
            for line in stack.describe():
                out(line)
            for line in await on_ready(stack) if on_ready is not None else ():
                out(line)
            out("Ctrl-C stops everything.")
            watchers = _watch_exits(stack, out)
            await stop.wait()
        out("stopping ...")
    finally:
        for watcher in watchers:
            watcher.cancel()
        try:
            await stack.stop()
        finally:
            if handle_signals:
                for sig in _STOP_SIGNALS:
                    loop.remove_signal_handler(sig)
            lock.close()  # releases the lock
    out("stopped.")


def lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Hold `state_dir` for this process (an flock, gone with the process however it ends):
    a second stack on the same NATS store would corrupt it and mix its logs into ours."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / ".lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StackError(
            f"another syncbus dev is using {state_dir}; stop it, or pass another --state-dir",
            component="devstack",
        ) from None
    return handle


async def _start_unless_stopped(stack: Stack, stop: asyncio.Event) -> bool:
    """Start the stack; a stop request during the start (a Ctrl-C) cancels it: False then."""
    starting = asyncio.create_task(stack.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not starting.done():
            # Stack.start() stops what it had started when it is cancelled; let it finish that.
            starting.cancel()
            await asyncio.wait({starting})
    if starting.cancelled():
        return False
    starting.result()  # a failed start raises its error here
    return True


def _watch_exits(stack: Stack, out: Callable[[str], None]) -> list[asyncio.Task[None]]:
    async def report(name: str, wait: Callable[[], Awaitable[int]], log: Path | None) -> None:
        code = await wait()
        out(f"{name} exited unexpectedly with code {code}; see {log}")

    parts: list[tuple[str, Callable[[], Awaitable[int]], Path | None]] = [
        ("nats-server", stack.nats.wait, stack.nats.log_path),
        ("openbao", stack.vault.wait, stack.vault.log_path),
        *((name, p.wait, p.log_path) for name, p in stack.processes.items()),
    ]
    return [asyncio.create_task(report(*part)) for part in parts]
