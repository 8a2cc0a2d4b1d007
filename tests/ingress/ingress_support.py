"""Running the real ingress in the test's event loop, on a loopback port of its own choosing.

Tests talk to it with httpx over real HTTP; nothing of httpx or NATS is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from syncbus_ingress.auth import digest_of
from syncbus_ingress.server import serve
from syncbus_ingress.settings import IngressSettings
from syncbus_shared.settings import NatsSettings


@dataclass
class RunningIngress:
    url: str
    key: str
    http: httpx.AsyncClient
    ready: asyncio.Event

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def post(self, body: Any, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
        if isinstance(body, bytes | str):
            kwargs["content"] = body
        else:
            kwargs["json"] = body
        return await self.http.post("/v1/sync-requests", headers=self.auth(key), **kwargs)

    async def result(self, request_id: str) -> httpx.Response:
        return await self.http.get(f"/v1/sync-results/{request_id}", headers=self.auth())


@contextlib.asynccontextmanager
async def running_ingress(
    nats_url: str, *, wait_ready: bool = True, key: str | None = None, **settings: Any
) -> AsyncIterator[RunningIngress]:
    key = key or secrets.token_urlsafe(24)
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    ready = asyncio.Event()
    stop = asyncio.Event()
    config = IngressSettings(
        host="127.0.0.1", port=0, api_key_hashes=f"tests={digest_of(key)}", **settings
    )
    task = asyncio.create_task(
        serve(
            config,
            NatsSettings(url=nats_url, user=None, password=None),
            handle_signals=False,
            stop=stop,
            on_listening=listening.set_result,
            on_ready=lambda _url: ready.set(),
        )
    )
    try:
        done, _ = await asyncio.wait({task, listening}, timeout=30, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()  # raises what stopped it
        url = await asyncio.wait_for(listening, 1)
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            running = RunningIngress(url=url, key=key, http=http, ready=ready)
            if wait_ready:
                await asyncio.wait_for(ready.wait(), 30)
            yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
