"""The moderation rules in process: domain names and the live domain-block list, server
settings, report states, and rooms' removals, endings and the node's admission rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.config import Config
from node.domain_blocks import DomainBlock, Severity, covers, host_of, normalize_domain
from node.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, NotFound
from node.moderation.recent import RecentProblems
from node.reports import ReportState, check_transition
from node.room_copy import replicate
from node.rooms import EndedBy, Ending, Role, Room, RoomState
from node.server_settings import ServerSettings
from node.store.database import open_database
from node.store.domain_blocks import DomainBlockList
from node.store.settings import SettingsStore


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("Example.ORG.", "example.org"),
        ("https://rooms.example.org/users/x", "rooms.example.org"),
        ("alice@b.example:8443", "b.example"),
        ("127.0.0.2:8080", "127.0.0.2"),
        ("[::1]:80", "::1"),
    ],
)
def test_domains_are_normalized(text: str, domain: str) -> None:
    assert normalize_domain(text) == domain


@pytest.mark.parametrize("text", ["", "not a domain", "-x.example", "a..b", 3, "x" * 300])
def test_what_is_not_a_domain(text: object) -> None:
    with pytest.raises(InvalidInput):
        normalize_domain(text)


@given(st.text(max_size=80))
def test_any_text_is_a_domain_or_invalid_input(text: str) -> None:
    try:
        domain = normalize_domain(text)
    except InvalidInput:
        return
    assert domain == domain.lower() and not domain.endswith(".")


def test_a_block_covers_subdomains_and_every_port() -> None:
    assert covers("example.org", host_of("https://a.example.org:8443/users/x"))
    assert covers("example.org", host_of("bob@example.org"))
    assert not covers("example.org", host_of("bob@badexample.org"))


def test_the_live_list_joins_node_toml_and_the_admins_blocks(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    blocks = DomainBlockList(db, ["toml.example"])
    seen: list[DomainBlock] = []
    blocks.on_change(seen.append)
    assert blocks.is_blocked("a.toml.example")
    assert blocks.severity("free.example") is None
    blocks.add("loud.example", "silence", public_comment="floods rooms")
    assert blocks.is_silenced("bob@loud.example:80") and not blocks.is_blocked("loud.example")
    blocks.add("loud.example", "suspend", private_note="and worse")
    assert blocks.is_blocked("sub.loud.example")
    # Listeners hear of new blocks and of harsher ones, not of milder changes.
    assert [(b.domain, b.severity) for b in seen] == [
        ("loud.example", Severity.SILENCE),
        ("loud.example", Severity.SUSPEND),
    ]
    blocks.add("loud.example", "silence")
    assert len(seen) == 2
    with pytest.raises(Conflict):
        blocks.add("toml.example", "silence")
    with pytest.raises(Conflict):
        blocks.remove("toml.example")
    # A second list over the same database (a restart) sees the same blocks.
    again = DomainBlockList(db, [])
    assert again.severity("loud.example") is Severity.SILENCE
    blocks.remove("loud.example")
    assert blocks.severity("loud.example") is None
    with pytest.raises(NotFound):
        blocks.remove("loud.example")
    db.close()


def test_server_settings_are_validated_and_kept(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    store = SettingsStore(db, Config())
    assert store.current().registration == "open"  # node.toml's, until an admin picks
    changed = store.current().changed(
        {"name": " Harbour ", "rules": ["Be kind", " ", "No spam"], "registration": "approval"}
    )
    assert changed == ServerSettings("Harbour", "", ("Be kind", "No spam"), "", "approval")
    store.update(changed)
    assert SettingsStore(db, Config()).current() == changed
    for bad in (
        {"name": "x" * 81},
        {"rules": ["x"] * 21},
        {"rules": [1]},
        {"contact": "Not A Name!"},
        {"registration": "maybe"},
        {"theme": "dark"},
    ):
        with pytest.raises(InvalidInput):
            store.current().changed(bad)
    db.close()


def test_report_states_are_a_declared_graph() -> None:
    check_transition(ReportState.OPEN, ReportState.RESOLVED)
    check_transition(ReportState.RESOLVED, ReportState.OPEN)
    with pytest.raises(IllegalTransition):
        check_transition(ReportState.RESOLVED, ReportState.RESOLVED)


class Rules:
    """A node's admission rules for a room, as node.onair.admission applies them."""

    def __init__(self) -> None:
        self.blocked_by_host: set[str] = set()
        self.silenced = "silenced.example"

    def admits(self, room: Room, username: str) -> str | None:
        return "the host has blocked you" if username in self.blocked_by_host else None

    def may_speak(self, room: Room, username: str) -> bool:
        return not username.endswith("@" + self.silenced)

    def host_blocked(self, room: Room, username: str) -> None:
        self.blocked_by_host.add(username)


