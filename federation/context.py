"""The Parley JSON-LD namespace and its context, in one place.

Terms live in the namespace ``https://w3id.org/parley#`` (prefix ``parley``). Every
document that uses them carries the term definitions inline in its ``@context`` (so no
processor has to fetch anything), and every node serves the same definitions as a
context document at :data:`CONTEXT_PATH` (``/ns/parley``). FEDERATION.md, "The parley
namespace".
"""

from __future__ import annotations

from typing import Any

from federation.actors import AS_CONTEXT

PARLEY_NS = "https://w3id.org/parley#"
CONTEXT_PATH = "/ns/parley"
JSON_LD = "application/ld+json"

PARLEY_TERMS: dict[str, Any] = {
    "parley": PARLEY_NS,
    "ParleyRoom": "parley:Room",
    "room": {"@id": "parley:room"},
    "roomState": "parley:state",
    "listenUrl": {"@id": "parley:listenUrl", "@type": "@id"},
    "whepUrl": {"@id": "parley:whepUrl", "@type": "@id"},
    "relayUrl": {"@id": "parley:relayUrl", "@type": "@id"},
    "speakers": {"@id": "parley:speakers", "@type": "@id", "@container": "@list"},
    "host": {"@id": "parley:host", "@type": "@id"},
}
"""Short names of the namespace's terms. Room actions (``parley:RaiseHand``,
``parley:member`` ...) are written as compact IRIs with the ``parley`` prefix."""

PARLEY_CONTEXT_TERMS: dict[str, Any] = {
    **PARLEY_TERMS,
    # ActivityStreams terms Mastodon uses that the AS context lacks or names differently.
    "Hashtag": "as:Hashtag",
    "sensitive": "as:sensitive",
}
NOTE_CONTEXT: list[Any] = [AS_CONTEXT, PARLEY_CONTEXT_TERMS]
"""The ``@context`` of room Notes, their Create/Update and the outbox that lists them."""
ROOM_ACTIVITY_CONTEXT: list[Any] = [AS_CONTEXT, {"parley": PARLEY_NS}]
"""The ``@context`` of room actions (``parley:RaiseHand`` ...)."""


def context_document() -> dict[str, Any]:
    """What ``GET /ns/parley`` serves: the namespace's term definitions."""
    return {"@context": dict(PARLEY_TERMS)}
