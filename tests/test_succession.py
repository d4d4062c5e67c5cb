"""The succession rules (node/succession.py), in process: the carriage's declared state
graph, and whole networks of nodes simulated deterministically (tests/succession_sim.py):
crashes, partitions, heals, a node that thinks it is still origin, a crashed origin
coming back, two relays taking over at once, moves. The property: whatever happens, at
most one running node acts as origin per epoch, and once the network heals every running
node follows the same acting origin."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.succession import PROMOTE, Carriage, CarryState, IllegalCarriageMove
from tests.succession_sim import Network, entry

CONVERGE_TICKS = 120


def converged(net: Network) -> bool:
    carrying = net.carrying()
    acting = [n for n in carrying if n.carriage and n.carriage.acting]
    if not carrying:
        return True
    if len(acting) != 1:
        return False
    leader = acting[0].carriage
    assert leader is not None
    return all(
        n.carriage is not None
        and n.carriage.epoch == leader.epoch
        and n.carriage.acting_origin == leader.own.node
        and (n is acting[0] or n.carriage.state is CarryState.FOLLOWING)
        for n in carrying
    )


def one_origin_per_epoch(net: Network) -> None:
    for epoch, names in net.acting_origins().items():
        assert len(names) <= 1, f"epoch {epoch} has {sorted(names)}: {net.log}"


# -- the state graph ----------------------------------------------------------------------


def test_a_relay_follows_then_takes_over_as_first_on_the_list() -> None:
    own = entry("b")
    carriage = Carriage.relay_of(own, "http://a/rooms/r", entry("a").relay)
    assert carriage.state is CarryState.RECONNECTING
    assert carriage.snapshot(entry("a").relay, 0, "http://a", [entry("a"), own])
    assert carriage.state is CarryState.FOLLOWING
    plan = carriage.upstream_lost()
    assert plan == [entry("a"), PROMOTE]
    assert carriage.take_over() == 1
    carriage.took_over()
    assert carriage.state is CarryState.ACTING_ORIGIN
    assert carriage.succession == [own] and carriage.acting_origin == own.node
    assert entry("a") in carriage.peers


def test_illegal_moves_are_refused() -> None:
    carriage = Carriage.origin_of(entry("a"), "http://a/rooms/r")
    with pytest.raises(IllegalCarriageMove):
        carriage.upstream_lost()  # an acting origin has no upstream to lose
    carriage.end()
    with pytest.raises(IllegalCarriageMove):
        carriage.take_over()
    relay = Carriage.relay_of(entry("b"), "http://a/rooms/r", entry("a").relay)
    with pytest.raises(IllegalCarriageMove):
        relay.took_over()  # taking over comes first
    with pytest.raises(IllegalCarriageMove):
        relay.hand_over(entry("c"))  # only an acting origin moves the room


def test_an_older_epoch_is_refused_and_a_handover_names_its_epoch() -> None:
    carriage = Carriage.relay_of(entry("c"), "http://a/rooms/r", entry("b").relay, epoch=2)
    assert not carriage.snapshot(entry("b").relay, 1, "http://a", [])
    assert carriage.snapshot(entry("b").relay, 2, "http://b", [entry("b"), entry("c")])
    assert carriage.handover(2, "http://d", entry("d").relay) is None  # not newer
    assert carriage.handover(3, "http://c", entry("c").relay) is PROMOTE
    assert carriage.take_over(3) == 3


def test_the_second_successor_claims_a_later_epoch_than_the_first() -> None:
    # b and c both relay a directly and cannot see each other when a dies.
    listing = [entry("a"), entry("b"), entry("c")]
    b = Carriage.relay_of(entry("b"), "http://a/rooms/r", entry("a").relay)
    c = Carriage.relay_of(entry("c"), "http://a/rooms/r", entry("a").relay)
    for carriage in (b, c):
        carriage.snapshot(entry("a").relay, 0, "http://a", listing)
    assert b.upstream_lost()[-1] is PROMOTE and c.upstream_lost()[-1] is PROMOTE
    assert (b.take_over(), c.take_over()) == (1, 2)


def test_an_acting_origin_steps_down_for_a_higher_epoch_or_a_tie_it_loses() -> None:
    b = Carriage.origin_of(entry("b"), "http://a/rooms/r", epoch=1)
    assert not b.probe_answer(entry("a"), 0, "http://a")  # lower: a follows us, not we it
    assert not b.probe_answer(entry("c"), 1, "http://c")  # a tie that "b" wins
    assert b.probe_answer(entry("a"), 1, "http://a")  # a tie that "a" wins
    assert b.state is CarryState.RECONNECTING and b.upstream == entry("a").relay
    c = Carriage.origin_of(entry("c"), "http://a/rooms/r", epoch=1)
    assert c.probe_answer(entry("d"), 2, "http://d")


def test_a_resumed_relay_never_takes_over_alone() -> None:
    listing = [entry("a"), entry("b")]
    carriage = Carriage.relay_of(
        entry("b"), "http://a/rooms/r", entry("a").relay, succession=listing, resumed=True
    )
    assert PROMOTE not in carriage.upstream_lost()


# -- networks -----------------------------------------------------------------------------


def test_kill_of_the_origin_a_b_c_chain() -> None:
    net = Network(2, [0, 1])  # n0 -> n1 -> n2
    assert converged(net)
    net.crash("n0")
    net.run(SILENCE_TICKS_PLUS := 6)
    del SILENCE_TICKS_PLUS
    assert net.acting_origins() == {1: {"n1"}}
    assert converged(net)


def test_a_node_that_thinks_it_is_still_origin_steps_down_after_the_heal() -> None:
    net = Network(2, [0, 0])  # n1 and n2 relay n0
    net.partition("n0", "n1")
    net.partition("n0", "n2")
    net.run(10)
    # n1 took over (first on the list); n0, cut off, still acts as origin at epoch 0.
    assert net.acting_origins() == {0: {"n0"}, 1: {"n1"}}
    net.heal()
    net.run(CONVERGE_TICKS)
    assert converged(net)
    assert net.acting_origins() == {1: {"n1"}}


def test_two_relays_taking_over_at_once_claim_different_epochs_then_converge() -> None:
    net = Network(2, [0, 0])
    net.partition("n1", "n2")
    net.crash("n0")
    net.run(10)
    assert net.acting_origins() == {1: {"n1"}, 2: {"n2"}}
    net.heal()
    net.run(CONVERGE_TICKS)
    assert converged(net)
    assert net.acting_origins() == {2: {"n2"}}


def test_a_crashed_origin_comes_back_as_a_relay_of_its_successor() -> None:
    net = Network(1, [0])
    net.crash("n0")
    net.run(6)
    net.restart_origin()
    net.run(CONVERGE_TICKS)
    assert converged(net)
    n0 = net.nodes["n0"].carriage
    assert n0 is not None and n0.state is CarryState.FOLLOWING and n0.epoch == 1


def test_a_crashed_origin_cut_off_from_its_relays_ends_the_room_on_its_side() -> None:
    net = Network(1, [0])
    net.crash("n0")
    net.partition("n0", "n1")
    net.run(6)
    net.restart_origin()
    net.run(30)
    n0 = net.nodes["n0"].carriage
    assert n0 is not None and n0.state is CarryState.ENDED
    assert net.acting_origins() == {1: {"n1"}}


def test_a_move_then_the_new_origin_dies() -> None:
    net = Network(3, [0, 0, 0])
    net.move("n0")  # to n1, its first subscriber
    net.run(4)
    assert net.acting_origins() == {1: {"n1"}}
    assert converged(net)
    net.crash("n1")
    net.run(10)
    assert len(net.acting_origins()) == 1
    net.run(CONVERGE_TICKS)
    assert converged(net)


# -- the property -------------------------------------------------------------------------

NODE = st.integers(min_value=0, max_value=5)
EVENT = st.one_of(
    st.tuples(st.just("tick"), st.integers(min_value=1, max_value=8)),
    st.tuples(st.just("crash"), NODE),
    st.tuples(st.just("cut"), st.tuples(NODE, NODE)),
    st.tuples(st.just("heal"), st.none()),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("move"), NODE),
)


@st.composite
def topologies(draw: st.DrawFn) -> tuple[int, list[int]]:
    relays = draw(st.integers(min_value=1, max_value=5))
    parents = [draw(st.integers(min_value=0, max_value=i)) for i in range(relays)]
    return relays, parents


@settings(max_examples=500, deadline=None)
@given(topologies(), st.lists(EVENT, max_size=40))
def test_at_most_one_acting_origin_per_epoch_and_convergence_after_a_heal(
    topology: tuple[int, list[int]], events: list[tuple[str, object]]
) -> None:
    relays, parents = topology
    net = Network(relays, parents)
    one_origin_per_epoch(net)
    names = sorted(net.nodes)
    for kind, arg in events:
        if kind == "tick":
            assert isinstance(arg, int)
            for _ in range(arg):
                net.step()
                one_origin_per_epoch(net)
        elif kind == "crash":
            assert isinstance(arg, int)
            net.crash(names[arg % len(names)])
        elif kind == "cut":
            assert isinstance(arg, tuple)
            net.partition(names[arg[0] % len(names)], names[arg[1] % len(names)])
        elif kind == "heal":
            net.heal()
        elif kind == "restart":
            net.restart_origin()
        elif kind == "move":
            assert isinstance(arg, int)
            net.move(names[arg % len(names)])
        one_origin_per_epoch(net)
    net.heal()
    for _ in range(CONVERGE_TICKS):
        net.step()
        one_origin_per_epoch(net)
    assert converged(net), net.log
