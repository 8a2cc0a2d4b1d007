"""The results the ingress can answer for: an in-memory index of SYNC_RESULTS by request id.

Results carry the request id only in their body, so a lookup by id cannot be asked of the
stream itself. The index follows SYNC_RESULTS from `result_lookback_hours` ago (and then live,
also across NATS restarts), keeping at most `result_index_size` results, the newest. Until it
has read what was stored when it started, it is not `caught_up` and the ingress is not ready:
a 404 then could be wrong.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import timedelta

from syncbus_client import SyncbusClient, SyncResult
from syncbus_shared.contracts import utc_now
from syncbus_shared.logs import get_logger

log = get_logger()

_RESTART_SECONDS = 1.0


class ResultIndex:
    def __init__(self, lookback: timedelta, capacity: int) -> None:
        self._lookback = lookback
        self._capacity = capacity
        self._results: OrderedDict[str, bytes] = OrderedDict()
        self.caught_up = asyncio.Event()

    def __len__(self) -> int:
        return len(self._results)

    def get(self, request_id: str) -> bytes | None:
        """The result's JSON, as the dispatcher published it, or None."""
        return self._results.get(request_id)

    def add(self, result: SyncResult) -> None:
        self._results[result.request_id] = result.to_bytes()
        self._results.move_to_end(result.request_id)
        while len(self._results) > self._capacity:
            self._results.popitem(last=False)

    async def follow(self, client: SyncbusClient) -> None:
        """Read results for ever; a feed that fails unexpectedly is opened again."""
        while True:
            feed = client.results(start=utc_now() - self._lookback)
            try:
                await feed.open()
                if await feed.backlog() == 0:
                    self._caught_up()
                async for result in feed:
                    self.add(result)
                    if feed.num_pending == 0:
                        self._caught_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ingress.result_index_failed", error=type(exc).__name__)
                await asyncio.sleep(_RESTART_SECONDS)
            finally:
                await feed.aclose()

    def _caught_up(self) -> None:
        if not self.caught_up.is_set():
            self.caught_up.set()
            log.info("ingress.result_index_caught_up", results=len(self._results))
