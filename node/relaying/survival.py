"""A room's survival across nodes: following the node we take it from, failing over when
it is gone, taking the room over, moving it on, and stepping down after a partition.

One ``Carrier`` per room this node carries with other nodes. It drives the room's
``Carriage`` (node/succession.py, the pure state graph and rules) with real connections:
it feeds it what happened and does what it decides. Every await that talks to a peer has
its own time-out, and a connection to a peer that went silent is aborted, never closed
politely: a frozen peer (SIGSTOP, a cut link) looks alive to TCP and would hold a polite
close for websockets' 10 s close timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, WebSocketException

from federation.relay import (
    DOWNSTREAM_TYPES,
    AfterClose,
    RelayFrameError,
    SuccessionEntry,
    after_close,
    parse_control,
    serialize_control,
)
from node.errors import ParleyError
from node.onair.on_air import OnAir
from node.relaying.context import RelayContext
from node.relaying.mirror import Upstream, abort, entries_of, send_quietly
from node.relaying.names import netloc
from node.rooms import RoomState
from node.succession import PROMOTE, CarryState

logger = logging.getLogger(__name__)

UPSTREAM_SILENCE_S = 1.5
"""No message from the node we take the room from for this long: it is gone."""
RETRY_TIMEOUT_S = 1.0
"""The node just lost is tried once more, this briefly (a frozen node accepts TCP)."""
CONNECT_TIMEOUT_S = 2.0
KEEPALIVE_S = 0.5
PROBE_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 2.0
"""How often an acting origin asks the nodes that carried the room with it and are not
subscribed now whether one carries it on at a higher epoch."""
RETRY_WALK_S = 1.0
RESUME_WINDOW_S = 8.0


class Carrier:
    def __init__(self, ctx: RelayContext, on_air: OnAir) -> None:
        self.ctx = ctx
        self.on_air = on_air
        self.carriage = on_air.carriage
        self.connected = asyncio.Event()
        self.upstream_connects = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._silent = False
        """The last upstream went silent (frozen, or a cut link), rather than closed."""
        self._unattached_since: float | None = None
        self._after = AfterClose.RECONNECT
        """What the last upstream's close asked for (federation.relay.after_close)."""

    @property
    def room_id(self) -> str:
        return self.on_air.room.id

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"carrier-{self.room_id}"
            )

    async def close(self) -> None:
        self._closing = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _upstream(self) -> Upstream | None:
        source = self.on_air.source
        return source if isinstance(source, Upstream) else None

    def _gave_up(self) -> bool:
        """A relay resumed after a restart (or a new copy) that finds no node carrying the
        room on for RESUME_WINDOW_S lets it end here (it never carries it on alone)."""
        if not self.carriage.resumed:
            return False
        now = asyncio.get_running_loop().time()
        if self._unattached_since is None:
            self._unattached_since = now
        if now - self._unattached_since < RESUME_WINDOW_S:
            return False
        logger.info("no node carries room %s on any more; it ends here", self.room_id)
        self.on_air.room.end(None)
        return True

    def _over(self) -> bool:
        return self._closing or self.carriage.state is CarryState.ENDED

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._over():
            if self.carriage.acting:
                await self._as_origin()
                continue
            tried = self.carriage.upstream
            self._silent = False
            followed = tried is not None and await self._follow(tried, CONNECT_TIMEOUT_S)
            if self._over() or self.carriage.acting:
                continue
            if self.carriage.state is CarryState.RECONNECTING and self.carriage.upstream != tried:
                continue  # a handover named the node to follow now
            if self._after is AfterClose.RESUBSCRIBE:
                # A stale connection of ours was replaced: the node is there; no walk.
                await asyncio.sleep(RETRY_WALK_S)
                continue
            plan = self.carriage.upstream_lost(silent=self._silent or not followed)
            for step in plan:
                if step is PROMOTE:
                    logger.info("room %s: first live node on the list; taking over", self.room_id)
                    await self.take_over()
                    break
                assert isinstance(step, SuccessionEntry)
                timeout = RETRY_TIMEOUT_S if step.relay == tried else CONNECT_TIMEOUT_S
                if await self._follow(step.relay, timeout):
                    break
                if self._over() or self.carriage.acting:
                    break
            else:
                if self._gave_up():
                    return
                await asyncio.sleep(RETRY_WALK_S)

    async def _follow(self, url: str, timeout: float) -> bool:
        """Attach to ``url`` and carry its stream until it ends; True if it delivered a
        snapshot we accepted."""
        upstream = self._upstream()
        self._after = AfterClose.RECONNECT
        if upstream is None:
            return False
        try:
            link = await asyncio.wait_for(self.ctx.open_relay(url, self.room_id), timeout)
        except (OSError, TimeoutError, WebSocketException, ParleyError) as exc:
            logger.info("relay %s unreachable: %r", url, exc)
            return False
        self.upstream_connects += 1
        good = False
        upstream.link = link
        reporter = asyncio.get_running_loop().create_task(self._report(link, upstream))
        try:
            while not self._over():
                message = await asyncio.wait_for(link.recv(), UPSTREAM_SILENCE_S)
                if isinstance(message, bytes):
                    upstream.on_binary(message)
                    continue
                verdict = await self._on_text(message, url, upstream)
                if verdict is None:
                    return good
                if verdict and not good:
                    good = True
                    self.connected.set()
        except TimeoutError:
            logger.info("upstream %s of room %s silent; aborting", url, self.room_id)
            self._silent = True
        except (WebSocketException, OSError) as exc:
            code = exc.rcvd.code if isinstance(exc, ConnectionClosed) and exc.rcvd else None
            logger.info("upstream %s of room %s closed (%s): %r", url, self.room_id, code, exc)
            self._closed(code)
        finally:
            reporter.cancel()
            upstream.link = None
            self.connected.clear()
            abort(link)
        return good

    def _closed(self, code: int | None) -> None:
        """The upstream closed with ``code``: what FEDERATION.md's table of close codes
        says to do (a handover was acted on before its close arrived)."""
        self._after = after_close(code)
        if self._after is AfterClose.END and self.on_air.room.state is not RoomState.ENDED:
            logger.info("room %s ended upstream", self.room_id)
            self.on_air.room.end(None)

    async def _report(self, link: ClientConnection, upstream: Upstream) -> None:
        """Our listener count, our users' presence and our relays up when they change,
        and a ping every 0.5 s."""
        reported: tuple[int, frozenset[str], tuple[SuccessionEntry, ...]] | None = None
        while True:
            hub = self.ctx.hubs.get(self.room_id)
            below = tuple(hub.below()) if hub is not None else ()
            state = (self.on_air.local_listener_count(), frozenset(upstream.presence()), below)
            if state != reported:
                reported = state
                count = {"type": "listeners", "count": state[0]}
                presence = {"type": "presence", "users": sorted(state[1])}
                relays = {"type": "relays", "relays": [e.to_json() for e in below]}
                for message in (count, presence, relays):
                    await send_quietly(link, serialize_control(message))
            await send_quietly(link, '{"type":"ping"}')
            upstream.report_due.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(upstream.report_due.wait(), KEEPALIVE_S)

    async def _on_text(self, text: str, url: str, upstream: Upstream) -> bool | None:
        """Apply one state message: True a snapshot was accepted, False nothing to
        report, None leave this node (stale epoch, handover)."""
        try:
            message = parse_control(text, DOWNSTREAM_TYPES)
        except RelayFrameError:
            self.ctx.counters.malformed += 1
            return False
        kind = message["type"]
        if kind == "ping":
            return False
        if kind == "snapshot":
            epoch = int(message["epoch"])
            was = self.carriage.epoch
            path = message.get("path")
            if not self.carriage.snapshot(
                url,
                epoch,
                message.get("acting_origin"),
                entries_of(message),
                [p for p in path if isinstance(p, str)] if isinstance(path, list) else [],
            ):
                logger.warning("refusing %s: epoch %d < %d", url, epoch, self.carriage.epoch)
                return None
            if epoch > was:
                upstream.new_epoch()
            upstream.on_event(message, netloc(url))
            self.ctx.changed(self.on_air)
            return True
        if kind == "handover":
            decision = self.carriage.handover(
                message["epoch"], message["acting_origin"], message["relay"]
            )
            if decision is PROMOTE:
                logger.info("room %s handed over to us (epoch %d)", self.room_id, message["epoch"])
                await self.take_over(message["epoch"])
                return None
            if decision is not None:
                self.ctx.changed(self.on_air)
                return None
            return False
        upstream.on_event(message, netloc(url))
        if kind == "room":
            self.ctx.changed(self.on_air)
        return False

    # -- taking over, stepping down, moving on --------------------------------------------

    async def take_over(self, epoch: int | None = None) -> None:
        """Become the acting origin: our mixer, our speakers; the room's presence is what
        we can see from here."""
        self.carriage.take_over(epoch)
        await self.on_air.use_source(self.ctx.stage.local_mix(self.on_air))
        self.carriage.took_over()
        hub = self.ctx.hubs.get(self.room_id)
        connected = {w.username for w in self.on_air.watchers if w.username is not None}
        if hub is not None:
            connected |= {self.ctx.names.local(h) for h in hub.presence()}
        self.on_air.room.reset_presence(connected, set(self.on_air.speakers))
        self.ctx.changed(self.on_air)
        if hub is not None:
            hub.broadcast_snapshot()

    async def relay_again(self) -> None:
        """We no longer act as origin (moved on, or a peer carries the room at a higher
        epoch): the program comes from upstream again; our speakers' sessions stay and
        their audio goes up the relay."""
        hub = self.ctx.hubs.get(self.room_id)
        if hub is not None:
            hub.drop_remote_speakers()  # uplink is carried one hop only, to the acting origin
        await self.on_air.use_source(self.ctx.upstream_source(self.on_air))
        self.ctx.changed(self.on_air)

    async def move_to(self, target: SuccessionEntry) -> None:
        """Hand the room to ``target``, one of our relays (epoch + 1); follow it after."""
        epoch = self.carriage.hand_over(target)
        logger.info("moving room %s to %s (epoch %d)", self.room_id, target.node, epoch)
        hub = self.ctx.hubs.get(self.room_id)
        if hub is not None:
            hub.hand_over(
                {
                    "type": "handover",
                    "epoch": epoch,
                    "acting_origin": target.node,
                    "relay": target.relay,
                }
            )
        await self.relay_again()
        # Follow the new acting origin now, not after the origin loop's next sleep.
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None
        self.start()

    async def _as_origin(self) -> None:
        """While we act as origin: now and then ask the nodes that carried the room with
        us and do not take it from us now (directly or through a relay) whether one
        carries it on at a higher epoch (we were cut off, or frozen, and they took over):
        then we step down."""
        while self.carriage.state is CarryState.ACTING_ORIGIN and not self._closing:
            await asyncio.sleep(PROBE_INTERVAL_S)
            hub = self.ctx.hubs.get(self.room_id)
            below = {e.node for e in hub.below()} if hub is not None else set()
            for peer in [p for p in self.carriage.peers if p.node not in below]:
                snapshot = await probe(self.ctx, peer.relay)
                if snapshot is None or snapshot.get("origin") != self.carriage.origin:
                    continue
                acting = str(snapshot.get("acting_origin") or "")
                if self.carriage.probe_answer(peer, int(snapshot["epoch"]), acting):
                    logger.info(
                        "room %s is carried on by %s at epoch %s; stepping down",
                        self.room_id,
                        acting,
                        snapshot["epoch"],
                    )
                    await self.relay_again()
                    return


async def probe(ctx: RelayContext, url: str) -> dict[str, Any] | None:
    """The first snapshot ``url`` sends, or None if it cannot be had in time."""
    try:
        link = await asyncio.wait_for(ctx.open_relay(url, None), PROBE_TIMEOUT_S)
    except (OSError, TimeoutError, WebSocketException, ParleyError) as exc:
        logger.debug("succession node %s unreachable: %r", url, exc)
        return None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            while True:
                message = await link.recv()
                if isinstance(message, str):
                    doc = parse_control(message, DOWNSTREAM_TYPES)
                    if doc["type"] == "snapshot":
                        return doc
    except (TimeoutError, WebSocketException, OSError, RelayFrameError):
        return None
    finally:
        abort(link)
