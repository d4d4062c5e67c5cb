"""Self-check of the Fedify test peer (not a pytest test).

Run: .venv/bin/python tests/fedify/selfcheck.py

1. WebFinger and the actor document are served unsigned by a default peer.
2. With --authorized-fetch, an unsigned GET of the actor is refused with 401 while WebFinger
   still answers; a signed look-up from another peer succeeds.
3. Two peers (bob on two ports) follow each other through the control API with each
   first-knock spec; both followers lists fill, proving Follow/Accept signing works
   between Fedify instances, and Undo(Follow) empties them again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fedify_peer import FedifyPeer  # noqa: E402

AP = "application/activity+json"


def check(condition: object, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAIL: {message}")
    print(f"ok: {message}")


def wait(predicate: object, what: str, timeout: float = 15.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"FAIL: timed out waiting for {what}")
        time.sleep(0.1)
    print(f"ok: {what}")


def unsigned_discovery(peer: FedifyPeer, *, authorized: bool) -> None:
    wf = httpx.get(
        f"{peer.base_url}/.well-known/webfinger",
        params={"resource": f"acct:{peer.handle}"},
        timeout=10,
    )
    check(wf.status_code == 200, f"WebFinger answers 200 (authorized_fetch={authorized})")
    links = [link for link in wf.json()["links"] if link.get("rel") == "self"]
    check(links and links[0]["href"] == peer.actor_id, "WebFinger self link is the actor id")
    actor = httpx.get(peer.actor_id, headers={"Accept": AP}, timeout=10)
    if authorized:
        check(actor.status_code == 401, f"unsigned actor GET is refused ({actor.status_code})")
        followers = httpx.get(f"{peer.actor_id}/followers", headers={"Accept": AP}, timeout=10)
        check(followers.status_code == 401, "unsigned followers GET is refused")
    else:
        check(actor.status_code == 200, "unsigned actor GET answers 200")
        check(actor.headers["content-type"].startswith(AP), "actor content type is AP JSON")
        doc = actor.json()
        check(doc["id"] == peer.actor_id and doc["type"] == "Person", "actor is a Person")
        check(doc["publicKey"]["owner"] == peer.actor_id, "actor has publicKey with owner")
        check("inbox" in doc and "followers" in doc, "actor has inbox and followers")


def mutual_follow(first_knock: str) -> None:
    print(f"--- mutual follow, first knock {first_knock}")
    with (
        FedifyPeer(first_knock=first_knock) as a,  # type: ignore[arg-type]
        FedifyPeer(first_knock=first_knock) as b,  # type: ignore[arg-type]
        FedifyPeer(authorized_fetch=True) as c,
    ):
        result = a.follow(b.handle)
        check(result["delivered"], "a's Follow was delivered to b")
        check(result["actor"]["id"] == b.actor_id, "a discovered b's actor id via WebFinger")
        check(result["actor"]["preferredUsername"] == "bob", "b's preferredUsername is bob")
        check(result["actor"]["inbox"] == b.inbox_url, "b's inbox is discovered")
        wait(lambda: a.actor_id in b.followers(), "b lists a as a follower")
        wait(
            lambda: any(f["state"] == "accepted" for f in a.following()),
            "a's Follow of b is accepted",
        )
        result = b.follow(a.actor_id)
        check(result["delivered"], "b's Follow was delivered to a")
        wait(lambda: b.actor_id in a.followers(), "a lists b as a follower")

        follow = b.wait_for_activity("Follow", actor=a.actor_id)
        check(follow["handled_by"] == "Follow", "b's Follow listener handled a's Follow")
        check(follow["status"] == 202, f"b answered the Follow with {follow['status']}")
        expected = "rfc9421" if first_knock == "rfc9421" else "draft-cavage-http-signatures-12"
        check(
            follow["signature_format"] == expected,
            f"a signed its Follow with {follow['signature_format']}",
        )
        check(follow["http_signature"]["verified"], "the Follow's signature verifies")
        accept = a.wait_for_activity("Accept", actor=b.actor_id)
        check(accept["handled_by"] == "Accept", "a's Accept listener handled b's Accept")

        lookup = a.lookup(c.handle)
        check(lookup["id"] == c.actor_id, "a's signed lookup of authorized-fetch c works")
        unsigned = a.http.post("/_control/lookup", json={"url": c.actor_id, "signed": False})
        check(unsigned.status_code >= 400, "a's unsigned lookup of authorized-fetch c fails")

        a.undo_follow(b.actor_id)
        wait(lambda: a.actor_id not in b.followers(), "Undo(Follow) removes a from b's followers")


def main() -> None:
    with FedifyPeer() as peer:
        unsigned_discovery(peer, authorized=False)
    with FedifyPeer(authorized_fetch=True) as peer:
        unsigned_discovery(peer, authorized=True)
    mutual_follow("rfc9421")
    mutual_follow("draft-cavage-http-signatures-12")
    print("selfcheck passed")


if __name__ == "__main__":
    main()
