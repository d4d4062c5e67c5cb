"""The node's relaying: the registry the web layer and the inbox talk to.

- a hub per room relays subscribe to (node.relaying.hub)
- a carrier per room carried with other nodes (node.relaying.survival)
- opening a room of another node here (a *mirror*, node.relaying.mirror)
- room actions of remote users arriving in the inbox (federation.ports.RoomActions)
- persistence and restart: resumed mirrors, a crashed origin asking its successors

Wire format: federation/relay.py; rules: FEDERATION.md "Node-to-node audio relay".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from federation.errors import ActivityParseError, FederationError
from federation.relay import RELAY_PATH, SequenceFilter, SuccessionEntry
from federation.room_activities import parse_room_activity
from federation.signatures import sign_request
from node.accounts import Account
from node.errors import Conflict, Forbidden, InvalidInput, ParleyError
from node.onair.events import Event
from node.onair.on_air import OnAir
from node.onair.stage import Stage, ws_url
from node.relaying.counters import RelayCounters
from node.relaying.discovery import RoomFinder, relay_url_of, room_url_parts
from node.relaying.hub import RelayHub, RelaySubscriber
from node.relaying.mirror import Upstream
from node.relaying.names import Names, http_url, netloc
from node.relaying.ports import RelaySigner
from node.relaying.survival import CONNECT_TIMEOUT_S, Carrier, probe
from node.room_actions import BY_ACTIVITY, Act, apply
from node.rooms import MODERATORS, Room, RoomState, new_room_id, replicate, visibility_of
from node.store.relaying import CarriedRoomRow, RelayRooms
from node.succession import Carriage, CarryState

logger = logging.getLogger(__name__)

MAX_RELAY_MESSAGE = 256 * 1024
RECOVERY_WINDOW_S = 8.0
"""A restarted origin waits this long for a relay that answers to show a higher epoch
(it refuses the room's relay subscriptions meanwhile, so the relays do take over)."""
CLOSE_TIMEOUT_S = 1.0


class RelayService:
    def __init__(
        self,
        stage: Stage,
        store: RelayRooms,
        signer: RelaySigner,
        *,
        ended_while_away: Callable[[], Awaitable[None]],
    ) -> None:
        self.stage = stage
        self.store = store
        self.signer = signer
        self.base_url = stage.base_url
        self.names = Names(netloc(self.base_url))
        self.counters = RelayCounters()
        self.uplink_filter = SequenceFilter()
        self.hubs: dict[str, RelayHub] = {}
        self.carriers: dict[str, Carrier] = {}
        self.finder = RoomFinder(signer.federation_client)
        self._ended_while_away = ended_while_away
        """Announces our rooms that ended while we were down (the room announcer)."""
        self._recoveries: set[asyncio.Task[None]] = set()
        stage.on_air(self._watch_room)

    def relay_url(self, room_id: str) -> str:
        return ws_url(self.base_url) + RELAY_PATH.format(room_id=room_id)

    # -- the parts' shared needs (node.relaying.context) ----------------------------------

    async def open_relay(self, url: str, room_id: str | None) -> ClientConnection:
        key_id, pem = self.signer.instance_key()
        target = url
        if room_id is not None:
            # The relay URL of our copy rides along (signed) so the carrying node can put
            # us on the succession list.
            sep = "&" if "?" in url else "?"
            target = f"{url}{sep}" + str(httpx.QueryParams({"relay": self.relay_url(room_id)}))
        signed = sign_request("GET", http_url(target), {}, None, key_id, pem)
        # The one outgoing client: blocked domains and the address policy apply here too.
        try:
            return await self.signer.federation_client().open_websocket(
                target,
                signed,
                max_size=MAX_RELAY_MESSAGE,
                open_timeout=CONNECT_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                ping_interval=None,
                compression=None,
            )
        except FederationError as exc:
            raise Forbidden(f"relay {netloc(url)} is not reachable from here: {exc}") from None

    def upstream_source(self, on_air: OnAir) -> Upstream:
        def relay_presence() -> set[str]:
            hub = self.hubs.get(on_air.room.id)
            return hub.presence() if hub is not None else set()

        return Upstream(
            on_air,
            names=self.names,
            counters=self.counters,
            signer=self.signer,
            relay_presence=relay_presence,
        )

    def changed(self, on_air: OnAir) -> None:
        """Persist a room's carriage (a restart resumes it; a crashed origin asks its
        successors, FEDERATION.md "Survival")."""
        carriage = on_air.carriage
        room = on_air.room
        own_room = carriage.origin == f"{self.base_url}/rooms/{room.id}"
        if carriage.state is CarryState.ENDED or room.state is RoomState.ENDED:
            self.store.forget_mirror(room.id)
            self.store.forget_origin(room.id)
            return
        if own_room and carriage.acting:
            self.store.save_origin(room.id, carriage.epoch, list(carriage.succession))
            self.store.forget_mirror(room.id)
            return
        self.store.save_mirror(
            CarriedRoomRow(
                id=room.id,
                origin=carriage.origin,
                upstream=carriage.upstream or "",
                epoch=carriage.epoch,
                succession=list(carriage.succession),
                room=room.to_json(),
                promoted=carriage.acting,
            )
        )
        if own_room:
            self.store.forget_origin(room.id)

    # -- rooms on air ---------------------------------------------------------------------

    def _watch_room(self, on_air: OnAir) -> None:
        def ended(event: Event) -> None:
            if event["type"] == "room" and on_air.room.state is RoomState.ENDED:
                self.changed(on_air)
                self.hubs.pop(on_air.room.id, None)
                carrier = self.carriers.pop(on_air.room.id, None)
                if carrier is not None:
                    asyncio.get_running_loop().create_task(carrier.close())

        on_air.events.subscribe(ended)

    def carrier(self, on_air: OnAir) -> Carrier:
        carrier = self.carriers.get(on_air.room.id)
        if carrier is None or carrier.on_air is not on_air:
            carrier = self.carriers[on_air.room.id] = Carrier(self, on_air)
        return carrier

    def hub(self, on_air: OnAir) -> RelayHub:
        hub = self.hubs.get(on_air.room.id)
        if hub is None or hub.on_air is not on_air:
            hub = self.hubs[on_air.room.id] = RelayHub(
                on_air,
                names=self.names,
                counters=self.counters,
                uplink_filter=self.uplink_filter,
                room_json=lambda o: self.stage.room_json(o.room),
                changed=self.changed,
            )
            # An acting origin with relays asks them now and then whether one carries
            # the room on without it (a partition that healed).
            self.carrier(on_air).start()
        return hub

    def subscribe(self, on_air: OnAir, subscriber: RelaySubscriber) -> RelayHub:
        if on_air.room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        hub = self.hub(on_air)
        hub.add(subscriber)
        return hub

    def _carry(
        self,
        doc: dict[str, Any],
        peer_host: str | None,
        carriage: Carriage,
        *,
        room_id: str,
    ) -> OnAir:
        """Put a room of another node on air here, relayed (a mirror). Mirrors are not in
        the rooms table and are not announced."""

        def name(n: str) -> str:
            return self.names.from_peer(n, peer_host) if peer_host else n

        host = doc.get("host") or {}
        room = Room(
            id=room_id,
            host=name(str(host.get("username") or "host")),
            host_display_name=str(host.get("display_name") or ""),
            title=str(doc.get("title") or "Remote room"),
            visibility=visibility_of(doc),
            max_speakers=int(doc.get("max_speakers") or self.stage.config.media.max_speakers),
        )
        room.state = RoomState.LIVE
        replicate(room, doc, name)
        on_air = self.stage.put_on_air(room, carriage, self.upstream_source)
        self.changed(on_air)
        self.carrier(on_air).start()
        return on_air

    def mirror_of(self, origin: str) -> OnAir | None:
        for on_air in self.stage.rooms_on_air.values():
            if on_air.carriage.origin == origin and on_air.carriage.remote:
                return on_air
        return None

    async def open_mirror(self, account: Account, body: dict[str, Any]) -> OnAir:
        """Show a live room of another node here, by its URL or its host's handle."""
        del account  # any user of ours may open one
        url, handle = body.get("url"), body.get("handle")
        if isinstance(url, str) and url.strip():
            base, local_id = room_url_parts(url.strip())
            if netloc(base) == self.names.own_host:
                return self.stage.get(local_id)
            doc = await self.finder.room_at(url.strip())
        elif isinstance(handle, str) and handle.strip():
            doc = await self.finder.live_room_of(handle.strip())
        else:
            raise InvalidInput("url", "give the room's url or its host's handle")
        origin = str(doc.get("origin") or doc["url"])
        if netloc(origin) == self.names.own_host:
            return self.stage.get(origin.rstrip("/").rsplit("/", 1)[-1])
        for on_air in self.stage.rooms_on_air.values():
            if on_air.carriage.origin == origin and on_air.room.state is not RoomState.ENDED:
                return on_air
        if doc.get("state") != RoomState.LIVE:
            raise Conflict("the room is not live")
        base = str(doc["url"]).split("/rooms/")[0]
        room_id = new_room_id()
        # A new copy has carried nothing yet: like a copy resumed after a restart it never
        # takes the room over before it followed a node (a slow first subscription to a
        # live origin must not start a second origin), and it ends if nobody carries it.
        carriage = Carriage.relay_of(
            self.stage.own_entry(room_id), origin, relay_url_of(doc), resumed=True
        )
        on_air = self._carry(doc, netloc(base), carriage, room_id=room_id)
        # Return once the first snapshot arrived (or soon anyway: the client watches).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.carrier(on_air).connected.wait(), 5)
        return on_air

    # -- restart ----------------------------------------------------------------------------

    def restore(self) -> None:
        """Mirrors that were live before a restart resume: they re-attach upstream (a
        restarted node never resumes as acting origin alone)."""
        for row in self.store.live_mirrors():
            carriage = Carriage.relay_of(
                self.stage.own_entry(row.id),
                row.origin,
                row.upstream or row.succession[0].relay,
                epoch=row.epoch,
                succession=row.succession,
                resumed=True,
            )
            self._carry(row.room, None, carriage, room_id=row.id)

    def rooms_to_recover(self) -> dict[str, tuple[int, list[SuccessionEntry]]]:
        return self.store.origins_to_recover(self.base_url)

    def mirrored_rooms(self) -> set[str]:
        """Rooms restore() resumes as mirrors (some are ours, moved to another node)."""
        return {row.id for row in self.store.live_mirrors()}

    def recover_origins(self, rooms: dict[str, tuple[int, list[SuccessionEntry]]]) -> None:
        self.stage.recovering.update(rooms)
        for room_id, (epoch, entries) in rooms.items():
            task = asyncio.get_running_loop().create_task(
                self._recover(room_id, epoch, entries), name=f"recover-{room_id}"
            )
            self._recoveries.add(task)
            task.add_done_callback(self._recoveries.discard)

    async def _recover(self, room_id: str, epoch: int, entries: list[SuccessionEntry]) -> None:
        """Our room was live when we crashed: if a node of its succession list carries it
        at a higher epoch, follow that node; only if none answers, end it as before."""
        own_url = f"{self.base_url}/rooms/{room_id}"
        deadline = time.monotonic() + RECOVERY_WINDOW_S
        try:
            while True:
                answered = False
                for entry in entries:
                    snapshot = await probe(self, entry.relay)
                    if snapshot is None or snapshot.get("origin") != own_url:
                        continue
                    answered = True
                    if snapshot["epoch"] > epoch:
                        logger.info(
                            "room %s is carried on by %s (epoch %d); following it",
                            room_id,
                            snapshot.get("acting_origin"),
                            snapshot["epoch"],
                        )
                        self.stage.recovering.discard(room_id)
                        carriage = Carriage.relay_of(
                            self.stage.own_entry(room_id), own_url, entry.relay, epoch=epoch
                        )
                        self.store.forget_origin(room_id)
                        self._carry(
                            snapshot["room"], netloc(entry.relay), carriage, room_id=room_id
                        )
                        return
                if not answered or time.monotonic() > deadline:
                    break
                # A relay that has not taken over yet will: we refuse its reconnects.
                await asyncio.sleep(0.5)
        finally:
            self.stage.recovering.discard(room_id)
        logger.info("no node carries on room %s; it ends", room_id)
        self.stage.store.end_live(room_id, time.time())
        self.store.forget_origin(room_id)
        await self._ended_while_away()

    # -- moving a room ----------------------------------------------------------------------

    async def move(self, on_air: OnAir, account: Account, body: dict[str, Any]) -> None:
        """Hand a live room we act as origin for to one of its relays (epoch + 1); we
        become a relay of the new acting origin."""
        to = body.get("to")
        if not isinstance(to, str) or not to.startswith(("http://", "https://")):
            raise InvalidInput("to", "must be the base URL of a node relaying the room")
        to = to.rstrip("/")
        room = on_air.room
        if room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        if not on_air.carriage.acting:
            raise Forbidden("move the room on the node that carries it now")
        if room.role_of(account.username) not in MODERATORS:
            raise Forbidden("only the host or a cohost may move the room")
        hub = self.hubs.get(room.id)
        target = None
        if hub is not None:
            target = next(
                (s.entry for s in hub.subscribers if s.entry is not None and s.entry.node == to),
                None,
            )
        if target is None:
            raise Conflict("that node does not relay this room now")
        await self.carrier(on_air).move_to(target)

    # -- activities of remote users (federation.ports.RoomActions) --------------------------

    async def apply_activity(self, actor_id: str, activity: dict[str, Any]) -> None:
        """A room action from a remote user (already verified as signed by ``actor_id``)."""
        action = BY_ACTIVITY.get(str(activity.get("type")))
        if action is None:
            logger.info("unknown room action %s", activity.get("type"))
            return
        try:
            parsed = parse_room_activity(activity, tuple(action.arguments))
        except ActivityParseError as exc:
            logger.info("room action %s refused: %s", action.activity, exc)
            return
        on_air = next(
            (
                o
                for o in self.stage.rooms_on_air.values()
                if o.carriage.origin == parsed.room and o.carriage.acting
            ),
            None,
        )
        if on_air is None:
            logger.info("room action for a room we do not act as origin for: %s", parsed.room)
            return
        handle = await self.signer.handle_of(actor_id)
        who = self.names.local(handle)
        target = self.names.local(parsed.member) if parsed.member else who
        try:
            act = Act(who, target, action.parse(parsed.arguments))
            if action.joins and who not in on_air.room.members:
                on_air.room.connect(who, handle)
            apply(on_air.room, action, act)
        except ParleyError as exc:
            logger.info("room action %s by %s refused: %s", action.activity, handle, exc)

    # -- stats and the end ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``relay`` of ``GET /api/v1/node/stats``: every key for every room on air here
        (docs/API.md), whether this node acts as its origin or relays it."""
        rooms: dict[str, Any] = {}
        upstreams = 0
        for room_id, on_air in self.stage.rooms_on_air.items():
            hub = self.hubs.get(room_id)
            if hub is not None and hub.on_air is not on_air:
                hub = None
            carrier = self.carriers.get(room_id)
            carriage = on_air.carriage
            connected = bool(carrier and carrier.connected.is_set() and not carriage.acting)
            upstreams += int(connected)
            rooms[room_id] = {
                "subscribers": len(hub.subscribers) if hub else 0,
                "remote_speakers": sorted(hub.remote_speakers) if hub else [],
                "upstream": carriage.upstream if connected else None,
                "upstream_connects": carrier.upstream_connects if carrier else 0,
                "acting_origin": carriage.acting_origin,
                "epoch": carriage.epoch,
                "promoted": carriage.to_json()["promoted"],
                "carriage": carriage.state.value,
            }
        return {
            "subscribers": sum(len(h.subscribers) for h in self.hubs.values()),
            "upstreams": upstreams,
            "rooms": rooms,
            **self.counters.to_json(),
        }

    async def close(self) -> None:
        for task in list(self._recoveries):
            task.cancel()
        for carrier in list(self.carriers.values()):
            await carrier.close()
        for hub in list(self.hubs.values()):
            hub.close()
