"""Fuzzing the inbox of a real node with signed bodies (hypothesis).

The signer is a real actor with a real key (served by tests/hostile.py), so bodies pass
the signature check and reach the parser and then the inbox worker: activities of every
type the node handles, mutated, plus random JSON and bytes. The node must answer 202,
400, 401, 403 or 413, never 500, and its worker must never crash on what it stored.

`make test` runs the short profile; a long run (docs/SECURITY.md):
    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q tests/test_fuzz_inbox.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.actors import ACTIVITY_JSON, ActorUrls, build_person
from federation.keys import generate_keypair
from federation.signatures import sign_request, sign_request_rfc9421
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import db_rows, wait_for
from tests.hostile import HostileServer, json_answer
from tests.test_properties_federation import json_values, urls

KEYS = generate_keypair()


def _activities(eve: str, node: NodeProcess, room_url: str) -> list[dict[str, Any]]:
    alice = f"{node.base_url}/users/alice"
    note_id = f"{eve}/rooms/r1"
    origin = eve.rsplit("/users/", 1)[0]
    note = {
        "id": note_id,
        "type": "Note",
        "attributedTo": eve,
        "content": "<p>hi</p>",
        "room": {"type": "ParleyRoom", "id": f"{origin}/rooms/r1", "url": f"{origin}/rooms/r1",
                 "roomState": "live", "name": "<b>x</b>", "host": eve, "speakers": [eve],
                 "listenUrl": f"{origin}/l.ogg"},
    }  # fmt: skip
    follow = {"id": f"{eve}/f/1", "type": "Follow", "actor": eve, "object": alice}
    return [
        follow,
        {"id": f"{eve}/u/1", "type": "Undo", "actor": eve, "object": follow},
        {"id": f"{eve}/a/1", "type": "Accept", "actor": eve, "object": follow},
        {"id": f"{eve}/a/2", "type": "Reject", "actor": eve, "object": f"{alice}/follows/x"},
        {"id": f"{eve}/c/1", "type": "Create", "actor": eve, "object": note},
        {
            "id": f"{eve}/c/2",
            "type": "Update",
            "actor": eve,
            "object": {**note, "room": {**note["room"], "roomState": "ended"}},
        },  # fmt: skip
        {"id": f"{eve}/d/1", "type": "Delete", "actor": eve, "object": note_id},
        {"id": f"{eve}/d/2", "type": "Delete", "actor": eve, "object": eve},
        *[
            {
                "id": f"{eve}/p/{kind}",
                "type": kind,
                "actor": eve,
                "object": room_url,
                "parley:member": "alice",
                "parley:muted": True,
                "parley:accept": True,
                "parley:role": "cohost",
            }
            for kind in (
                "parley:RaiseHand",
                "parley:LowerHand",
                "parley:AnswerInvitation",
                "parley:Mute",
                "parley:Invite",
                "parley:SetRole",
            )
        ],  # fmt: skip
    ]


def _mutate(base: dict[str, Any], changes: dict[str, Any], fresh_id: int) -> dict[str, Any]:
    doc = {**base, **changes}
    if "id" not in changes and isinstance(base.get("id"), str):
        doc["id"] = f"{base['id']}/{fresh_id}"  # a new id: duplicates are not processed
    return doc


def test_inbox_with_signed_bodies_never_answers_500(
    node: NodeProcess, api: Api, hostile_servers: Callable[[], HostileServer]
) -> None:
    alice = api.signup("alice")
    room = api.live_room(alice, "Fuzzed room")
    peer = hostile_servers()
    eve_urls = ActorUrls.for_user(peer.base_url, "eve")
    eve = eve_urls.id
    peer.answers["/users/eve"] = json_answer(
        build_person(
            eve_urls, username="eve", name="Eve", summary="", public_key_pem=KEYS.public_pem
        )  # fmt: skip
    )
    bases = _activities(eve, node, room["url"])
    fields = st.sampled_from(["id", "type", "actor", "object", "to", "cc", "parley:member",
                              "attributedTo", "room"])  # fmt: skip
    bodies = st.one_of(
        st.builds(
            lambda base, changes, n: json.dumps(_mutate(base, changes, n)).encode(),
            st.sampled_from(bases),
            st.dictionaries(fields, urls | json_values | st.just(eve), max_size=2),
            st.integers(0, 10**9),
        ),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
    )
    seen: dict[int, int] = {}
    http = httpx.Client(timeout=15)
    inbox_urls = [f"{node.base_url}/inbox", f"{node.base_url}/users/alice/inbox"]

    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(body=bodies, rfc9421=st.booleans(), target=st.sampled_from(inbox_urls))
    def post(body: bytes, rfc9421: bool, target: str) -> None:
        sign = sign_request_rfc9421 if rfc9421 else sign_request
        headers = sign("POST", target, {"Content-Type": ACTIVITY_JSON}, body,
                       f"{eve}#main-key", KEYS.private_pem)  # fmt: skip
        response = http.post(target, content=body, headers=headers)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (202, 400, 401, 403, 413), (body[:300], response.text)

    try:
        post()
    finally:
        http.close()
    assert seen.get(202, 0) > 0, seen  # the run did reach the worker

    # The worker has taken everything stored, and nothing crashed it.
    wait_for(
        lambda: (
            not db_rows(
                node, "select 1 from fed_inbox where state in ('pending', 'processing') limit 1"
            )
        ),  # fmt: skip
        what="the inbox worker to drain",
    )
    log = (node.directory / "node.log").read_text(errors="replace")
    assert "Traceback" not in log and "crashed" not in log, log[log.find("Traceback") - 2000 :]
    assert api.http.get("/api/v1/config").status_code == 200
