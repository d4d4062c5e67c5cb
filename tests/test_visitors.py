"""Visitors' rules, store and message (node.visitors, node.store.visitors,
federation.visitors, the avatar normaliser), with a clock as the only stand-in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.relay import RelayFrameError, parse_control
from federation.room_activities import RoomActivity, build_room_activity, parse_room_activity
from federation.visitors import CodeMessage, build_code_message
from node.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from node.store.database import open_database
from node.store.visitors import VisitorStore
from node.visitors import (
    CODE_ALPHABET,
    CODE_LENGTH,
    CODE_TTL_S,
    MAX_CODE_ATTEMPTS,
    SEND_WINDOW_S,
    SendLimits,
    code_hash,
    code_matches,
    new_code,
    normalize_code,
    parse_handle,
    vouch_refusal,
)
from tests.test_visitors_nodes import mastodon_visibility


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> VisitorStore:
    return VisitorStore(open_database(tmp_path), clock=clock)


LIMITS = SendLimits(per_handle=3, per_server=5, per_address=4)


def issue(store: VisitorStore, handle: str = "kim@social.example", client: str = "10.0.0.1"):
    server = handle.rpartition("@")[2]
    return store.issue(
        LIMITS,
        handle=handle,
        server=server,
        actor=f"https://{server}/users/{handle.partition('@')[0]}",
        display_name="Kim",
        icon=None,
        client=client,
        room_id="room1",
    )


# -- codes ---------------------------------------------------------------------------------


def test_codes_are_short_unambiguous_and_compared_by_hash() -> None:
    code = new_code()
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
    assert not set("01ILO") & set(CODE_ALPHABET)
    assert normalize_code(f" {code[:3].lower()}-{code[3:]} ") == code
    assert code_matches(code_hash(code), code)
    assert not code_matches(code_hash(code), code[::-1] + "X")
    for bad in (None, 123, "", "   ", "x" * 40):
        with pytest.raises(InvalidInput):
            normalize_code(bad)


def test_a_code_works_once(store: VisitorStore) -> None:
    request, code = issue(store)
    assert store.redeem(request.id, code).handle == "kim@social.example"
    with pytest.raises(Unauthorized, match="already used"):
        store.redeem(request.id, code)


def test_an_expired_code_is_refused(store: VisitorStore, clock: Clock) -> None:
    request, code = issue(store)
    clock.now += CODE_TTL_S - 1
    fresh, fresh_code = issue(store)
    clock.now += 1
    with pytest.raises(Unauthorized, match="expired"):
        store.redeem(request.id, code)
    assert store.redeem(fresh.id, fresh_code).id == fresh.id


def test_wrong_codes_burn_the_request(store: VisitorStore) -> None:
    request, code = issue(store)
    for left in range(MAX_CODE_ATTEMPTS - 1, -1, -1):
        with pytest.raises(Unauthorized, match="wrong code"):
            store.redeem(request.id, "AAAAAA" if code != "AAAAAA" else "BBBBBB")
        assert left >= 0
    with pytest.raises(Unauthorized, match="too many wrong codes"):
        store.redeem(request.id, code)


def test_unknown_request(store: VisitorStore) -> None:
    with pytest.raises(NotFound):
        store.redeem("nope", "AAAAAA")


def test_send_limits_per_handle_server_and_address(store: VisitorStore, clock: Clock) -> None:
    for _ in range(3):
        issue(store)
    with pytest.raises(RateLimited) as limited:
        issue(store)  # the handle's window (3)
    assert 0 < limited.value.retry_after <= SEND_WINDOW_S
    issue(store, "ana@social.example", client="10.0.0.2")
    issue(store, "bo@social.example", client="10.0.0.2")
    with pytest.raises(RateLimited):
        issue(store, "cy@social.example", client="10.0.0.3")  # the server's window (5)
    issue(store, "cy@other.example", client="10.0.0.2")
    issue(store, "di@other.example", client="10.0.0.2")
    with pytest.raises(RateLimited):
        issue(store, "ed@third.example", client="10.0.0.2")  # the address's window (4)
    clock.now += SEND_WINDOW_S + 1
    issue(store)  # a new hour
    assert store.sent_count("kim@social.example") == 4


def test_a_report_stops_the_code_and_pauses_the_handle(store: VisitorStore, clock: Clock) -> None:
    request, code = issue(store)
    store.report(request.id)
    with pytest.raises(Unauthorized, match="reported"):
        store.redeem(request.id, code)
    with pytest.raises(Forbidden, match="asked not to be sent"):
        issue(store)
    assert store.reports()[0]["handle"] == "kim@social.example"
    clock.now += 24 * 3600 + 1
    issue(store)


def test_sessions_expire_and_are_revoked(store: VisitorStore, clock: Clock) -> None:
    first = store.open_session("kim@social.example", lifetime_s=100)
    second = store.open_session("kim@social.example", lifetime_s=1000)
    assert first.startswith("pv_") and store.resolve(first).handle == "kim@social.example"
    clock.now += 100
    with pytest.raises(Unauthorized):
        store.resolve(first)
    session = store.resolve(second)
    store.revoke(session.id)
    with pytest.raises(Unauthorized):
        store.resolve(second)
    third = store.open_session("kim@social.example", lifetime_s=1000)
    assert store.revoke_all("kim@social.example") == 1
    with pytest.raises(Unauthorized):
        store.resolve(third)


# -- handles and vouching ------------------------------------------------------------------


def test_handles() -> None:
    assert parse_handle("@Kim@Social.Example") == ("Kim", "social.example")
    assert parse_handle("kim@127.0.0.1:8080") == ("kim", "127.0.0.1:8080")
    for bad in (None, "", "kim", "@kim", "kim@", "a@b@c", "kim@host/path", "k m@host"):
        with pytest.raises(InvalidInput):
            parse_handle(bad)


@given(st.text(max_size=400))
def test_parse_handle_takes_anything(text: str) -> None:
    try:
        user, host = parse_handle(text)
    except InvalidInput:
        return
    assert user and host and "@" not in host


def test_whose_word_is_taken_for_a_visitor() -> None:
    def refuse(handle: str) -> str | None:
        return vouch_refusal(
            handle,
            own_host="a.example",
            voucher_host="b.example",
            blocked=lambda host: host.endswith("spam.example"),
        )

    assert refuse("kim@mastodon.example") is None
    assert refuse("alice@a.example") == "a handle of this node"
    assert refuse("bob@B.example") == "a handle of the vouching node itself"
    assert refuse("x@eu.spam.example") == "a blocked domain"
    assert refuse("no-handle") == "not a handle"


# -- wire formats --------------------------------------------------------------------------


def test_the_code_message_is_a_private_mention() -> None:
    message = CodeMessage(
        recipient="https://social.example/users/kim",
        recipient_handle="kim@social.example",
        recipient_url="https://social.example/@kim",
        code="K7M2QX",
        node_host="rooms.example",
        room_title='<script>alert("x")</script> Friday',
        link="https://rooms.example/rooms/r1#visitor=req.K7M2QX",
        report_link="https://rooms.example/rooms/r1#visitor-report=req",
        expires_minutes=10,
        contact="abuse@rooms.example",
    )
    activity = build_code_message(
        message,
        actor="https://rooms.example/actor",
        activity_id="https://rooms.example/actor/activities/1",
        note_id="https://rooms.example/actor/notes/1",
        published=dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC),
    )
    note = activity["object"]
    assert activity["to"] == note["to"] == ["https://social.example/users/kim"]
    assert activity["cc"] == note["cc"] == []
    assert note["tag"] == [
        {
            "type": "Mention",
            "href": "https://social.example/users/kim",
            "name": "@kim@social.example",
        }
    ]
    assert mastodon_visibility(activity, followers=None) == "direct"
    content = note["content"]
    assert "<script>" not in content and "&lt;script&gt;" in content
    assert 'class="u-url mention"' in content and "K7M2QX" in content
    assert "rooms.example" in content and "abuse@rooms.example" in content
    assert note["published"] == activity["published"] == "2026-11-30T12:00:00Z"


def test_mastodon_would_not_file_other_addressing_as_direct() -> None:
    base = {
        "object": {
            "to": ["https://s.example/users/kim"],
            "tag": [{"type": "Mention", "href": "https://s.example/users/kim"}],
        }
    }
    public = {"object": {**base["object"], "cc": ["https://www.w3.org/ns/activitystreams#Public"]}}
    assert mastodon_visibility(public, None) == "unlisted"
    silent = {"object": {"to": ["https://s.example/users/kim"], "tag": []}}
    assert mastodon_visibility(silent, None) == "limited"


def test_room_activities_carry_the_vouched_visitor() -> None:
    activity = RoomActivity(
        "parley:RaiseHand",
        "https://b.example/actor",
        "https://a.example/rooms/r1",
        visitor="kim@social.example",
    )
    doc = build_room_activity("https://b.example/actor/activities/1", activity)
    assert doc["parley:visitor"] == "kim@social.example"
    assert parse_room_activity(doc, ()) == activity
    for bad in (3, "kim", "a@b@c", "@social.example", "x" * 400 + "@h"):
        with pytest.raises(Exception, match="parley:visitor"):
            parse_room_activity({**doc, "parley:visitor": bad}, ())


def test_presence_vouches_for_visitors() -> None:
    message = parse_control(
        '{"type":"presence","users":[],"visitors":[{"handle":"kim@s.example","name":"Kim"},'
        '{"handle":"jo@s.example","name":7}]}',
        frozenset({"presence"}),
    )
    assert message["visitors"] == [
        {"handle": "kim@s.example", "name": "Kim"},
        {"handle": "jo@s.example", "name": ""},
    ]
    assert (
        parse_control('{"type":"presence","users":[]}', frozenset({"presence"}))["visitors"] == []
    )
    for bad in ('"x"', "[1]", '[{"name":"x"}]'):
        with pytest.raises(RelayFrameError):
            parse_control(
                f'{{"type":"presence","users":[],"visitors":{bad}}}', frozenset({"presence"})
            )


def test_visitor_settings_are_checked() -> None:
    from node.config import ConfigError, parse_config

    assert parse_config({"visitors": {"codes_per_handle_per_hour": 2}}).visitors.enabled
    for key, value in [
        ("session_days", 0),
        ("codes_per_address_per_hour", 0),
        ("enabled", "yes"),
        ("abuse_contact", "x" * 300),
    ]:
        with pytest.raises(ConfigError, match=f"visitors.{key}"):
            parse_config({"visitors": {key: value}})
