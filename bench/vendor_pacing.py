"""Vendor-rate pacing against both fakes: achieved rate / allowed rate, and rate-limit answers.

    .venv/bin/python bench/vendor_pacing.py [--rounds 3] [--seconds 4]

Each fake runs as its own process (`python -m syncbus_fakes.<vendor>`, ready line on stderr) with
small limits set through its control API, so one round takes seconds:

    Business Central  30 requests per sliding 1 s, 2 processed at once and no queue (a third
                      request at once is refused with 429), 10 ms latency per request
    Xledger           20 requests per sliding 1 s burst window, 2 in flight, 10 ms latency

Load: three export workers (small vouchers; a Business Central export is 4 requests: journal,
$batch, post, delete) and one probe worker, all with one credential, as a dispatcher and its
warm-ups would be. Paced: every request goes through the credential's pacer
(`syncbus_adapters.pacing`, which both adapters use themselves). Baseline, measured in the
same run: the same four workers sending as fast as they can without a pacer, retrying at once
on a rate-limit answer.

Figures (the vendor side's counts, from the fake's `/_fake/stats`):

    achieved   requests the vendor admitted per second in the steady state (from the end of the
               first window to the end of the round: the first window admits a burst of N at
               once, which says nothing about the rate), divided by the allowed N / window; it
               can read a little above 100 %: the interval's two ends cut through bursts
    limited    rate-limit answers in the whole round (429 / BURST / CONCURRENCY)

Goal: achieved >= 95 % with 0 rate-limit answers. Medians over the rounds are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from pydantic import SecretStr

from syncbus_adapters import AdapterContext, AdapterError, Credential
from syncbus_adapters.business_central import BusinessCentralAdapter
from syncbus_adapters.pacing import RateRules, reset_pacers
from syncbus_adapters.xledger import XledgerAdapter
from syncbus_shared.contracts import Voucher, VoucherLine

BC_RULES = RateRules(requests=30, window_seconds=1.0, max_concurrent=2)
XL_RULES = RateRules(requests=20, window_seconds=1.0, max_concurrent=2)
LATENCY_SECONDS = 0.01
EXPORT_WORKERS = 3
PROBE_WORKERS = 1
BC_CLIENT = ("bench-app", "bench-secret-" + os.urandom(6).hex())
XL_TOKEN = "bench-token-" + os.urandom(6).hex()


@dataclass
class Fake:
    name: str
    url: str
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def running_fake(module: str, *args: str) -> AsyncIterator[Fake]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--port",
        "0",
        "--log-level",
        "WARNING",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = await process.stderr.readline()
                if not line:
                    raise RuntimeError(f"{module} exited before it was ready")
                event = json.loads(line)
                if str(event.get("event", "")).endswith(".ready"):
                    url = str(event["url"])
        yield Fake(module, url, process)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def voucher(worker: int, n: int) -> Voucher:
    return Voucher(
        voucher_id=f"bench-{worker}-{n}-{time.monotonic_ns()}",
        period_id="2017-01",
        transaction_date=date(2017, 1, 5),
        posting_date=date(2017, 1, 31),
        description="bench",
        lines=(
            VoucherLine(record_id="1", account_id="1920", debit="10.00"),
            VoucherLine(record_id="2", account_id="3000", credit="10.00"),
        ),
    )


@dataclass
class Round:
    achieved: float
    limited: int
    admitted: int
    errors: int


async def _stats(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    return dict((await http.get(f"{url}/_fake/stats")).json())


async def measure(
    http: httpx.AsyncClient,
    url: str,
    rules: RateRules,
    seconds: float,
    workers: list[Callable[[], Awaitable[None]]],
    admitted_of: Callable[[dict[str, Any]], int],
    limited_of: Callable[[dict[str, Any]], int],
) -> Round:
    stop = asyncio.Event()
    errors = 0

    async def loop(work: Callable[[], Awaitable[None]]) -> None:
        nonlocal errors
        while not stop.is_set():
            try:
                await work()
            except AdapterError:
                errors += 1

    tasks = [asyncio.create_task(loop(work)) for work in workers]
    clock = asyncio.get_running_loop()
    started = clock.time()
    await asyncio.sleep(rules.window_seconds)
    first = await _stats(http, url)
    t1 = clock.time()
    await asyncio.sleep(max(seconds - (t1 - started), rules.window_seconds))
    last = await _stats(http, url)
    t2 = clock.time()
    stop.set()
    await asyncio.gather(*tasks)
    rate = (admitted_of(last) - admitted_of(first)) / (t2 - t1)
    return Round(
        achieved=rate / rules.rate,
        limited=limited_of(last),
        admitted=admitted_of(last),
        errors=errors,
    )


# ---- Business Central ---------------------------------------------------------------------


async def bc_setup(http: httpx.AsyncClient, url: str) -> tuple[str, str]:
    await http.post(
        f"{url}/_fake/clients", json={"client_id": BC_CLIENT[0], "client_secret": BC_CLIENT[1]}
    )
    await http.post(
        f"{url}/_fake/faults",
        json={
            "rate_limit": {
                "requests": BC_RULES.requests,
                "window_seconds": BC_RULES.window_seconds,
            },
            "concurrency_limit": {"max_concurrent": BC_RULES.max_concurrent, "max_queued": 0},
        },
    )
    listed = (await http.get(f"{url}/_fake/companies")).json()
    tenant = listed["tenant_id"]
    company = listed["environments"]["production"][0]["id"]
    token = await http.post(
        f"{url}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": BC_CLIENT[0],
            "client_secret": BC_CLIENT[1],
            "scope": "https://api.businesscentral.dynamics.com/.default",
        },
    )
    endpoint = f"{url}/v2.0/{tenant}/production/api/v2.0/companies({company})"
    return endpoint, str(token.json()["access_token"])


def _bc_admitted(stats: dict[str, Any]) -> int:
    return int(stats["requests_total"]) - int(stats["rate_limited"])


def _bc_limited(stats: dict[str, Any]) -> int:
    return int(stats["rate_limited"])


async def bc_round(http: httpx.AsyncClient, url: str, seconds: float, *, paced: bool) -> Round:
    await http.post(f"{url}/_fake/reset")  # clients stay registered; limits go back: set them
    endpoint, token = await bc_setup(http, url)
    await http.post(f"{url}/_fake/faults", json={"latency": {"seconds": LATENCY_SECONDS}})
    reset_pacers()
    options = {
        "rate_limit": f"{BC_RULES.requests}/{BC_RULES.window_seconds}",
        "max_concurrent": "2",
    }
    workers: list[Callable[[], Awaitable[None]]] = []
    if paced:
        for worker in range(EXPORT_WORKERS + PROBE_WORKERS):
            adapter = BusinessCentralAdapter(
                AdapterContext(
                    "bench-bc", endpoint, Credential("Bearer", SecretStr(token)), http, 30, options
                )
            )
            counter = iter(range(10**9))

            async def export(
                a: BusinessCentralAdapter = adapter, w: int = worker, n: Any = counter
            ) -> None:
                await a.export_batch([voucher(w, next(n))])

            async def probe(a: BusinessCentralAdapter = adapter) -> None:
                await a.ping()

            workers.append(export if worker < EXPORT_WORKERS else probe)
    else:
        probe_url = endpoint.split("/companies(")[0] + "/companies?$top=1"
        headers = {"Authorization": f"Bearer {token}"}

        async def naive() -> None:
            await http.get(probe_url, headers=headers)

        workers = [naive] * (EXPORT_WORKERS + PROBE_WORKERS)
    return await measure(
        http,
        url,
        BC_RULES,
        seconds,
        workers,
        _bc_admitted,
        _bc_limited,
    )


# ---- Xledger ------------------------------------------------------------------------------


async def xl_setup(http: httpx.AsyncClient, url: str) -> None:
    await http.post(f"{url}/_fake/tokens", json={"token": XL_TOKEN})
    await http.post(
        f"{url}/_fake/faults",
        json={
            "burst_limit": {
                "requests": XL_RULES.requests,
                "window_seconds": XL_RULES.window_seconds,
            },
            "concurrency_limit": {"max": XL_RULES.max_concurrent},
            "monthly_credits": {"limit": 10**9},
            "latency": {"seconds": LATENCY_SECONDS},
        },
    )


def _xl_limited(stats: dict[str, Any]) -> int:
    return int(stats["rate_limited"])


def _xl_admitted(stats: dict[str, Any]) -> int:
    return int(stats["requests_total"]) - int(stats["rate_limited"])


async def xl_round(http: httpx.AsyncClient, url: str, seconds: float, *, paced: bool) -> Round:
    await http.post(f"{url}/_fake/reset")
    await xl_setup(http, url)
    reset_pacers()
    workers: list[Callable[[], Awaitable[None]]] = []
    if paced:
        for worker in range(EXPORT_WORKERS + PROBE_WORKERS):
            adapter = XledgerAdapter(
                AdapterContext(
                    "bench-xl",
                    f"{url}/graphql",
                    Credential("token", SecretStr(XL_TOKEN)),
                    http,
                    30,
                    {
                        "rate_limit": f"{XL_RULES.requests}/{XL_RULES.window_seconds}",
                        "max_concurrent": str(XL_RULES.max_concurrent),
                    },
                )
            )
            counter = iter(range(10**9))

            async def export(
                a: XledgerAdapter = adapter, w: int = worker, n: Any = counter
            ) -> None:
                await a.export_batch([voucher(w, next(n))])

            async def probe(a: XledgerAdapter = adapter) -> None:
                await a.ping()

            workers.append(export if worker < EXPORT_WORKERS else probe)
    else:
        headers = {"Authorization": f"token {XL_TOKEN}"}

        async def naive() -> None:
            await http.post(f"{url}/graphql", json={"query": "{ __typename }"}, headers=headers)

        workers = [naive] * (EXPORT_WORKERS + PROBE_WORKERS)
    return await measure(http, url, XL_RULES, seconds, workers, _xl_admitted, _xl_limited)


# ---- report --------------------------------------------------------------------------------


def _line(vendor: str, mode: str, rules: RateRules, rounds: list[Round]) -> str:
    achieved = statistics.median(r.achieved for r in rounds)
    limited = statistics.median(r.limited for r in rounds)
    allowed = f"{rules.requests}/{rules.window_seconds:g}s, {rules.max_concurrent} at once"
    spread = ", ".join(f"{r.achieved:.1%}" for r in rounds)
    return (
        f"  {vendor:<17}{mode:<10}allowed {allowed:<18} achieved {achieved:6.1%}"
        f" (rounds: {spread})  rate-limit answers {limited:g}"
    )


async def main(rounds: int, seconds: float) -> int:
    results: dict[tuple[str, str], list[Round]] = {}
    async with (
        running_fake("syncbus_fakes.business_central") as bc,
        running_fake("syncbus_fakes.xledger") as xl,
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=20)) as http,
    ):
        for _ in range(rounds):
            results.setdefault(("business_central", "paced"), []).append(
                await bc_round(http, bc.url, seconds, paced=True)
            )
            results.setdefault(("xledger", "paced"), []).append(
                await xl_round(http, xl.url, seconds, paced=True)
            )
        results[("business_central", "unpaced")] = [
            await bc_round(http, bc.url, seconds, paced=False)
        ]
        results[("xledger", "unpaced")] = [await xl_round(http, xl.url, seconds, paced=False)]
    print(
        f"vendor pacing, {rounds} paced round(s) of {seconds:g} s per fake, "
        f"{EXPORT_WORKERS} export + {PROBE_WORKERS} probe workers on one credential"
    )
    print("  (achieved = admitted requests per second after the first window / allowed rate)")
    for vendor, rules in (("business_central", BC_RULES), ("xledger", XL_RULES)):
        for mode in ("paced", "unpaced"):
            print(_line(vendor, mode, rules, results[(vendor, mode)]))
    paced = [r for (vendor, mode), rs in results.items() if mode == "paced" for r in rs]
    ok = all(r.limited == 0 for r in paced) and all(
        statistics.median(r.achieved for r in results[(v, "paced")]) >= 0.95
        for v in ("business_central", "xledger")
    )
    errors = sum(r.errors for r in paced)
    print(
        f"goal (paced: >= 95 % of the allowed rate, 0 rate-limit answers): "
        f"{'met' if ok else 'NOT met'}; adapter errors while paced: {errors}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="paced rounds per fake (3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round (4)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.seconds)))
