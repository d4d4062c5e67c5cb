"""The ``Flag`` codec (federation/reports.py): Mastodon's shape, Fedify's compact JSON-LD,
hostile input, and a property: any JSON gives a Flag or our own parse error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.activities import parse_activity
from federation.errors import ActivityParseError
from federation.reports import MAX_FLAG_CONTENT, Flag, build_flag, parse_flag

# The shape Mastodon sends (ReportService / FlagSerializer): its instance actor, the
# reported account first in ``object``, the comment as content (empty when none).
MASTODON_FLAG = {
    "@context": "https://www.w3.org/ns/activitystreams",
    "id": "https://mastodon.example/4f8e1c2a-7d3b-4b1e-9a6f-0c5d2e8b7a10",
    "type": "Flag",
    "actor": "https://mastodon.example/actor",
    "content": "",
    "object": [
        "https://rooms.example/users/alice",
        "https://rooms.example/users/alice/rooms/k3J9xq0aZ1bC",
    ],
}

# What the Fedify peer (tests/fedify) sends: compact JSON-LD, one object as a string.
FEDIFY_FLAG = {
    "@context": "https://www.w3.org/ns/activitystreams",
    "id": "http://127.0.0.1:41234/activities/0b7c7a39-3f6c-4d2e-8f0a-5e4f1c2b3a4d",
    "type": "Flag",
    "actor": "http://127.0.0.1:41234/users/bob",
    "object": "http://127.0.0.1:8080/users/alice",
    "content": "Spam in her room",
    "to": "http://127.0.0.1:8080/users/alice",
}


def test_mastodons_flag() -> None:
    flag = parse_flag(MASTODON_FLAG)
    assert flag == Flag(
        id=MASTODON_FLAG["id"],
        actor="https://mastodon.example/actor",
        objects=(
            "https://rooms.example/users/alice",
            "https://rooms.example/users/alice/rooms/k3J9xq0aZ1bC",
        ),
        content="",
    )
    # The inbox's envelope check takes a list as ``object`` for a Flag only.
    activity = parse_activity(MASTODON_FLAG)
    assert activity.object_id == "https://rooms.example/users/alice"
    with pytest.raises(ActivityParseError):
        parse_activity({**MASTODON_FLAG, "type": "Like"})


def test_fedifys_flag() -> None:
    flag = parse_flag(FEDIFY_FLAG)
    assert flag.objects == ("http://127.0.0.1:8080/users/alice",)
    assert flag.content == "Spam in her room"


def test_ours_round_trips() -> None:
    doc = build_flag(
        "https://a.example/flags/1",
        "https://a.example/actor",
        ["https://b.example/users/bob", "https://a.example/rooms/r"],
        "Shouting.\n\nRule broken: Be kind",
    )
    assert doc["object"] == ["https://b.example/users/bob", "https://a.example/rooms/r"]
    flag = parse_flag(doc)
    assert flag.content == "Shouting.\n\nRule broken: Be kind"
    with pytest.raises(ValueError):
        build_flag("https://a.example/flags/2", "https://a.example/actor", [], "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "https://elsewhere.example/1"}, "id"),  # not on the actor's origin
        ({"object": []}, "object"),
        ({"object": [3]}, "object"),
        ({"object": "javascript:alert(1)"}, "object"),
        ({"content": ["x"]}, "content"),
        ({"actor": None}, "actor"),
        ({"type": "Flagged"}, "type"),
    ],
)
def test_hostile_flags_are_refused(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ActivityParseError) as raised:
        parse_flag({**MASTODON_FLAG, **change})
    assert raised.value.field == field


def test_content_is_plain_text_and_bounded() -> None:
    flag = parse_flag(
        {**MASTODON_FLAG, "content": "<p>bad <img src=x onerror=alert(1)>words</p>" + "x" * 9000}
    )
    assert flag.content.startswith("bad words")
    assert "<" not in flag.content and len(flag.content) == MAX_FLAG_CONTENT
    many = parse_flag({**MASTODON_FLAG, "object": [f"https://b.example/u/{i}" for i in range(90)]})
    assert len(many.objects) == 50


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.sampled_from(["https://a.example/1", "http://a.example/1"]) | JSON,
            "type": st.just("Flag") | JSON,
            "actor": st.sampled_from(["https://a.example/actor", {"id": "https://a.example/x"}])
            | JSON,
            "object": st.lists(st.sampled_from(["https://b.example/users/c", 1, {}]), max_size=3)
            | JSON,
            "content": JSON,
        },
    )
)
def test_any_json_is_a_flag_or_our_parse_error(doc: dict[str, Any]) -> None:
    try:
        flag = parse_flag(doc)
    except ActivityParseError:
        return
    assert flag.objects and all(o.startswith(("http://", "https://")) for o in flag.objects)
