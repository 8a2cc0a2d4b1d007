"""No secret anywhere, proven on the whole system: every log line, trace span, metric, result,
dead letter, CLI output and exception text the demo's stack produced, with known secrets.

The stack is the demo's (both fakes, the four services, real NATS and OpenBao), with traces
exported over OTLP/HTTP to a receiver in this test (raw protobuf bodies are scanned byte for
byte: attribute values are stored verbatim). The run covers the happy path (the SAF-T sample
to Xledger and Business Central) and the failure paths where secrets are most at risk: a
revoked vendor token (an `auth` failure, its dead letter and its error texts), a credential
that cannot be read, and the CLI commands an operator would run to look at all of it.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest

from syncbus_cli.demo import DEFAULT_SAFT
from syncbus_cli.embedded import (
    DEMO_BC_INTEGRATION,
    DEMO_INTEGRATION,
    configure_demo,
    demo_stack_options,
)
from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    SyncRequest,
    SyncResult,
    SyncStatus,
    Voucher,
    VoucherLine,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import stage_vouchers

XLEDGER_TOKEN = "xl-TOKEN-must-never-leak-51c0ffee9a"
BC_CLIENT_SECRET = "bc-CLIENT-SECRET-must-never-leak-77d00d"


class OtlpReceiver:
    """An OTLP/HTTP endpoint that keeps every body it is sent (traces, metrics, logs)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                receiver.bodies.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def _syncbus(nats_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCBUS_", "OTEL_"))}
    env["SYNCBUS_NATS_URL"] = nats_url
    return subprocess.run(
        [sys.executable, "-m", "syncbus_cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def _voucher(period: str) -> Voucher:
    return Voucher(
        voucher_id=f"leak-check-{period}",
        period_id=period,
        transaction_date=f"{period}-10",
        posting_date=f"{period}-10",
        lines=(
            VoucherLine(record_id="1", account_id="6300", debit="10.00"),
            VoucherLine(record_id="2", account_id="1920", credit="10.00"),
        ),
    )


@pytest.mark.e2e
async def test_no_secret_appears_in_any_log_span_metric_result_dead_letter_or_cli_output(
    tmp_path: Path, otlp: OtlpReceiver, capfd: pytest.CaptureFixture[str]
):
    options = demo_stack_options(XLEDGER_TOKEN)
    options["extra_env"] |= {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    outputs: list[str] = []
    scraped: list[str] = []
    results: list[SyncResult] = []
    state_dir = tmp_path / "stack"
    async with Stack(state_dir, **options, fakes=("xledger", "business_central")) as stack:
        secrets_to_find = [
            XLEDGER_TOKEN,
            BC_CLIENT_SECRET,
            stack.vault_token.get_secret_value(),
        ]
        nc = await connect(NatsSettings(url=stack.nats_url), "pytest-leaks")
        js = nc.jetstream()
        arrived = asyncio.Event()

        async def on_result(msg: object) -> None:
            results.append(SyncResult.from_bytes(msg.data))  # type: ignore[attr-defined]
            arrived.set()

        await nc.subscribe("sync.result.*", cb=on_result)
        await configure_demo(js, stack, bc_client_secret=BC_CLIENT_SECRET)

        # The happy path, as an operator runs it.
        for integration in (DEMO_INTEGRATION, DEMO_BC_INTEGRATION):
            done = _syncbus(
                stack.nats_url, "import-saft", str(DEFAULT_SAFT), "--integration", integration
            )
            outputs += [done.stdout, done.stderr]
            assert done.returncode == 0, done.stderr
            done = _syncbus(stack.nats_url, "backfill", integration, "2017-01", "2017-04")
            outputs += [done.stdout, done.stderr]
            assert done.returncode == 0, done.stdout + done.stderr

        # An `auth` failure: the vendor revokes the token; the run fails into the DLQ.
        async with httpx.AsyncClient(base_url=stack.fake_urls["xledger"]) as fake:
            revoked = await fake.post("/_fake/tokens/revoke", json={"token": XLEDGER_TOKEN})
            assert revoked.json()["revoked"] is True
        await stage_vouchers(js, DEMO_INTEGRATION, [_voucher("2017-05")])
        await js.publish(
            t.request_subject(DEMO_INTEGRATION),
            SyncRequest(integration_id=DEMO_INTEGRATION, period_id="2017-05").to_bytes(),
            headers={"Nats-Msg-Id": f"{DEMO_INTEGRATION}:2017-05"},
        )
        # A credential that cannot be read: an integration pointing at a path with no secret.
        broken = IntegrationConfig(
            integration_id="leak-broken",
            vendor="xledger",
            endpoint=f"{stack.fake_urls['xledger']}/graphql",
            credentials_path="integrations/does-not-exist",
        )
        await put_integration(js, broken)
        await stage_vouchers(js, broken.integration_id, [_voucher("2017-05")])
        await js.publish(
            t.request_subject(broken.integration_id),
            SyncRequest(integration_id=broken.integration_id, period_id="2017-05").to_bytes(),
            headers={"Nats-Msg-Id": f"{broken.integration_id}:2017-05"},
        )

        async def failures() -> list[SyncResult]:
            while True:
                failed = [r for r in results if r.status is SyncStatus.FAILED]
                if len(failed) >= 2:
                    return failed
                arrived.clear()
                await arrived.wait()

        failed = await asyncio.wait_for(failures(), 90)
        assert {r.integration_id for r in failed} == {DEMO_INTEGRATION, "leak-broken"}

        # What an operator looks at afterwards.
        for command in (
            ("runs", "--json"),
            ("runs",),
            ("dlq", "list", "--json"),
            ("dlq", "list"),
            ("health", "--json"),
            ("schedules", "--json"),
        ):
            done = _syncbus(stack.nats_url, *command)
            outputs += [done.stdout, done.stderr]
        async with httpx.AsyncClient(timeout=10.0) as http_client:
            for url in stack.probe_urls.values():
                for path in ("/metrics", "/readyz", "/livez"):
                    answer = await http_client.get(url + path)
                    scraped.append(answer.text)
        await nc.close()
    # Stopped: each service flushed its spans on the way out.

    written = [p for p in state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "dispatcher.log" for p in written)
    trace_bodies = [body for path, body in otlp.bodies if path.endswith("/v1/traces")]
    assert trace_bodies, "no span reached the OTLP receiver: the scan would prove nothing"
    assert any(b"sync.request" in body for body in trace_bodies)
    assert any("syncbus_" in text for text in scraped), "no metric was scraped"
    assert any(r.error is not None for r in failed)
    captured = capfd.readouterr()
    texts = [
        *outputs,
        *scraped,
        *(r.to_bytes().decode() for r in results),
        captured.out,
        captured.err,
    ]
    for secret in secrets_to_find:
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret[:6]}… in {path}"
        for _, body in otlp.bodies:
            assert secret.encode() not in body, f"{secret[:6]}… in an OTLP export"
        for text in texts:
            assert secret not in text, f"{secret[:6]}… in output: {text[:200]}"
