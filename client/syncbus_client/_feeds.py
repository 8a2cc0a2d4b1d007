"""Reading results and progress: scanning SYNC_RESULTS, durable feeds, live progress.

Results live in the JetStream stream SYNC_RESULTS (`sync.result.<integration_id>`, kept 400 days),
so nothing an application reads here can be missed by subscribing late: a scan starts from a
time or a sequence in the stream, and a durable feed is a consumer on the server that remembers
what was acknowledged. Progress (`sync.progress.<integration_id>`) is core NATS: live only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from syncbus_shared import topology as t
from syncbus_shared.contracts import SyncProgress, SyncResult

from ._errors import DurableConflictError, InvalidRequestError, Problem

log = logging.getLogger("syncbus_client")

Start = Literal["all", "new"] | datetime
"""Where a new feed starts: every kept result, only results from now on, or from an instant."""

_DURABLE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RETRY_SECONDS = 0.5
_POLL_SECONDS = 5.0
_EPHEMERAL_BATCH = 256


def result_filter(integration_id: str | None) -> str:
    return t.result_subject(integration_id) if integration_id else t.RESULT_FILTER


def progress_filter(integration_id: str | None) -> str:
    return t.progress_subject(integration_id) if integration_id else "sync.progress.*"


def check_durable(name: str) -> str:
    if not _DURABLE.match(name):
        raise InvalidRequestError(
            [Problem("durable", "a durable name is 1-64 letters, digits, '-' or '_'")], "durable"
        )
    return name


def _start_config(start: Start) -> dict[str, object]:
    if isinstance(start, datetime):
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": start}
    if start == "new":
        return {"deliver_policy": DeliverPolicy.NEW}
    return {"deliver_policy": DeliverPolicy.ALL}


def _read_result(msg: Msg) -> SyncResult | None:
    try:
        return SyncResult.from_bytes(msg.data)
    except ValidationError:
        log.warning("syncbus_client: skipped a message on %s that is not a result", msg.subject)
        return None


async def scan_for_result(
    js: JetStreamContext, request_id: str, subject: str, start: datetime, timeout: float
) -> SyncResult | None:
    """The result of `request_id` on `subject` stored at or after `start`; None after `timeout`.

    An ephemeral consumer reads the stream from `start`, then waits for new results; if it is
    lost (a NATS restart), a new one continues after the last result read.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_seq: int | None = None
    while loop.time() < deadline:
        where: dict[str, object] = (
            {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": last_seq + 1}
            if last_seq is not None
            else {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": start}
        )
        try:
            sub = await js.pull_subscribe(
                subject,
                stream=t.STREAM_RESULTS,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=60.0,
                    mem_storage=True,
                    **where,  # type: ignore[arg-type]
                ),
            )
        except (nats.errors.Error, OSError) as exc:
            log.debug("syncbus_client: result scan could not start (%s)", type(exc).__name__)
            await asyncio.sleep(min(_RETRY_SECONDS, max(0.0, deadline - loop.time())))
            continue
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    msgs = await sub.fetch(256, timeout=min(remaining, _POLL_SECONDS))
                except nats.errors.TimeoutError:
                    continue
                for msg in msgs:
                    last_seq = msg.metadata.sequence.stream
                    result = _read_result(msg)
                    if result is not None and result.request_id == request_id:
                        return result
        except (nats.errors.Error, OSError) as exc:
            # The consumer is gone (NATS restarted) or the connection is reconnecting.
            log.debug("syncbus_client: result scan interrupted (%s)", type(exc).__name__)
            await asyncio.sleep(min(_RETRY_SECONDS, max(0.0, deadline - loop.time())))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    return None


async def recent_results(
    js: JetStreamContext, integration_id: str | None, limit: int
) -> list[SyncResult]:
    """The last `limit` results (of one integration, or of all), oldest first."""
    if limit <= 0:
        return []
    info = await js.stream_info(t.STREAM_RESULTS)
    first, last = info.state.first_seq, info.state.last_seq
    if last == 0 or info.state.messages == 0:
        return []
    subject = result_filter(integration_id)
    window = max(limit * 4, 64)
    while True:
        start = max(first, last - window + 1)
        sub = await js.pull_subscribe(
            subject,
            stream=t.STREAM_RESULTS,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                inactive_threshold=30.0,
                mem_storage=True,
            ),
        )
        try:
            pending = (await sub.consumer_info()).num_pending or 0
            if pending < limit and start > first:
                window *= 4  # too few of this integration's results in the window: widen it
                continue
            results: list[SyncResult] = []
            while pending > 0:
                msgs = await sub.fetch(min(pending, 256), timeout=5.0)
                pending -= len(msgs)
                results.extend(r for r in map(_read_result, msgs) if r is not None)
            return results[-limit:]
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class ResultFeed:
    """Results as they arrive, in stream order: an async iterator, best used with `async with`.

    With a `durable` name the position lives on the NATS server, so a restarted application
    carries on after the last result it acknowledged. A result is acknowledged when the loop
    asks for the next one, and when an `async with` block ends without an exception; the
    result being handled when the application stopped comes again (at least once).
    Without a durable name the feed is ephemeral: live from `start`, forgotten when closed.

    `idle_timeout` ends the iteration when no result arrives for that many seconds (for a job
    that handles what is new and exits); None waits for ever.
    """

    def __init__(
        self,
        js: JetStreamContext,
        integration_id: str | None,
        *,
        durable: str | None,
        start: Start,
        idle_timeout: float | None,
        ack_wait: float,
    ) -> None:
        self._js = js
        self.subject = result_filter(integration_id)
        self.durable = check_durable(durable) if durable is not None else None
        self._start = start
        self._idle_timeout = idle_timeout
        self._ack_wait = ack_wait
        self._sub: JetStreamContext.PullSubscription | None = None
        self._unacked: Msg | None = None
        self._buffer: deque[Msg] = deque()
        self._last_seq: int | None = None
        self._num_pending: int | None = None
        self._interrupted = False
        self._closed = False

    @property
    def last_seq(self) -> int | None:
        """The SYNC_RESULTS sequence of the last result returned (None before the first)."""
        return self._last_seq

    @property
    def num_pending(self) -> int | None:
        """How many results were stored after the last one returned, as the server counted when
        it delivered it (None before the first): 0 means the feed had caught up then."""
        return self._num_pending

    async def backlog(self) -> int:
        """Results stored and not yet delivered to this feed (opens it if needed)."""
        await self.open()
        assert self._sub is not None
        return (await self._sub.consumer_info()).num_pending or 0

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.ack()
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def open(self) -> None:
        """Create (or bind to) the consumer. Iterating opens it too; open first not to miss any."""
        if self._sub is not None:
            return
        if self._closed:
            raise RuntimeError("this result feed is closed")
        if self.durable is None:
            where = _start_config(self._start)
            if self._last_seq is not None:  # re-created after a NATS restart: carry on
                where = {
                    "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                    "opt_start_seq": self._last_seq + 1,
                }
            self._sub = await self._js.pull_subscribe(
                self.subject,
                stream=t.STREAM_RESULTS,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=60.0,
                    mem_storage=True,
                    **where,  # type: ignore[arg-type]
                ),
            )
            return
        await self._ensure_durable(self.durable)
        self._sub = await self._js.pull_subscribe_bind(self.durable, stream=t.STREAM_RESULTS)

    async def _ensure_durable(self, name: str) -> None:
        try:
            info = await self._js.consumer_info(t.STREAM_RESULTS, name)
        except NotFoundError:
            pass
        else:
            existing = info.config.filter_subject
            if existing != self.subject:
                raise DurableConflictError(name, existing, self.subject)
            return
        await self._js.add_consumer(
            t.STREAM_RESULTS,
            ConsumerConfig(
                name=name,
                durable_name=name,
                description=f"syncbus_client results feed {name!r} of {self.subject}",
                filter_subject=self.subject,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait,
                max_deliver=-1,
                **_start_config(self._start),  # type: ignore[arg-type]
            ),
        )

    async def ack(self) -> None:
        """Acknowledge the result last returned (done for you when the next one is asked for)."""
        msg, self._unacked = self._unacked, None
        if msg is not None:
            await msg.ack()

    async def __anext__(self) -> SyncResult:
        await self.ack()
        loop = asyncio.get_running_loop()
        idle_until = None if self._idle_timeout is None else loop.time() + self._idle_timeout
        while True:
            while self._buffer:
                msg = self._buffer.popleft()
                self._last_seq = msg.metadata.sequence.stream
                self._num_pending = msg.metadata.num_pending
                result = _read_result(msg)
                if result is None:
                    if self.durable is not None:
                        await msg.term()
                    continue
                if self.durable is not None:
                    self._unacked = msg
                return result
            if self._closed:
                raise StopAsyncIteration
            wait = _POLL_SECONDS
            if idle_until is not None:
                wait = min(wait, idle_until - loop.time())
                if wait <= 0:
                    raise StopAsyncIteration
            try:
                await self.open()
                assert self._sub is not None
                # A durable feed takes one at a time, each acknowledged before the next is
                # fetched, so none waits past its ack wait; an ephemeral one acks nothing.
                batch = 1 if self.durable is not None else _EPHEMERAL_BATCH
                self._buffer.extend(await self._sub.fetch(batch, timeout=wait))
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, OSError) as exc:
                # The connection is reconnecting, or an ephemeral consumer vanished with a
                # NATS restart: open again (a durable one is on disk and is bound again).
                if not self._interrupted:
                    log.info("syncbus_client: results feed interrupted (%s)", type(exc).__name__)
                    self._interrupted = True
                await self._drop_subscription()
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if self._interrupted:
                log.info("syncbus_client: results feed resumed")
                self._interrupted = False

    async def _drop_subscription(self) -> None:
        # What was fetched and not returned comes again from the next consumer (after last_seq).
        self._buffer.clear()
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def aclose(self) -> None:
        """Stop reading. A durable consumer stays on the server, where it was."""
        self._closed = True
        await self._drop_subscription()


class ProgressFeed:
    """Live progress of running syncs (core NATS: only while subscribed, and may be lost)."""

    def __init__(self, nc: Client, integration_id: str | None) -> None:
        self._nc = nc
        self.subject = progress_filter(integration_id)
        self._sub: Subscription | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[SyncProgress]:
        return self._iterate()

    async def open(self) -> None:
        if self._sub is None:
            self._sub = await self._nc.subscribe(self.subject)

    async def _iterate(self) -> AsyncIterator[SyncProgress]:
        await self.open()
        assert self._sub is not None
        async for msg in self._sub.messages:
            try:
                yield SyncProgress.from_bytes(msg.data)
            except ValidationError:
                log.warning(
                    "syncbus_client: skipped a message on %s that is not progress", msg.subject
                )

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
