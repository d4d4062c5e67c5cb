"""What the admin page's first view shows: live rooms (ours and carried) with their
listeners, speakers and acting origin; listeners per transport; media workers and their
load; the federation queues (deliveries pending and failing, circuit breakers open, the
inbox); accounts and reports waiting; the node's recent warnings and errors and its
storage (free space, writes refused for want of it)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from node.fediverse.service import Fediverse
from node.media.workers import WorkerPool
from node.moderation.recent import RecentProblems
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.relaying.service import RelayService
from node.rooms import RoomState
from node.store.accounts import AccountDirectory
from node.store.health import StorageHealth
from node.store.reports import ReportStore


class Dashboard:
    def __init__(
        self,
        *,
        stage: Stage,
        relay: RelayService,
        fediverse: Fediverse,
        accounts: AccountDirectory,
        reports: ReportStore,
        problems: RecentProblems,
        storage: StorageHealth,
        hls_streams: Callable[[], int],
    ) -> None:
        self.stage = stage
        self.relay = relay
        self.fediverse = fediverse
        self.accounts = accounts
        self.reports = reports
        self.problems = problems
        self.storage = storage
        self.hls_streams = hls_streams

    def room_summary(self, on_air: OnAir) -> dict[str, Any]:
        room, carriage = on_air.room, on_air.carriage
        hub = self.relay.hubs.get(room.id)
        own = carriage.origin == f"{self.stage.base_url}/rooms/{room.id}"
        return {
            "id": room.id,
            "title": room.title,
            "state": room.state.value,
            "host": room.host,
            "visibility": room.visibility.value,
            "url": f"{self.stage.base_url}/rooms/{room.id}",
            "origin": carriage.origin,
            "ours": own,
            "acting_origin": carriage.acting_origin or self.stage.base_url,
            "acting_here": carriage.acting,
            "carriage": carriage.state.value,
            "epoch": carriage.epoch,
            "listeners": room.listener_count,
            "listeners_here": {
                "webrtc": len(on_air.listener_sessions),
                "ogg": on_air.http_listeners,
                "relayed": on_air.relayed_listeners,
            },
            "speakers": len(room.stage),
            "publishing": sum(1 for m in room.stage if m.publishing),
            "relays": len(hub.subscribers) if hub is not None else 0,
            "started_at": room.started_at,
        }

    def _federation(self) -> dict[str, Any]:
        db = self.fediverse.deliveries
        counts = db.counts()
        failing = db.failing_hosts()
        breakers: list[dict[str, Any]] = []
        worker = self.fediverse.delivery_worker
        if worker is not None:
            now = dt.datetime.now(dt.UTC)
            for host, (failures, until) in sorted(worker.breaker.failing(now).items()):
                breakers.append(
                    {
                        "host": host,
                        "failures": failures,
                        "open_until": until.timestamp() if until is not None else None,
                    }
                )
        return {
            "deliveries": {
                "queued": counts.get("queued", 0),
                "delivered": counts.get("delivered", 0),
                "dead": counts.get("dead", 0),
            },
            "failing_hosts": failing,
            "circuit_breakers": breakers,
            "open_circuits": sum(1 for b in breakers if b["open_until"] is not None),
            "inbox": self.fediverse.inbox.counts(),
        }

    def _media(self) -> dict[str, Any]:
        listeners = self.stage.listeners
        doc: dict[str, Any] = {
            "peer_connections": self.stage.peers.count(),
            "hls_streams": self.hls_streams(),
            "workers": None,
        }
        if isinstance(listeners, WorkerPool):
            stats = listeners.stats()
            doc["peer_connections"] += listeners.count()
            doc["workers"] = stats
        return doc

    def snapshot(self) -> dict[str, Any]:
        live = [o for o in self.stage.rooms_on_air.values() if o.room.state is RoomState.LIVE]
        rooms = sorted(
            (self.room_summary(o) for o in live),
            key=lambda r: r["started_at"] or 0.0,
            reverse=True,
        )
        transports = {"webrtc": 0, "ogg": 0, "relayed": 0}
        for room in rooms:
            for key, value in room["listeners_here"].items():
                transports[key] += value
        return {
            "node": urlsplit(self.stage.base_url).netloc,
            "at": time.time(),
            "rooms": rooms,
            "listeners": transports,
            "media": self._media(),
            "federation": self._federation(),
            "accounts": self.accounts.counts(),
            "reports_open": self.reports.count_open(),
            "recent_problems": self.problems.recent(),
            "storage": self.storage.to_json(),
        }
