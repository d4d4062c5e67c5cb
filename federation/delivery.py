"""Outbox delivery: retry policy as constants and pure functions, and a worker over rows.

Policy (after microblog.pub): up to MAX_TRIES attempts with exponential backoff totalling a
little over two days, ``Retry-After`` honoured on 429/503, 410 Gone drops the follower,
other 4xx give up at once (retrying will not make a rejected activity acceptable), 5xx and
network errors retry. A per-host circuit breaker keeps one dead server from eating the
worker's time: while open, that host's rows are postponed without spending a try.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

from federation.actors import RemoteActor
from federation.client import PostResult
from federation.errors import BlockedDomain, FederationError, PrivateAddress, RemoteFetchError
from federation.ports import DeliveryAttempt, DeliveryStore, KeyStore

log = logging.getLogger(__name__)

MAX_TRIES = 16
BACKOFF_BASE = dt.timedelta(seconds=6)
MAX_BACKOFF = dt.timedelta(days=1)
MIN_RETRY_AFTER = dt.timedelta(seconds=1)
BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN = dt.timedelta(minutes=10)
CLAIM_BATCH = 20


class DeliveryOutcome(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"  # 410: the actor is deleted; stop delivering to it
    GIVE_UP = "give_up"
    RETRY = "retry"


def classify(status: int | None) -> DeliveryOutcome:
    """``status=None`` means no HTTP answer (DNS, connect, timeout)."""
    if status is None:
        return DeliveryOutcome.RETRY
    if 200 <= status < 300:
        return DeliveryOutcome.DELIVERED
    if status == 410:
        return DeliveryOutcome.GONE
    # 408 and 429 are the 4xx that mean "later", not "never".
    if status in (408, 429) or status >= 500:
        return DeliveryOutcome.RETRY
    return DeliveryOutcome.GIVE_UP


def backoff(tries: int) -> dt.timedelta:
    """Delay after the ``tries``-th failed attempt (1-based): 6 s, 12 s, 24 s ... at most 1 day."""
    delay = BACKOFF_BASE * (2 ** max(tries - 1, 0))
    return min(delay, MAX_BACKOFF)


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """RFC 9110 section 10.2.3: delay-seconds or an HTTP-date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return dt.timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(when - now, dt.timedelta(0))


def next_try_after(tries: int, retry_after_header: str | None, now: dt.datetime) -> dt.datetime:
    """When to try again after ``tries`` failed attempts; Retry-After wins when present."""
    hint = parse_retry_after(retry_after_header, now)
    if hint is not None:
        return now + min(max(hint, MIN_RETRY_AFTER), MAX_BACKOFF)
    return now + backoff(tries)


def delivery_targets(followers: Iterable[RemoteActor]) -> list[str]:
    """One URL per server when it has a shared inbox; personal inboxes otherwise. Ordered."""
    seen: dict[str, None] = {}
    for actor in followers:
        seen.setdefault(actor.delivery_inbox, None)
    return list(seen)


@dataclass(slots=True)
class _HostState:
    failures: int = 0
    open_until: dt.datetime | None = None


@dataclass(slots=True)
class CircuitBreaker:
    """Per-host breaker: opens after ``threshold`` consecutive failures for ``cooldown``;
    after that one attempt is let through (half-open) and its result decides."""

    threshold: int = BREAKER_THRESHOLD
    cooldown: dt.timedelta = BREAKER_COOLDOWN
    _hosts: dict[str, _HostState] = field(default_factory=dict)

    def allows(self, host: str, now: dt.datetime) -> bool:
        state = self._hosts.get(host)
        return state is None or state.open_until is None or now >= state.open_until

    def open_until(self, host: str) -> dt.datetime | None:
        state = self._hosts.get(host)
        return None if state is None else state.open_until

    def record_success(self, host: str) -> None:
        self._hosts.pop(host, None)

    def failing(self, now: dt.datetime) -> dict[str, tuple[int, dt.datetime | None]]:
        """Hosts whose last deliveries failed: (consecutive failures, open until or None
        when the breaker lets deliveries through)."""
        return {
            host: (
                state.failures,
                state.open_until
                if state.open_until is not None and now < state.open_until
                else None,
            )
            for host, state in self._hosts.items()
        }

    def record_failure(self, host: str, now: dt.datetime) -> None:
        state = self._hosts.setdefault(host, _HostState())
        state.failures += 1
        if state.failures >= self.threshold:
            state.open_until = now + self.cooldown


class Poster(Protocol):
    """The part of FederationClient the worker needs."""

    async def post_activity(
        self, inbox_url: str, body: bytes, *, key_id: str, private_pem: str
    ) -> PostResult: ...


class DeliveryWorker:
    def __init__(
        self,
        store: DeliveryStore,
        keys: KeyStore,
        client: Poster,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        breaker: CircuitBreaker | None = None,
        on_gone: Callable[[str], Awaitable[None]] | None = None,
        batch: int = CLAIM_BATCH,
    ) -> None:
        self._store = store
        self._keys = keys
        self._client = client
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.breaker = breaker or CircuitBreaker()
        self._on_gone = on_gone
        self._batch = batch

    async def run_once(self) -> int:
        """Attempt every due row once; return how many rows were claimed."""
        now = self._clock()
        rows = await self._store.claim_due(now, self._batch)
        for row in rows:
            await self._deliver(row, now)
        return len(rows)

    async def _deliver(self, row: DeliveryAttempt, now: dt.datetime) -> None:
        host = (urlsplit(row.inbox_url).hostname or "").lower()
        if not self.breaker.allows(host, now):
            until = self.breaker.open_until(host) or now
            await self._store.postpone(row.row_id, until)
            return
        key = await self._keys.local_actor_key(row.signing_actor)
        if key is None:
            await self._store.mark_dead(row.row_id, f"no key for {row.signing_actor}")
            return
        key_id, pem = key
        status: int | None
        retry_after: str | None = None
        try:
            result = await self._client.post_activity(
                row.inbox_url, row.activity_json.encode("utf-8"), key_id=key_id, private_pem=pem
            )
            status, retry_after = result.status, result.retry_after
            error = f"HTTP {status}"
        except (BlockedDomain, PrivateAddress) as exc:
            await self._store.mark_dead(row.row_id, str(exc))
            return
        except RemoteFetchError as exc:
            status, error = exc.status, str(exc)
        except FederationError as exc:
            await self._store.mark_dead(row.row_id, str(exc))
            return
        outcome = classify(status)
        tries = row.tries + 1
        if outcome is DeliveryOutcome.DELIVERED:
            self.breaker.record_success(host)
            await self._store.mark_delivered(row.row_id)
        elif outcome is DeliveryOutcome.GONE:
            self.breaker.record_success(host)
            await self._store.mark_dead(row.row_id, "410 Gone")
            if self._on_gone is not None:
                await self._on_gone(row.inbox_url)
        elif outcome is DeliveryOutcome.GIVE_UP:
            self.breaker.record_success(host)
            await self._store.mark_dead(row.row_id, error)
        elif tries >= MAX_TRIES:
            self.breaker.record_failure(host, now)
            await self._store.mark_dead(row.row_id, f"gave up after {tries} tries: {error}")
        else:
            self.breaker.record_failure(host, now)
            await self._store.mark_retry(
                row.row_id, next_try_after(tries, retry_after, now), error
            )
        log.debug("delivery %s to %s: %s (%s)", row.row_id, row.inbox_url, outcome.value, error)
