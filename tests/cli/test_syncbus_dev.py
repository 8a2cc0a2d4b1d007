"""`syncbus dev` as a user runs it: it says what runs where, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _dev(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "syncbus_cli", "dev", "--state-dir", str(tmp_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.e2e
def test_syncbus_dev_prints_where_everything_runs_and_ctrl_c_stops_every_process(tmp_path: Path):
    proc = _dev(tmp_path)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the launcher's own ready signal is this line
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    else:
        pytest.fail(
            f"syncbus dev ended early: {''.join(lines)} {proc.stderr.read() if proc.stderr else ''}"
        )
    text = "".join(lines)
    assert re.search(r"NATS\s+nats://127\.0\.0\.1:\d+", text)
    assert "integration toyen-xledger is configured" in text
    pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
    assert len(pids) == 7  # nats, openbao, fake, four services
    assert all(_alive(pid) for pid in pids)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "stopped." in out
    assert not [pid for pid in pids if _alive(pid)]


@pytest.mark.e2e
def test_syncbus_dev_on_a_port_in_use_says_so_in_one_line(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _dev(tmp_path, "--nats-port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    message = [line for line in err.splitlines() if "syncbus dev:" in line]
    assert len(message) == 1, err
    assert str(port) in message[0]
    assert "Traceback" not in out + err


@pytest.mark.e2e
def test_syncbus_dev_json_prints_one_object_with_the_urls_when_ready(tmp_path: Path):
    import json  # noqa: PLC0415

    proc = _dev(tmp_path, "--json")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the ready object is stdout's first and only line
    try:
        ready = json.loads(first)
        assert ready["ready"] is True
        assert ready["nats_url"].startswith("nats://127.0.0.1:")
        assert ready["vault_url"].startswith("http://127.0.0.1:")
        assert set(ready["fakes"]) == {"xledger"}
        assert ready["integration"] == "toyen-xledger"
        assert set(ready["probes"]) == {"credentials", "dispatcher", "scheduler", "health-monitor"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out == ""  # everything else went to stderr
    assert "stopped." in err
