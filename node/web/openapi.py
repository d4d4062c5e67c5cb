"""The OpenAPI 3.1 description served at /api/v1/openapi.json (docs/API.md is the prose)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string"},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "the request field at fault, if one is"},
        },
    },
    "Credentials": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "pattern": "^[a-z0-9_]{1,30}$"},
            "password": {"type": "string", "minLength": 8, "maxLength": 256},
            "display_name": {"type": "string", "maxLength": 64},
        },
    },
    "Token": {
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "token": {"type": "string"},
            "status": {"enum": ["pending"]},
        },
    },
    "Account": {
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "bio": {"type": "string"},
            "is_admin": {"type": "boolean"},
            "handle": {"type": "string"},
        },
    },
    "Member": {
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "role": {"enum": ["host", "cohost", "speaker", "listener"]},
            "muted": {"type": "boolean"},
            "hand_raised": {"type": "boolean"},
            "invited": {"type": "boolean"},
            "connected": {"type": "boolean"},
            "publishing": {"type": "boolean"},
            "csrc": {
                "type": ["integer", "null"],
                "description": "RTP CSRC naming this member in the room's WebRTC audio",
            },
        },
    },
    "PasswordChange": {
        "type": "object",
        "required": ["current_password", "new_password"],
        "properties": {
            "current_password": {"type": "string"},
            "new_password": {"type": "string", "minLength": 8, "maxLength": 256},
        },
    },
    "ProfileChanges": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "display_name": {"type": "string", "maxLength": 64},
            "bio": {"type": "string", "maxLength": 500},
        },
    },
    "RoomChanges": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 120},
            "description": {"type": "string", "maxLength": 1000},
        },
    },
    "Muted": {
        "type": "object",
        "required": ["muted"],
        "properties": {"muted": {"type": "boolean"}},
    },
    "Accept": {
        "type": "object",
        "required": ["accept"],
        "properties": {"accept": {"type": "boolean"}},
    },
    "MoveTo": {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}},
    "Handle": {
        "type": "object",
        "required": ["handle"],
        "properties": {"handle": {"type": "string"}},
    },
    "RemoteRoomRequest": {
        "type": "object",
        "properties": {"url": {"type": "string"}, "handle": {"type": "string"}},
    },
    "Follow": {
        "type": "object",
        "required": ["handle", "actor", "state"],
        "properties": {
            "handle": {"type": "string"},
            "actor": {"type": "string"},
            "state": {"enum": ["pending", "accepted", "removed"]},
        },
    },
    "NewPublishKey": {
        "type": "object",
        "properties": {"room": {"type": "string"}, "label": {"type": "string", "maxLength": 64}},
    },
    "PublishKey": {
        "type": "object",
        "required": ["id", "room", "label", "created_at", "last_used_at"],
        "properties": {
            "id": {"type": "string"},
            "key": {"type": "string", "description": "only in the answer that creates it"},
            "room": {"type": ["string", "null"]},
            "label": {"type": "string"},
            "created_at": {"type": "number"},
            "last_used_at": {"type": ["number", "null"]},
        },
    },
    "NewRoom": {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {"type": "string", "maxLength": 120},
            "description": {"type": "string", "maxLength": 1000},
            "visibility": {"enum": ["public", "unlisted"]},
        },
    },
    "Room": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "visibility": {"enum": ["public", "unlisted"]},
            "state": {"enum": ["scheduled", "live", "ended"]},
            "url": {"type": "string", "format": "uri"},
            "host": {"type": "object"},
            "speakers": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
            "audience": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
            "hands": {"type": "array", "items": {"type": "string"}},
            "listener_count": {"type": "integer"},
            "max_speakers": {"type": "integer"},
            "whip_url": {"type": "string", "format": "uri"},
            "whep_url": {"type": "string", "format": "uri"},
            "listen_url": {"type": "string", "format": "uri"},
            "ws_url": {"type": "string", "format": "uri"},
            "relay_url": {"type": "string", "format": "uri"},
            "created_at": {"type": "number"},
            "started_at": {"type": ["number", "null"]},
            "ended_at": {"type": ["number", "null"]},
        },
    },
}

# (method, path, summary, needs auth, request schema, success status, response schema)
_OPERATIONS: list[tuple[str, str, str, bool, str | None, int, Any]] = [
    ("get", "/api/v1/config", "Node settings a client needs", False, None, 200, {}),
    ("get", "/api/v1/node/stats", "Rooms, listeners, relays", False, None, 200, {}),
    ("post", "/api/v1/accounts", "Sign up", False, "Credentials", 201, "Token"),
    ("get", "/api/v1/accounts/{username}", "Public profile", False, None, 200, "Account"),
    ("get", "/api/v1/accounts/{username}/rooms", "Rooms hosted by an account", False, None, 200, {}),
    ("get", "/api/v1/accounts/{username}/followers", "Who follows an account", False, None, 200, {}),
    ("get", "/api/v1/accounts/{username}/following", "Whom an account follows", False, None, 200, {}),
    ("post", "/api/v1/sessions", "Log in", False, "Credentials", 200, "Token"),
    ("get", "/api/v1/sessions", "Your sessions", True, None, 200, {}),
    ("delete", "/api/v1/sessions/{session_id}", "Revoke a session ('current' logs out)", True, None, 204, None),
    ("get", "/api/v1/me", "Your account", True, None, 200, "Account"),
    ("patch", "/api/v1/me", "Edit display name and bio", True, "ProfileChanges", 200, "Account"),
    ("post", "/api/v1/me/password", "Change your password; signs out your other sessions", True, "PasswordChange", 200, {}),
    ("get", "/api/v1/admin/accounts/pending", "Sign-ups waiting (admins)", True, None, 200, {}),
    ("get", "/api/v1/admin/storage", "Free space, writes refused for want of it (admins)", True, None, 200, {}),
    ("post", "/api/v1/admin/accounts/{username}/approve", "Approve a sign-up (admins)", True, None, 200, "Account"),
    ("get", "/api/v1/publish-keys", "Your publish keys (without the keys)", True, None, 200, {}),
    ("post", "/api/v1/publish-keys", "A publish key for OBS: WHIP only, optionally one room", True, "NewPublishKey", 201, "PublishKey"),
    ("delete", "/api/v1/publish-keys/{key_id}", "Revoke a publish key", True, None, 204, None),
    ("get", "/api/v1/follows", "Whom you follow on other servers", True, None, 200, {}),
    ("post", "/api/v1/follows", "Follow someone on another server {handle}", True, "Handle", 201, "Follow"),
    ("delete", "/api/v1/follows", "Unfollow (?handle=)", True, None, 200, "Follow"),
    ("get", "/api/v1/rooms", "Live public rooms (?state=scheduled: upcoming ones)", False, None, 200, {}),
    ("post", "/api/v1/rooms", "Create a room", True, "NewRoom", 201, "Room"),
    ("post", "/api/v1/remote-rooms", "This node's copy of a room of another node {url} or {handle}", True, "RemoteRoomRequest", 201, "Room"),
    ("get", "/api/v1/rooms/{room_id}", "A room", False, None, 200, "Room"),
    ("patch", "/api/v1/rooms/{room_id}", "Edit title/description (host, cohost)", True, "RoomChanges", 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/start", "Go live (host)", True, None, 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/end", "End (host)", True, None, 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/move", "Move the live room to a relaying node {to} (host, cohost)", True, "MoveTo", 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/hand", "Raise your hand", True, None, 200, "Room"),
    ("delete", "/api/v1/rooms/{room_id}/hand", "Lower your hand", True, None, 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/mute", "Mute or unmute yourself {muted}", True, "Muted", 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/invitation", "Accept or decline {accept}", True, "Accept", 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/members/{username}/{action}", "Moderate: invite, mute, role, remove, block", True, None, 200, "Room"),
    ("delete", "/api/v1/rooms/{room_id}/members/{username}/hand", "Lower someone's hand", True, None, 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/whip", "WHIP publish (RFC 9725), body application/sdp; a session or a publish key", True, None, 201, None),
    ("post", "/api/v1/rooms/{room_id}/whep", "WHEP listen, body application/sdp", False, None, 201, None),
    ("delete", "/api/v1/rooms/{room_id}/whip/{session_id}", "End a WHIP session", True, None, 200, None),
    ("delete", "/api/v1/rooms/{room_id}/whep/{session_id}", "End a WHEP session", False, None, 200, None),
    ("get", "/api/v1/rooms/{room_id}/listen.ogg", "Program as an Ogg/Opus stream", False, None, 200, None),
    ("get", "/api/v1/search", "Search people (name, handle; remote by WebFinger) and rooms (title) ?q=", False, None, 200, {}),
    ("post", "/api/v1/me/password", "Change your password {current_password, new_password}; signs out your other sessions", True, None, 200, {}),
    ("get", "/api/v1/search", "Search people (name, handle; remote by WebFinger) and rooms (title) ?q=", False, None, 200, {}),
    ("get", "/api/v1/remote-join", "Where a visitor joins a room from their own server (?handle=&room=)", False, None, 200, {}),
]  # fmt: skip


# Query parameters, by (method, path).
_QUERY: dict[tuple[str, str], list[str]] = {
    ("delete", "/api/v1/follows"): ["handle"],
    ("get", "/api/v1/search"): ["q"],
    ("get", "/api/v1/remote-join"): ["handle", "room"],
}


def _operation(
    summary: str,
    auth: bool,
    request: str | None,
    status: int,
    response: Any,
    path: str,
    query: list[str],
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {}}
    params = [
        {"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for p in path.split("/")
        if p.startswith("{")
    ] + [{"name": q, "in": "query", "required": True, "schema": {"type": "string"}} for q in query]
    if params:
        op["parameters"] = params
    if auth:
        op["security"] = [{"bearer": []}, {"cookie": []}]
    if request:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}
            },
        }
    if "whip" in path or "whep" in path:
        if status == 201:
            op["requestBody"] = {
                "required": True,
                "content": {"application/sdp": {"schema": {"type": "string"}}},
            }
            op["responses"]["201"] = {
                "description": "SDP answer; Location names the session",
                "content": {"application/sdp": {"schema": {"type": "string"}}},
            }
        else:
            op["responses"][str(status)] = {"description": "ended"}
    elif path.endswith("listen.ogg"):
        op["responses"]["200"] = {"description": "stream", "content": {"audio/ogg": {}}}
    elif response is None:
        op["responses"][str(status)] = {"description": "done"}
    else:
        schema = {"$ref": f"#/components/schemas/{response}"} if response else {"type": "object"}
        op["responses"][str(status)] = {
            "description": "ok",
            "content": {"application/json": {"schema": schema}},
        }
    op["responses"]["default"] = {
        "description": "error",
        "content": {"application/json": {"schema": _ERROR}},
    }
    return op


def openapi_document(base_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, auth, request, status, response in _OPERATIONS:
        paths.setdefault(path, {})[method] = _operation(
            summary, auth, request, status, response, path, _QUERY.get((method, path), [])
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Parley node API", "version": "1"},
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "parley_session"},
            },
        },
    }