def live_room() -> Room:
    room = Room(id="r", host="alice", host_display_name="Alice", title="T")
    room.start("alice")
    return room


def test_a_removed_member_stays_out_for_the_rooms_life() -> None:
    room = live_room()
    events: list[dict[str, object]] = []
    room.subscribe(events.append)
    room.connect("bob@b.example", "Bob")
    room.remove("alice", "bob@b.example")
    assert events[-1] == {"type": "kicked", "username": "bob@b.example", "blocked": False}
    # Reloading the page is joining again: refused, for as long as the room lives.
    with pytest.raises(Forbidden):
        room.connect("bob@b.example", "Bob")
    with pytest.raises(Forbidden):
        room.expel("alice", blocked=True)


def test_the_nodes_rules_apply_where_it_decides_the_room() -> None:
    rules = Rules()
    room = live_room()
    room.policy = rules
    # The host blocks carol in the room: carol is kept out of the host's rooms.
    room.connect("carol", "Carol")
    room.remove("alice", "carol", block=True)
    assert "carol" in rules.blocked_by_host
    other = live_room()
    other.policy = rules
    with pytest.raises(Forbidden):
        other.connect("carol", "Carol")
    assert "carol" in other.blocked  # out for the room's life, on every node carrying it
    # A silenced server's users may listen, not come on stage.
    other.connect("dan@silenced.example", "Dan")
    other.raise_hand("dan@silenced.example")
    with pytest.raises(Forbidden):
        other.invite("alice", "dan@silenced.example")
    with pytest.raises(Forbidden):
        other.set_role("alice", "dan@silenced.example", Role.SPEAKER)
    other.connect("eve", "Eve")
    other.set_role("alice", "eve", Role.SPEAKER)
    other.to_audience("eve")
    assert other.members["eve"].role is Role.LISTENER


def test_how_a_room_ended_is_kept_and_an_operators_end_never_replicates() -> None:
    room = live_room()
    room.end("alice")
    assert room.to_json()["ended_by"] == {"by": "host", "node": "", "reason": "", "carried_on": []}
    with pytest.raises(IllegalTransition):
        room.end(None, ending=Ending(EndedBy.OPERATOR, "a.example", "spam"))
    assert room.ending == Ending(EndedBy.HOST)

    doc = live_room().to_json()
    stopped_there = {
        **doc,
        "state": "ended",
        "ended_by": {"by": "operator", "node": "a.example", "reason": "spam"},
    }
    copy = live_room()
    replicate(copy, stopped_there, lambda n: n)
    assert copy.state is RoomState.LIVE  # that node stops carrying it; not our business
    replicate(copy, {**doc, "state": "ended", "ended_by": {"by": "host"}}, lambda n: n)
    assert copy.state is RoomState.ENDED and copy.ending == Ending(EndedBy.HOST)


def test_recent_problems_keep_the_last_warnings_and_errors() -> None:
    problems = RecentProblems()
    log = logging.getLogger("tests.problems")
    log.addHandler(problems)
    try:
        log.info("not kept")
        log.warning("relay %s is slow", "b.example")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("delivery crashed")
        for i in range(150):
            log.error("flood %d", i)
    finally:
        log.removeHandler(problems)
    recent = problems.recent(limit=200)
    assert len(recent) == 100  # bounded
    assert recent[0]["message"] == "flood 149" and recent[0]["level"] == "error"
    assert all("not kept" not in r["message"] for r in recent)
    problems = RecentProblems()
    log.addHandler(problems)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("delivery crashed")
    finally:
        log.removeHandler(problems)
    assert problems.recent()[0]["message"] == "delivery crashed (ValueError: boom)"
