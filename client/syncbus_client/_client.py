"""`SyncbusClient`: stage vouchers, request syncs, await and follow results, over NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import urllib.parse
from collections import OrderedDict
from collections.abc import Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from syncbus_shared import staging
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    RequestOrigin,
    SyncRequest,
    SyncResult,
    SyncScope,
    Voucher,
    utc_now,
)
from syncbus_shared.keys import is_integration_id
from syncbus_shared.tracing import publish_span

from ._errors import (
    ConnectError,
    InvalidRequestError,
    Problem,
    PublishError,
    ResultTimeoutError,
)
from ._feeds import (
    ProgressFeed,
    ResultFeed,
    Start,
    check_durable,
    recent_results,
    result_filter,
    scan_for_result,
)

log = logging.getLogger("syncbus_client")

DEFAULT_URL = "nats://127.0.0.1:4222"
CLOCK_SKEW = timedelta(minutes=1)
"""How far the NATS server's clock may be behind this host's when a result scan starts."""
DEFAULT_LOOKBACK = timedelta(days=1)
"""How far back `await_result` looks for a request it knows only by id."""
_REMEMBERED = 10_000

StageReport = staging.StageReport


@dataclass(frozen=True)
class RequestReceipt:
    """NATS stored a sync request (or already held one with the same key).

    `request_id` is the request whose result answers this one: the new request's id, or, when
    `duplicate`, the id of the request already stored under this key (the broker dropped the new
    copy, which therefore gets no result of its own). `duplicate` is the broker's answer within
    its dedup window (2 h); a key exported longer ago is stored again and its result has status
    `duplicate`, with nothing sent twice either way.
    """

    request_id: str
    idempotency_key: str
    duplicate: bool
    integration_id: str
    stream_seq: int
    """The SYNC_REQUESTS sequence of the stored request."""
    published_at: datetime
    """When the request this receipt points to was published."""

    def as_dict(self) -> dict[str, Any]:
        """The three fields of the HTTP ingress's answer."""
        return {
            "request_id": self.request_id,
            "idempotency_key": self.idempotency_key,
            "duplicate": self.duplicate,
        }


def _without_userinfo(url: str) -> str:
    """The URL(s) without user and password, for messages."""
    parts = []
    for server in url.split(","):
        split = urllib.parse.urlsplit(server.strip())
        host = split.hostname or ""
        netloc = f"{host}:{split.port}" if split.port else host
        parts.append(urllib.parse.urlunsplit(split._replace(netloc=netloc)) if netloc else server)
    return ",".join(parts)


class _Connecting:
    """What `SyncbusClient.connect` returns: await it, or use it with `async with`."""

    def __init__(self, opening: Coroutine[Any, Any, SyncbusClient]) -> None:
        self._opening = opening
        self._client: SyncbusClient | None = None

    def __await__(self) -> Generator[Any, None, SyncbusClient]:
        return self._opening.__await__()

    async def __aenter__(self) -> SyncbusClient:
        self._client = await self._opening
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()


