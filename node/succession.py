"""A room's carriage across nodes: which node acts as its origin, at which epoch, and what
this node does when the node it takes the room from is gone. Pure: no I/O, no clock.

Every room on air has one ``Carriage``. A room started here begins ``ACTING_ORIGIN`` at
epoch 0; a room of another node shown here begins ``RECONNECTING`` until the first
snapshot it accepts. The real node (node.relaying) and the simulator
(tests/test_succession.py) drive the same object: they feed it what happened (a snapshot,
a lost upstream, a handover, a probe's answer) and do what it decides.

Declared life (anything else raises ``IllegalCarriageMove``)::

    RECONNECTING --snapshot--> FOLLOWING --upstream lost--> RECONNECTING
    RECONNECTING --own entry first on the list / handover to us--> TAKING_OVER
    TAKING_OVER --mixer runs--> ACTING_ORIGIN --move--> HANDING_OVER --> RECONNECTING
    ACTING_ORIGIN --a peer carries the room at a higher epoch--> RECONNECTING
    any --room ended--> ENDED

Epochs: every node of a room has a *slot*, its position in the room's order (the
succession lists it has seen, merged in the order nodes first appeared: the node that
started the room is 0, its first relay 1 ...). A node takes the room over at the smallest
epoch above every epoch it knows of whose remainder modulo ``SLOTS`` is its slot, and a
move names the slot of the node it moves to. So two nodes never claim the same epoch, even
when they cannot see each other (a partition: both sides carry the room on), as long as
they agree on the order (the first ``SLOTS`` nodes of a room). A node follows only
snapshots whose epoch is not below its own, and an acting origin that finds a peer
carrying the room at a higher epoch steps down and follows it, so after a partition heals
every node converges on the highest epoch. The first take-over of a room is epoch 1 (its
first relay), as before.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from federation.relay import SuccessionEntry, merge_succession
from node.errors import Conflict


class CarryState(enum.StrEnum):
    FOLLOWING = "following"
    RECONNECTING = "reconnecting"
    TAKING_OVER = "taking_over"
    ACTING_ORIGIN = "acting_origin"
    HANDING_OVER = "handing_over"
    ENDED = "ended"


CARRY_TRANSITIONS: dict[CarryState, frozenset[CarryState]] = {
    CarryState.RECONNECTING: frozenset(
        {CarryState.FOLLOWING, CarryState.RECONNECTING, CarryState.TAKING_OVER, CarryState.ENDED}
    ),
    CarryState.FOLLOWING: frozenset(
        {CarryState.FOLLOWING, CarryState.RECONNECTING, CarryState.TAKING_OVER, CarryState.ENDED}
    ),
    CarryState.TAKING_OVER: frozenset({CarryState.ACTING_ORIGIN, CarryState.ENDED}),
    CarryState.ACTING_ORIGIN: frozenset(
        {CarryState.HANDING_OVER, CarryState.RECONNECTING, CarryState.ENDED}
    ),
    CarryState.HANDING_OVER: frozenset({CarryState.RECONNECTING, CarryState.ENDED}),
    CarryState.ENDED: frozenset(),
}


class IllegalCarriageMove(Conflict):
    def __init__(self, current: CarryState, target: CarryState) -> None:
        super().__init__(f"a carried room cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


class Promote:
    """A step of a failover plan: we are next on the list; take the room over."""

    def __repr__(self) -> str:
        return "PROMOTE"


PROMOTE = Promote()
Step = SuccessionEntry | Promote

SLOTS = 64


def next_epoch(above: int, slot: int) -> int:
    """The smallest epoch above ``above`` that belongs to ``slot``."""
    slot %= SLOTS
    epoch = above - above % SLOTS + slot
    return epoch if epoch > above else epoch + SLOTS


@dataclass
class Carriage:
    own: SuccessionEntry
    """This node's entry for the room: its base URL and its relay URL for its copy."""
    origin: str
    """The room's identity: its URL on the node that started it."""
    state: CarryState
    epoch: int = 0
    acting_origin: str = ""
    upstream: str | None = None
    """Relay URL of the node we take the room from (None while acting origin)."""
    succession: list[SuccessionEntry] = field(default_factory=list)
    """The list as last received from upstream, or as last published as acting origin:
    the nodes that carry the room now."""
    order: list[SuccessionEntry] = field(default_factory=list)
    """Every node we know carried the room, in the order they first appeared: slots,
    and the order of a failover walk."""
    resumed: bool = False
    """Not attached since it started (restored after a restart, or a new copy): never takes
    the room over before it followed someone."""
    path: list[str] = field(default_factory=list)
    """The nodes the room passes through from the acting origin to us (our upstream's
    path): we never follow a node whose path holds us (that would be a loop)."""
    claimed: int = 0
    """The highest epoch we know some node took (a handover names one before its node
    sends snapshots of it): a take-over goes above it."""

    @classmethod
    def origin_of(cls, own: SuccessionEntry, origin: str, epoch: int = 0) -> Carriage:
        """A room this node starts (or carries on as origin after a restart)."""
        return cls(own, origin, CarryState.ACTING_ORIGIN, epoch, own.node, None, [own], [], False)

    @classmethod
    def relay_of(
        cls,
        own: SuccessionEntry,
        origin: str,
        upstream: str,
        *,
        epoch: int = 0,
        acting_origin: str | None = None,
        succession: Sequence[SuccessionEntry] = (),
        resumed: bool = False,
    ) -> Carriage:
        acting = acting_origin or origin.split("/rooms/")[0]
        return cls(
            own,
            origin,
            CarryState.RECONNECTING,
            epoch=epoch,
            acting_origin=acting,
            upstream=upstream,
            succession=list(succession),
            order=list(succession),
            resumed=resumed,
            claimed=epoch,
        )

    # -- queries ----------------------------------------------------------------------

    @property
    def acting(self) -> bool:
        """We run the room's mixer and decide its state."""
        return self.state in (CarryState.ACTING_ORIGIN, CarryState.TAKING_OVER)

    @property
    def remote(self) -> bool:
        return not self.acting and self.state is not CarryState.ENDED

    @property
    def peers(self) -> list[SuccessionEntry]:
        """The other nodes that carried the room with us: an acting origin asks them, now
        and then, whether one of them carries it on at a higher epoch."""
        return [e for e in self.order if e.node != self.own.node]

    def slot(self, node: str | None = None) -> int:
        """A node's position in the room's order (ours by default; appended if new)."""
        node = node or self.own.node
        for index, entry in enumerate(self.order):
            if entry.node == node:
                return index
        return len(self.order)

    def _learn(self, entries: Sequence[SuccessionEntry]) -> None:
        self.order = merge_succession(self.order, entries)

    # -- moves ------------------------------------------------------------------------

    def _move(self, target: CarryState) -> None:
        if target not in CARRY_TRANSITIONS[self.state]:
            raise IllegalCarriageMove(self.state, target)
        self.state = target

    def snapshot(
        self,
        from_relay: str,
        epoch: int,
        acting_origin: str | None,
        succession: Sequence[SuccessionEntry],
        path: Sequence[str] = (),
    ) -> bool:
        """A snapshot from the node we attach to: follow it unless its epoch is older
        than one we have seen (the split-brain rule), or the room reaches it through us
        (a loop). False: leave that node."""
        if self.acting:
            return False
        if epoch < self.epoch or self.own.node in path:
            return False
        self.path = list(path)
        self.epoch = epoch
        self.claimed = max(self.claimed, epoch)
        self.upstream = from_relay
        if acting_origin:
            self.acting_origin = acting_origin.rstrip("/")
        self.succession = list(succession)
        self._learn(succession)
        self.resumed = False
        self._move(CarryState.FOLLOWING)
        return True

    def upstream_lost(self, *, silent: bool = False) -> list[Step]:
        """The node we took the room from is gone: what to try, in order. The same node
        once more first if it closed the connection (it may be restarting; a node that
        went silent had its time already); then the order, skipping it; our own entry
        reached first means we take over (never after a restart alone)."""
        if self.state not in (CarryState.FOLLOWING, CarryState.RECONNECTING):
            raise IllegalCarriageMove(self.state, CarryState.RECONNECTING)
        self._move(CarryState.RECONNECTING)
        dead = self.upstream
        plan: list[Step] = []
        if dead is not None and not silent:
            plan.append(SuccessionEntry(self.acting_origin, dead))
        for entry in merge_succession(self.order, [self.own]):
            if entry.node == self.own.node:
                if not self.resumed:
                    plan.append(PROMOTE)
                break
            if entry.relay != dead:
                plan.append(entry)
        return plan

    def take_over(self, epoch: int | None = None) -> int:
        """Start taking the room over: at ``epoch`` (a handover names it) or at the next
        epoch of our slot. Returns the new epoch."""
        self._move(CarryState.TAKING_OVER)
        if epoch is None:
            self._learn([self.own])
            epoch = next_epoch(max(self.epoch, self.claimed), self.slot())
        self.epoch = self.claimed = epoch
        return epoch

    def took_over(self) -> None:
        """The mixer runs here now: we act as origin."""
        self._move(CarryState.ACTING_ORIGIN)
        self.acting_origin = self.own.node
        self.upstream = None
        self.path = []
        self.succession = [self.own]

    def published(self, entries: Sequence[SuccessionEntry]) -> None:
        """The list as we publish it to our relays: as acting origin it is the room's
        list (us and our relays); every node on it is a peer we may ask later."""
        if self.acting:
            self.succession = list(entries)
        self._learn(entries)

    def probe_answer(self, entry: SuccessionEntry, epoch: int, acting_origin: str) -> bool:
        """As acting origin we asked ``entry`` about the room: True if it carries the
        room on at a higher epoch (or at ours, acting as a node whose URL sorts first:
        two nodes that shared a slot), so we step down and follow it."""
        acting_origin = acting_origin.rstrip("/")
        if self.state is not CarryState.ACTING_ORIGIN or acting_origin == self.own.node:
            return False
        if epoch < self.epoch or (epoch == self.epoch and acting_origin > self.own.node):
            return False
        self._move(CarryState.RECONNECTING)
        self.upstream = entry.relay
        self.acting_origin = acting_origin
        return True

    def handover(self, epoch: int, acting_origin: str, relay: str) -> Promote | str | None:
        """A handover from our upstream: PROMOTE (the room comes to us), the relay URL to
        follow instead, or None (not newer than what we have)."""
        if self.acting or epoch <= self.epoch:
            return None
        self.claimed = max(self.claimed, epoch)
        if acting_origin.rstrip("/") == self.own.node:
            return PROMOTE
        self.upstream = relay
        self.acting_origin = acting_origin.rstrip("/")
        self._move(CarryState.RECONNECTING)
        return relay

    def hand_over(self, to: SuccessionEntry) -> int:
        """We move the room on to ``to`` (one of our relays): the epoch it takes it at.
        We follow it from then on (accepting its snapshots of our epoch until it has
        taken the room)."""
        if self.state is not CarryState.ACTING_ORIGIN:
            raise IllegalCarriageMove(self.state, CarryState.HANDING_OVER)
        self._move(CarryState.HANDING_OVER)
        self.upstream = to.relay
        self.acting_origin = to.node
        self._learn([to])
        self.claimed = next_epoch(max(self.epoch, self.claimed), self.slot(to.node))
        # Until its snapshots come: it first, then us, then the others as they were.
        self.succession = merge_succession([to, self.own], self.succession)
        self._move(CarryState.RECONNECTING)
        return self.claimed

    def end(self) -> None:
        if self.state is not CarryState.ENDED:
            self._move(CarryState.ENDED)

    def path_down(self) -> list[str]:
        """The path our relays get: the room reaches them through us."""
        return [self.own.node] if self.acting else [*self.path, self.own.node]

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "remote": self.remote,
            "acting_origin": self.acting_origin,
            "epoch": self.epoch,
            "promoted": self.acting and self.origin.split("/rooms/")[0] != self.own.node,
            "upstream": None if self.acting else self.upstream,
            "succession": [e.to_json() for e in self.succession],
            "carriage": self.state.value,
        }
