"""A simulated network of nodes carrying one room, for the succession rules.

Each node holds the real ``Carriage`` (node/succession.py) and steps it the way the real
driver does (node/relaying/survival.py ``Carrier``): follow the upstream and take its
snapshots, fail over along the plan the carriage gives when the upstream is silent, take
over when the plan says so, probe the peers as acting origin. The network is a set of
nodes that are up or down and pairs of nodes that cannot reach each other; time is ticks
of 0.5 s. No sockets, no sleeping: every run is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from federation.relay import SuccessionEntry, merge_succession
from node.succession import PROMOTE, Carriage, CarryState

SILENCE_TICKS = 3
"""node.relaying.survival.UPSTREAM_SILENCE_S in ticks."""
PROBE_TICKS = 4
"""node.relaying.survival.PROBE_INTERVAL_S in ticks."""
RECOVERY_TICKS = 16
"""node.relaying.service.RECOVERY_WINDOW_S in ticks."""

ORIGIN = "http://n0/rooms/r"


def entry(name: str) -> SuccessionEntry:
    return SuccessionEntry(f"http://{name}", f"ws://{name}/relay/v1/rooms/r")


def name_of(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0]


@dataclass
class SimNode:
    name: str
    carriage: Carriage | None = None
    up: bool = True
    silent_for: int = 0
    since_probe: int = 0
    subscribed_at: int = 0
    recovering: int | None = None
    """Ticks left of a restarted origin's asking around (FEDERATION.md "Survival")."""
    recover_list: list[SuccessionEntry] = field(default_factory=list)
    recover_epoch: int = 0
    unattached: int = 0
    """Ticks a resumed relay went without finding a node that carries the room."""

    @property
    def own(self) -> SuccessionEntry:
        return entry(self.name)


