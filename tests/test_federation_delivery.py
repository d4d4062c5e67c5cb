from __future__ import annotations

import datetime as dt

from federation.actors import RemoteActor
from federation.client import PostResult
from federation.delivery import (
    MAX_TRIES,
    CircuitBreaker,
    DeliveryOutcome,
    DeliveryWorker,
    backoff,
    classify,
    delivery_targets,
    next_try_after,
    parse_retry_after,
)
from federation.errors import RemoteFetchError
from federation.ports import DeliveryAttempt

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
ALICE = "https://parley.example/users/alice"


def test_classify() -> None:
    assert classify(200) is DeliveryOutcome.DELIVERED
    assert classify(202) is DeliveryOutcome.DELIVERED
    assert classify(410) is DeliveryOutcome.GONE
    assert classify(400) is DeliveryOutcome.GIVE_UP
    assert classify(401) is DeliveryOutcome.GIVE_UP
    assert classify(404) is DeliveryOutcome.GIVE_UP
    assert classify(429) is DeliveryOutcome.RETRY
    assert classify(500) is DeliveryOutcome.RETRY
    assert classify(503) is DeliveryOutcome.RETRY
    assert classify(None) is DeliveryOutcome.RETRY


def test_backoff_totals_two_to_three_days() -> None:
    total = sum((backoff(n) for n in range(1, MAX_TRIES)), dt.timedelta())
    assert dt.timedelta(days=2) <= total <= dt.timedelta(days=3)
    assert backoff(1) < backoff(2) < backoff(3)


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("120", NOW) == dt.timedelta(seconds=120)
    assert parse_retry_after("Sat, 01 Mar 2025 12:05:00 GMT", NOW) == dt.timedelta(minutes=5)
    assert parse_retry_after("garbage", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert next_try_after(1, "120", NOW) == NOW + dt.timedelta(seconds=120)
    assert next_try_after(3, None, NOW) == NOW + backoff(3)
    assert next_try_after(1, "Sat, 01 Mar 2025 11:00:00 GMT", NOW) == NOW + dt.timedelta(seconds=1)


def actor(name: str, host: str, shared: bool) -> RemoteActor:
    base = f"https://{host}/users/{name}"
    return RemoteActor(
        id=base,
        inbox=f"{base}/inbox",
        shared_inbox=f"https://{host}/inbox" if shared else None,
        preferred_username=name,
        public_key_id=f"{base}#main-key",
        public_key_pem="-----BEGIN PUBLIC KEY-----",
        followers=None,
        url=None,
        name=None,
    )


def test_delivery_targets_dedup_shared_inbox() -> None:
    followers = [
        actor("a", "m.example", True),
        actor("b", "m.example", True),
        actor("c", "m.example", True),
        actor("d", "solo.example", False),
        actor("e", "solo.example", False),
    ]
    assert delivery_targets(followers) == [
        "https://m.example/inbox",
        "https://solo.example/users/d/inbox",
        "https://solo.example/users/e/inbox",
    ]


def test_circuit_breaker() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=dt.timedelta(minutes=10))
    assert breaker.allows("h", NOW)
    breaker.record_failure("h", NOW)
    assert breaker.allows("h", NOW)
    breaker.record_failure("h", NOW)
    assert not breaker.allows("h", NOW)
    assert breaker.allows("other", NOW)
    assert breaker.allows("h", NOW + dt.timedelta(minutes=10))
    breaker.record_success("h")
    assert breaker.allows("h", NOW)


class MemoryDeliveries:
    def __init__(self) -> None:
        self.rows: dict[int, dict[str, object]] = {}

    async def enqueue(self, activity_json: str, inbox_url: str, signing_actor: str) -> None:
        row_id = len(self.rows) + 1
        self.rows[row_id] = {
            "json": activity_json,
            "inbox": inbox_url,
            "actor": signing_actor,
            "tries": 0,
            "next": NOW,
            "state": "queued",
            "error": "",
        }

    async def claim_due(self, now: dt.datetime, limit: int) -> list[DeliveryAttempt]:
        due = [
            DeliveryAttempt(
                i, str(r["json"]), str(r["inbox"]), str(r["actor"]), int(str(r["tries"]))
            )
            for i, r in self.rows.items()
            if r["state"] == "queued" and r["next"] <= now  # type: ignore[operator]
        ]
        return due[:limit]

    async def mark_delivered(self, row_id: int) -> None:
        self.rows[row_id]["state"] = "delivered"

    async def mark_retry(self, row_id: int, next_try: dt.datetime, error: str) -> None:
        row = self.rows[row_id]
        row["tries"] = int(str(row["tries"])) + 1
        row["next"] = next_try
        row["error"] = error

    async def postpone(self, row_id: int, next_try: dt.datetime) -> None:
        self.rows[row_id]["next"] = next_try

    async def mark_dead(self, row_id: int, reason: str) -> None:
        self.rows[row_id]["state"] = "dead"
        self.rows[row_id]["error"] = reason


