"""The parley JSON-LD namespace (federation/context.py) as a JSON-LD processor reads it.

Documents come from a real node; they are expanded by jsonld.js (Digital Bazaar's
processor, the one Fedify uses; tests/fedify/expand.mjs), not by our code: a term that
the document's ``@context`` does not define ends up as a blank-node IRI and the checks
below fail.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx

from federation.context import CONTEXT_PATH, ROOM_ACTIVITY_CONTEXT, context_document
from federation.room_activities import RoomActivity, build_room_activity
from tests.conftest import Api, NodeProcess
from tests.fedify_peer import PEER_DIR, check_installed

AP = {"Accept": "application/activity+json"}
P = "https://w3id.org/parley#"


def expand(*documents: Any) -> list[Any]:
    check_installed()
    done = subprocess.run(
        ["node", str(PEER_DIR / "expand.mjs")],
        input=json.dumps(documents).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return list(json.loads(done.stdout))


def outbox_page(node: NodeProcess) -> dict[str, Any]:
    url = f"{node.base_url}/users/alice/outbox?page=1"
    for _ in range(100):
        page = dict(httpx.get(url, headers=AP).json())
        if page["orderedItems"]:
            return page
        time.sleep(0.1)
    raise AssertionError("the room's Create never reached the outbox")


def room_of(expanded_note: dict[str, Any]) -> dict[str, Any]:
    (room,) = expanded_note[f"{P}room"]
    return dict(room)


def test_the_node_serves_the_parley_context(node: NodeProcess) -> None:
    response = httpx.get(f"{node.base_url}{CONTEXT_PATH}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == context_document()


def test_the_outbox_and_the_note_keep_the_room_for_a_json_ld_processor(
    node: NodeProcess, api: Api
) -> None:
    alice = api.signup("alice")
    room = api.live_room(alice, "Context")
    page = outbox_page(node)
    note_id = page["orderedItems"][0]["object"]["id"]
    note = httpx.get(note_id, headers=AP).json()
    (expanded_page, expanded_note) = expand(page, note)

    (items,) = expanded_page[0]["https://www.w3.org/ns/activitystreams#items"]
    (create,) = items["@list"]
    (note_in_outbox,) = create["https://www.w3.org/ns/activitystreams#object"]
    for doc in (room_of(note_in_outbox), room_of(expanded_note[0])):
        assert doc["@type"] == [f"{P}Room"]
        assert doc[f"{P}state"] == [{"@value": "live"}]
        assert doc[f"{P}relayUrl"] == [{"@id": room["relay_url"]}]
        assert doc[f"{P}listenUrl"] == [{"@id": room["listen_url"]}]
        assert doc[f"{P}host"] == [{"@id": f"{node.base_url}/users/alice"}]
        assert doc[f"{P}speakers"] == [{"@list": [{"@id": f"{node.base_url}/users/alice"}]}]


def test_the_served_context_means_what_the_inline_one_does(node: NodeProcess) -> None:
    note = {
        "type": "Note",
        "id": "https://a.example/users/alice/rooms/r1",
        "room": {
            "type": "ParleyRoom",
            "id": "https://a.example/rooms/r1",
            "roomState": "live",
            "relayUrl": "wss://a.example/relay/v1/rooms/r1",
            "speakers": ["https://a.example/users/alice"],
        },
    }
    as_context = "https://www.w3.org/ns/activitystreams"
    inline = {"@context": [as_context, context_document()["@context"]]}
    served = {"@context": [as_context, node.base_url + CONTEXT_PATH]}
    by_inline, by_url = expand({**inline, **note}, {**served, **note})
    assert by_inline == by_url
    assert room_of(by_url[0])[f"{P}relayUrl"] == [{"@id": "wss://a.example/relay/v1/rooms/r1"}]


def test_room_actions_expand_to_the_namespace() -> None:
    doc = build_room_activity(
        "https://b.example/users/bob/activities/1",
        RoomActivity(
            "parley:Mute",
            "https://b.example/users/bob",
            "https://a.example/rooms/r1",
            member="carol@c.example",
            arguments={"muted": True},
        ),
    )
    assert doc["@context"] == ROOM_ACTIVITY_CONTEXT
    (expanded,) = expand(doc)[0]
    assert expanded["@type"] == [f"{P}Mute"]
    assert expanded[f"{P}member"] == [{"@value": "carol@c.example"}]
    assert expanded[f"{P}muted"] == [{"@value": True}]
    assert expanded["https://www.w3.org/ns/activitystreams#object"] == [
        {"@id": "https://a.example/rooms/r1"}
    ]