class Network:
    def __init__(self, relays: int, parents: list[int]) -> None:
        """Node n0 starts the room; relay i (1..relays) subscribes to node parents[i-1]
        (an earlier node), in order."""
        self.nodes = {f"n{i}": SimNode(f"n{i}") for i in range(relays + 1)}
        self.cut: set[frozenset[str]] = set()
        self.now = 0
        self.log: list[str] = []
        origin = self.nodes["n0"]
        origin.carriage = Carriage.origin_of(origin.own, ORIGIN)
        for i in range(1, relays + 1):
            node = self.nodes[f"n{i}"]
            parent = self.nodes[f"n{parents[i - 1]}"]
            node.carriage = Carriage.relay_of(node.own, ORIGIN, parent.own.relay)
            self.step()
            self.step()

    # -- the network -------------------------------------------------------------------

    def reachable(self, a: str, b: str) -> bool:
        return self.nodes[a].up and self.nodes[b].up and frozenset((a, b)) not in self.cut

    def serving(self, name: str) -> Carriage | None:
        """The room's carriage of a node that serves relay subscriptions for it now."""
        node = self.nodes[name]
        if not node.up or node.recovering is not None:
            return None
        carriage = node.carriage
        if carriage is None or carriage.state is CarryState.ENDED:
            return None
        return carriage

    def subscribers(self, name: str, joining: str | None = None) -> list[SimNode]:
        """Nodes relaying ``name``'s copy now (``joining``: one subscribing right now; the
        hub adds a subscriber before it sends it the snapshot)."""
        relay = entry(name).relay
        found = [
            n
            for n in self.nodes.values()
            if n.up
            and n.carriage is not None
            and n.carriage.state is CarryState.FOLLOWING
            and n.carriage.upstream == relay
            and self.reachable(n.name, name)
            and n.name != joining
        ]
        found.sort(key=lambda n: (n.subscribed_at, n.name))
        if joining is not None:
            found.append(self.nodes[joining])
        return found

    def subtree(
        self, name: str, seen: frozenset[str] = frozenset(), joining: str | None = None
    ) -> list[SuccessionEntry]:
        """The relays below ``name``, as they report them up (``relays`` messages)."""
        found: list[SuccessionEntry] = []
        for sub in self.subscribers(name, joining):
            if sub.name not in seen:
                found += [sub.own, *self.subtree(sub.name, seen | {name})]
        return found

    def snapshot(
        self, name: str, joining: str | None = None
    ) -> tuple[int, str, list[SuccessionEntry], list[str]] | None:
        """What ``name``'s hub sends a subscriber: epoch, acting origin, succession, path."""
        carriage = self.serving(name)
        if carriage is None:
            return None
        mine = self.subtree(name, joining=joining)
        if carriage.acting:
            entries = merge_succession([carriage.own], mine)
        else:
            entries = merge_succession(carriage.succession, [carriage.own, *mine])
        carriage.published(entries)
        return carriage.epoch, carriage.acting_origin, entries, carriage.path_down()

    # -- faults --------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        self.nodes[name].up = False
        self.log.append(f"t{self.now} crash {name}")

    def partition(self, a: str, b: str) -> None:
        if a != b:
            self.cut.add(frozenset((a, b)))
            self.log.append(f"t{self.now} cut {a}-{b}")

    def heal(self) -> None:
        self.cut.clear()
        self.log.append(f"t{self.now} heal")

    def restart_origin(self) -> None:
        """n0 comes back with what it persisted: as acting origin it asks its list."""
        node = self.nodes["n0"]
        if node.up:
            return
        node.up = True
        carriage = node.carriage
        self.log.append(f"t{self.now} restart n0")
        if carriage is None or carriage.state is CarryState.ENDED:
            return
        if carriage.acting:
            others = [e for e in carriage.succession if e.node != node.own.node]
            if not others:
                carriage.end()
                return
            node.recovering = RECOVERY_TICKS
            node.recover_list = others
            node.recover_epoch = carriage.epoch
        else:
            node.carriage = Carriage.relay_of(
                node.own,
                ORIGIN,
                carriage.upstream or carriage.succession[0].relay,
                epoch=carriage.epoch,
                succession=carriage.succession,
                resumed=True,
            )

    def move(self, name: str) -> None:
        """The acting origin ``name`` hands the room to its first subscriber."""
        carriage = self.serving(name)
        subscribers = self.subscribers(name)
        if carriage is None or carriage.state is not CarryState.ACTING_ORIGIN or not subscribers:
            return
        target = subscribers[0]
        epoch = carriage.hand_over(target.own)
        self.log.append(f"t{self.now} move {name} -> {target.name} epoch {epoch}")
        for sub in subscribers:
            assert sub.carriage is not None
            decision = sub.carriage.handover(epoch, target.own.node, target.own.relay)
            if decision is PROMOTE:
                sub.carriage.take_over(epoch)
                sub.carriage.took_over()

    # -- time ----------------------------------------------------------------------------

    def step(self) -> None:
        self.now += 1
        for node in sorted(self.nodes.values(), key=lambda n: n.name):
            if node.up and node.carriage is not None:
                self._step(node)

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.step()

    def _step(self, node: SimNode) -> None:
        carriage = node.carriage
        assert carriage is not None
        if carriage.state is CarryState.ENDED:
            return
        if node.recovering is not None:
            self._recover(node)
            return
        if carriage.acting:
            node.since_probe += 1
            if node.since_probe >= PROBE_TICKS:
                node.since_probe = 0
                self._probe_peers(node)
            return
        upstream = carriage.upstream
        if carriage.state is CarryState.FOLLOWING and upstream is not None:
            got = (
                self.snapshot(name_of(upstream))
                if self.reachable(node.name, name_of(upstream))
                else None
            )
            if got is not None:
                node.silent_for = 0
                if carriage.snapshot(upstream, *got):
                    return
                # A stale epoch: leave that node (the walk below).
            else:
                node.silent_for += 1
                if node.silent_for < SILENCE_TICKS:
                    return
                self._fail_over(node, silent=True)
                return
        elif carriage.state is CarryState.RECONNECTING and upstream is not None:
            if self._attach(node, upstream):
                return
        self._fail_over(node)

    def _attach(self, node: SimNode, relay: str) -> bool:
        carriage = node.carriage
        assert carriage is not None
        target = name_of(relay)
        if target == node.name or not self.reachable(node.name, target):
            return False
        got = self.snapshot(target, joining=node.name)
        if got is None or not carriage.snapshot(relay, *got):
            return False
        node.silent_for = 0
        node.subscribed_at = self.now
        return True

    def _fail_over(self, node: SimNode, *, silent: bool = False) -> None:
        carriage = node.carriage
        assert carriage is not None
        if carriage.resumed:
            node.unattached += 1
            if node.unattached > RECOVERY_TICKS:
                carriage.end()  # node.relaying.survival: nobody carries it on any more
                self.log.append(f"t{self.now} {node.name} gives the room up")
                return
        plan = carriage.upstream_lost(silent=silent)
        for step in plan:
            if step is PROMOTE:
                epoch = carriage.take_over()
                carriage.took_over()
                self.log.append(f"t{self.now} {node.name} takes over at epoch {epoch}")
                return
            assert isinstance(step, SuccessionEntry)
            if self._attach(node, step.relay):
                return

    def _probe_peers(self, node: SimNode) -> None:
        carriage = node.carriage
        assert carriage is not None
        below = {name_of(e.node) for e in self.subtree(node.name)}
        for peer in list(carriage.peers):
            name = name_of(peer.node)
            if name in below or not self.reachable(node.name, name):
                continue
            got = self.snapshot(name)
            if got is None:
                continue
            epoch, acting, _, _ = got
            if carriage.probe_answer(peer, epoch, acting):
                self.log.append(f"t{self.now} {node.name} steps down for {name} at {epoch}")
                return

    def _recover(self, node: SimNode) -> None:
        assert node.recovering is not None and node.carriage is not None
        node.recovering -= 1
        answered = False
        for peer in node.recover_list:
            name = name_of(peer.node)
            if not self.reachable(node.name, name):
                continue
            got = self.snapshot(name)
            if got is None:
                continue
            answered = True
            if got[0] > node.recover_epoch:
                node.recovering = None
                node.carriage = Carriage.relay_of(
                    node.own, ORIGIN, peer.relay, epoch=node.recover_epoch
                )
                self._attach(node, peer.relay)
                self.log.append(f"t{self.now} n0 rejoins as a relay of {name}")
                return
        if not answered or node.recovering <= 0:
            node.recovering = None
            node.carriage.end()
            self.log.append(f"t{self.now} n0 ends the room (nobody carries it on)")

    # -- what the properties look at -------------------------------------------------------

    def acting_origins(self) -> dict[int, set[str]]:
        """Epoch -> the running nodes acting as origin at that epoch."""
        found: dict[int, set[str]] = {}
        for node in self.nodes.values():
            carriage = node.carriage
            if node.up and carriage is not None and carriage.state is CarryState.ACTING_ORIGIN:
                found.setdefault(carriage.epoch, set()).add(node.name)
        return found

    def carrying(self) -> list[SimNode]:
        return [
            n
            for n in self.nodes.values()
            if n.up and n.carriage is not None and n.carriage.state is not CarryState.ENDED
        ]