class SyncbusClient:
    """An application's way into syncbus, over one NATS connection.

        async with SyncbusClient.connect("nats://127.0.0.1:4222") as client:
            receipt = await client.request_sync("toyen-xledger", period_id="2017-01")
            result = await client.await_result(receipt, timeout=60)

    `SyncbusClient(nc)` wraps a connection the application already has (and leaves it open on
    `close()`). The connection reconnects by itself for as long as the client lives.
    """

    def __init__(self, nc: Client, *, close_connection: bool = False) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._close_connection = close_connection
        self._feeds: list[ResultFeed | ProgressFeed] = []
        self._published: OrderedDict[str, RequestReceipt] = OrderedDict()

    # --- connection ------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str = DEFAULT_URL,
        *,
        name: str = "syncbus-client",
        user: str | None = None,
        password: str | None = None,
        inbox_prefix: str | None = None,
        tls: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
    ) -> _Connecting:
        """Connect to NATS (comma-separated URLs). Raises `ConnectError` after `connect_timeout`.

        Against a NATS with syncbus's users (deploy/nats), an application connects as its user
        with its inbox prefix (`inbox_prefix="_INBOX_application"`: the only inbox it may
        read); `tls` is an `ssl.SSLContext` trusting the server's CA.
        """
        options: dict[str, Any] = {}
        if user is not None:
            options["user"] = user
        if password is not None:
            options["password"] = password
        if inbox_prefix is not None:
            options["inbox_prefix"] = inbox_prefix
        if tls is not None:
            options["tls"] = tls
        return _Connecting(cls._open(url, name, options, connect_timeout))

    @classmethod
    async def _open(
        cls, url: str, name: str, options: dict[str, Any], connect_timeout: float
    ) -> SyncbusClient:
        connected = False

        async def on_error(exc: Exception) -> None:
            level = logging.WARNING if connected else logging.DEBUG
            log.log(level, "syncbus_client: NATS error %s", type(exc).__name__)

        async def on_disconnect() -> None:
            if connected:
                log.info("syncbus_client: disconnected from NATS, reconnecting")

        async def on_reconnect() -> None:
            log.info("syncbus_client: reconnected to NATS")

        nc = Client()
        # nats-py annotates the wait as int; it is used as seconds and may be a fraction.
        options = {"reconnect_time_wait": 0.5, **options}
        servers = [part.strip() for part in url.split(",") if part.strip()]
        try:
            async with asyncio.timeout(connect_timeout):
                await nc.connect(
                    servers=servers,
                    name=name,
                    connect_timeout=max(1, min(5, int(connect_timeout))),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    **options,
                )
        except (TimeoutError, nats.errors.Error, OSError):
            with contextlib.suppress(Exception):
                await nc.close()
            raise ConnectError(_without_userinfo(url), connect_timeout) from None
        connected = True
        return cls(nc, close_connection=True)

    @property
    def nc(self) -> Client:
        """The NATS connection, for what this client does not cover."""
        return self._nc

    @property
    def is_connected(self) -> bool:
        return bool(self._nc.is_connected)

    async def close(self) -> None:
        """Close open feeds (durable ones stay on the server) and the connection if it is ours."""
        for feed in self._feeds:
            await feed.aclose()
        self._feeds.clear()
        if self._close_connection and not self._nc.is_closed:
            try:
                await self._nc.drain()  # flushes what was published, then closes
            except Exception:
                with contextlib.suppress(Exception):
                    await self._nc.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- staging ---------------------------------------------------------------------------

    async def stage_vouchers(
        self, integration_id: str, vouchers: Iterable[Voucher | Mapping[str, Any]]
    ) -> StageReport:
        """Stage vouchers for export, each under its own period; staging one again is a no-op.

        Vouchers are immutable once staged, as in bookkeeping: a correction is a new voucher.
        All are checked before the first is staged, so a bad one stages nothing.
        """
        _check_integration(integration_id)
        checked: list[Voucher] = []
        for index, voucher in enumerate(vouchers):
            if isinstance(voucher, Voucher):
                checked.append(voucher)
                continue
            try:
                checked.append(Voucher.model_validate(voucher))
            except ValidationError as exc:
                problems = [
                    Problem(f"vouchers.{index}.{p.field}".rstrip("."), p.message)
                    for p in InvalidRequestError.from_validation_error(exc).problems
                ]
                raise InvalidRequestError(problems, "voucher") from None
        try:
            return await staging.stage_vouchers(self._js, integration_id, checked)
        except (nats.errors.Error, OSError) as exc:
            raise PublishError(f"ledger.{integration_id}.>", _reason(exc)) from exc

    # --- requests --------------------------------------------------------------------------

    async def request_sync(
        self,
        integration_id: str,
        *,
        period_id: str | None = None,
        vouchers: Iterable[Voucher | Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
        scope: SyncScope | None = None,
        request_id: str | None = None,
        timeout: float = 10.0,
    ) -> RequestReceipt:
        """Ask for one export: the staged vouchers of `period_id`, or `vouchers` inline.

        The key defaults to `<integration_id>:<period_id>`; whatever is published under one key
        is exported once. Raises `InvalidRequestError` (nothing published) or `PublishError`
        (publishing again with the same key is safe).
        """
        _check_integration(integration_id)
        fields: dict[str, Any] = {
            "integration_id": integration_id,
            "period_id": period_id,
            "idempotency_key": idempotency_key or "",
            "origin": RequestOrigin.APPLICATION,
        }
        if vouchers is not None:
            fields["vouchers"] = tuple(vouchers)
        if scope is not None:
            fields["scope"] = scope
        if request_id is not None:
            fields["request_id"] = request_id
        try:
            request = SyncRequest.model_validate(fields)
        except ValidationError as exc:
            raise InvalidRequestError.from_validation_error(exc) from None
        return await self.publish_request(request, timeout=timeout)

    async def publish_request(
        self, request: SyncRequest, *, timeout: float = 10.0
    ) -> RequestReceipt:
        """Publish a request built by the caller, with `Nats-Msg-Id` set to its key."""
        subject = t.request_subject(request.integration_id)
        body = request.to_bytes()
        try:
            # The application's own trace (if it has one) continues into syncbus: the span
            # context goes in the headers, and the dispatcher's run becomes its child.
            with publish_span(subject, body, {"Nats-Msg-Id": request.idempotency_key}) as headers:
                ack = await self._js.publish(
                    subject, body, timeout=timeout, stream=t.STREAM_REQUESTS, headers=headers
                )
        except nats.errors.NoRespondersError as exc:
            raise PublishError(
                subject, "no stream stores sync requests; is it provisioned?"
            ) from exc
        except (nats.errors.Error, OSError) as exc:
            raise PublishError(subject, _reason(exc)) from exc
        receipt = RequestReceipt(
            request_id=request.request_id,
            idempotency_key=request.idempotency_key,
            duplicate=bool(ack.duplicate),
            integration_id=request.integration_id,
            stream_seq=ack.seq,
            published_at=request.published_at,
        )
        if receipt.duplicate:
            receipt = await self._original(receipt)
        self._remember(receipt)
        return receipt

    async def _original(self, receipt: RequestReceipt) -> RequestReceipt:
        """For a duplicate: the receipt of the request the stream already held under the key."""
        try:
            stored = await self._js.get_msg(t.STREAM_REQUESTS, receipt.stream_seq)
            original = SyncRequest.from_bytes(stored.data or b"")
        except (nats.errors.Error, OSError, NotFoundError, ValidationError) as exc:
            log.info(
                "syncbus_client: the original of duplicate %s could not be read (%s)",
                receipt.idempotency_key,
                type(exc).__name__,
            )
            return receipt
        return RequestReceipt(
            request_id=original.request_id,
            idempotency_key=receipt.idempotency_key,
            duplicate=True,
            integration_id=receipt.integration_id,
            stream_seq=receipt.stream_seq,
            published_at=original.published_at,
        )

    def _remember(self, receipt: RequestReceipt) -> None:
        self._published[receipt.request_id] = receipt
        self._published.move_to_end(receipt.request_id)
        while len(self._published) > _REMEMBERED:
            self._published.popitem(last=False)

    # --- results ---------------------------------------------------------------------------

    async def await_result(
        self,
        request: RequestReceipt | str,
        timeout: float = 60.0,
        *,
        integration_id: str | None = None,
        since: datetime | None = None,
    ) -> SyncResult:
        """The final result of one request; `ResultTimeoutError` if none arrives in `timeout`.

        Pass the receipt (or a request id this client published). For a request id from
        elsewhere, `integration_id` narrows the search and `since` says how far back to look
        (default one day). A result that arrived before this call is found too.
        """
        receipt = request if isinstance(request, RequestReceipt) else self._published.get(request)
        request_id = receipt.request_id if receipt is not None else str(request)
        if receipt is not None:
            subject = result_filter(receipt.integration_id)
            start = receipt.published_at - CLOCK_SKEW
        else:
            subject = result_filter(integration_id)
            start = (since or utc_now() - DEFAULT_LOOKBACK) - CLOCK_SKEW
        result = await scan_for_result(self._js, request_id, subject, start, timeout)
        if result is None:
            raise ResultTimeoutError(request_id, timeout)
        return result

    def results(
        self,
        integration_id: str | None = None,
        *,
        durable: str | None = None,
        start: Start = "all",
        idle_timeout: float | None = None,
        ack_wait: float = 300.0,
    ) -> ResultFeed:
        """Results as they arrive (of one integration, or all); see `ResultFeed`.

        With `durable`, a consumer of that name on SYNC_RESULTS keeps the position across
        restarts; `start` (`"all"`, `"new"` or an instant) applies when it is first created.
        """
        if integration_id is not None:
            _check_integration(integration_id)
        feed = ResultFeed(
            self._js,
            integration_id,
            durable=durable,
            start=start,
            idle_timeout=idle_timeout,
            ack_wait=ack_wait,
        )
        self._feeds.append(feed)
        return feed

    async def delete_results_durable(self, durable: str) -> bool:
        """Forget a durable results feed on the server; False if there was none."""
        try:
            return bool(await self._js.delete_consumer(t.STREAM_RESULTS, check_durable(durable)))
        except NotFoundError:
            return False

    async def recent_results(
        self, integration_id: str | None = None, *, limit: int = 20
    ) -> list[SyncResult]:
        """The last `limit` results (of one integration, or all), oldest first."""
        if integration_id is not None:
            _check_integration(integration_id)
        return await recent_results(self._js, integration_id, limit)

    def progress(self, integration_id: str | None = None) -> ProgressFeed:
        """Live progress of running syncs (core NATS: only what is sent while subscribed)."""
        if integration_id is not None:
            _check_integration(integration_id)
        feed = ProgressFeed(self._nc, integration_id)
        self._feeds.append(feed)
        return feed


def _check_integration(integration_id: str) -> None:
    if not is_integration_id(integration_id):
        raise InvalidRequestError(
            [
                Problem(
                    "integration_id",
                    "an integration id is 1-64 letters, digits, '-' or '_' (it becomes a "
                    "subject token)",
                )
            ]
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, nats.errors.TimeoutError):
        return "no answer in time"
    if isinstance(exc, nats.errors.ConnectionClosedError):
        return "the connection is closed"
    return type(exc).__name__