class Keys:
    async def local_actor_key(self, actor_id: str) -> tuple[str, str] | None:
        return (f"{actor_id}#main-key", "PEM") if actor_id == ALICE else None


class ScriptedPoster:
    def __init__(self, answers: dict[str, list[int | None]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def post_activity(
        self, inbox_url: str, body: bytes, *, key_id: str, private_pem: str
    ) -> PostResult:
        self.calls.append(inbox_url)
        status = self.answers[inbox_url].pop(0)
        if status is None:
            raise RemoteFetchError(None, inbox_url, "ConnectError")
        return PostResult(status, "30" if status == 429 else None)


async def test_worker_outcomes() -> None:
    store = MemoryDeliveries()
    for inbox in ("https://ok.example/inbox", "https://gone.example/inbox",
                  "https://bad.example/inbox", "https://busy.example/inbox",
                  "https://down.example/inbox"):  # fmt: skip
        await store.enqueue('{"type":"Create"}', inbox, ALICE)
    await store.enqueue("{}", "https://ok.example/inbox", "https://parley.example/users/ghost")
    poster = ScriptedPoster(
        {
            "https://ok.example/inbox": [202],
            "https://gone.example/inbox": [410],
            "https://bad.example/inbox": [400],
            "https://busy.example/inbox": [429],
            "https://down.example/inbox": [None],
        }
    )
    gone: list[str] = []

    async def on_gone(inbox: str) -> None:
        gone.append(inbox)

    worker = DeliveryWorker(store, Keys(), poster, clock=lambda: NOW, on_gone=on_gone)
    assert await worker.run_once() == 6
    states = {r["inbox"]: (r["state"], r["tries"]) for r in list(store.rows.values())[:5]}
    assert states["https://ok.example/inbox"] == ("delivered", 0)
    assert states["https://gone.example/inbox"] == ("dead", 0)
    assert states["https://bad.example/inbox"] == ("dead", 0)
    assert states["https://busy.example/inbox"] == ("queued", 1)
    assert states["https://down.example/inbox"] == ("queued", 1)
    assert store.rows[4]["next"] == NOW + dt.timedelta(seconds=30)  # Retry-After honoured
    assert store.rows[5]["next"] == NOW + backoff(1)
    assert store.rows[6]["state"] == "dead"  # no key for that actor
    assert gone == ["https://gone.example/inbox"]
    assert await worker.run_once() == 0  # nothing due yet


async def test_worker_gives_up_after_max_tries() -> None:
    store = MemoryDeliveries()
    await store.enqueue("{}", "https://down.example/inbox", ALICE)
    store.rows[1]["tries"] = MAX_TRIES - 1
    poster = ScriptedPoster({"https://down.example/inbox": [503]})
    await DeliveryWorker(store, Keys(), poster, clock=lambda: NOW).run_once()
    assert store.rows[1]["state"] == "dead"
    assert "gave up" in str(store.rows[1]["error"])


async def test_worker_circuit_breaker_postpones_without_spending_tries() -> None:
    store = MemoryDeliveries()
    for _ in range(3):
        await store.enqueue("{}", "https://down.example/inbox", ALICE)
    poster = ScriptedPoster({"https://down.example/inbox": [500, 500, 500]})
    breaker = CircuitBreaker(threshold=2, cooldown=dt.timedelta(minutes=10))
    await DeliveryWorker(store, Keys(), poster, clock=lambda: NOW, breaker=breaker).run_once()
    assert len(poster.calls) == 2
    assert store.rows[3]["tries"] == 0
    assert store.rows[3]["next"] == NOW + dt.timedelta(minutes=10)
