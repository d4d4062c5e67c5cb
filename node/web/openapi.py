"""The OpenAPI 3.1 description served at /api/v1/openapi.json (docs/API.md is the prose)."""

from __future__ import annotations

from typing import Any

from node.images import MEDIA_TYPES

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
            "reason": {"type": "string", "maxLength": 500},
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
            "role": {"enum": ["admin", "moderator", "user"]},
            "handle": {"type": "string"},
            "avatar_url": {"type": ["string", "null"]},
        },
    },
    "AdminAccount": {
        "type": "object",
        "required": ["username", "role", "status", "silenced", "signup_reason"],
        "properties": {
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "handle": {"type": "string"},
            "role": {"enum": ["admin", "moderator", "user"]},
            "status": {"enum": ["pending", "active", "suspended", "deleted"]},
            "silenced": {"type": "boolean"},
            "signup_reason": {"type": "string"},
            "created_at": {"type": "number"},
            "is_admin": {"type": "boolean"},
        },
    },
    "AccountAction": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 500},
            "role": {"enum": ["admin", "moderator", "user"]},
        },
    },
    "Reason": {
        "type": "object",
        "properties": {"reason": {"type": "string", "maxLength": 500}},
    },
    "NewDomainBlock": {
        "type": "object",
        "required": ["domain", "severity"],
        "properties": {
            "domain": {"type": "string"},
            "severity": {"enum": ["silence", "suspend"]},
            "public_comment": {"type": "string", "maxLength": 1000},
            "private_note": {"type": "string", "maxLength": 1000},
        },
    },
    "DomainBlock": {
        "type": "object",
        "required": ["domain", "severity"],
        "properties": {
            "domain": {"type": "string"},
            "severity": {"enum": ["silence", "suspend"]},
            "comment": {"type": "string"},
            "public_comment": {"type": "string"},
            "private_note": {"type": "string"},
            "created_at": {"type": "number"},
            "created_by": {"type": ["string", "null"]},
            "configured": {"type": "boolean"},
        },
    },
    "NewReport": {
        "type": "object",
        "required": ["target"],
        "properties": {
            "target": {"enum": ["account", "room", "speaker"]},
            "account": {"type": "string"},
            "room": {"type": "string"},
            "comment": {"type": "string", "maxLength": 1000},
            "rule": {"type": "string", "maxLength": 300},
            "forward": {"type": "boolean"},
        },
    },
    "Report": {
        "type": "object",
        "required": ["id", "target", "comment", "state"],
        "properties": {
            "id": {"type": "integer"},
            "target": {"type": "object"},
            "comment": {"type": "string"},
            "rule": {"type": "string"},
            "forward": {"type": "boolean"},
            "forwarded_from": {"type": ["string", "null"]},
            "reporter": {"type": ["string", "null"]},
            "state": {"enum": ["open", "resolved"]},
            "action_taken": {"type": "string"},
            "resolved_by": {"type": ["string", "null"]},
            "resolved_at": {"type": ["number", "null"]},
            "created_at": {"type": "number"},
        },
    },
    "Resolution": {
        "type": "object",
        "properties": {
            "action": {"enum": ["none", "suspend", "silence", "end_room"]},
            "note": {"type": "string", "maxLength": 500},
        },
    },
    "ServerSettings": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "description": {"type": "string", "maxLength": 2000},
            "rules": {
                "type": "array",
                "maxItems": 20,
                "items": {"type": "string", "maxLength": 300},
            },
            "contact": {"type": "string"},
            "registration": {"enum": ["open", "approval", "closed"]},
        },
    },
    "PasswordReset": {
        "type": "object",
        "required": ["token", "password"],
        "properties": {
            "token": {"type": "string"},
            "password": {"type": "string", "minLength": 8, "maxLength": 256},
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
    "Reaction": {
        "type": "object",
        "required": ["emoji"],
        "properties": {"emoji": {"enum": ["👏", "❤️", "😂", "🔥", "💯", "🙌"]}},
    },
    "NewComment": {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 500}},
    },
    "CommentRef": {
        "type": "object",
        "required": ["comment"],
        "properties": {"comment": {"type": "string"}},
    },
    "Pin": {
        "type": "object",
        "properties": {
            "comment": {"type": "string"},
            "link": {"type": "string", "format": "uri"},
            "label": {"type": "string", "maxLength": 120},
        },
    },
    "HandOver": {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}},
    "ReminderRequest": {
        "type": "object",
        "required": ["room"],
        "properties": {"room": {"type": "string", "format": "uri"}},
    },
    "MarkRead": {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}},
            "up_to": {"type": "integer"},
        },
    },
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
    "VisitorCodeRequest": {
        "type": "object",
        "required": ["handle", "room"],
        "properties": {"handle": {"type": "string"}, "room": {"type": "string"}},
    },
    "VisitorCodeSent": {
        "type": "object",
        "required": ["request", "handle", "display_name", "expires_at"],
        "properties": {
            "request": {"type": "string"},
            "handle": {"type": "string"},
            "display_name": {"type": "string"},
            "expires_at": {"type": "number"},
        },
    },
    "VisitorCode": {
        "type": "object",
        "required": ["request", "code"],
        "properties": {"request": {"type": "string"}, "code": {"type": "string"}},
    },
    "Visitor": {
        "type": "object",
        "required": ["handle", "display_name", "actor", "server", "visitor"],
        "properties": {
            "handle": {"type": "string"},
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "actor": {"type": "string"},
            "server": {"type": "string"},
            "avatar_url": {"type": ["string", "null"]},
            "visitor": {"const": True},
            "token": {"type": "string", "description": "only in the answer that creates it"},
        },
    },
    "NewRoom": {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {"type": "string", "maxLength": 120},
            "description": {"type": "string", "maxLength": 1000},
            "visibility": {"enum": ["public", "unlisted"]},
            "starts_at": {
                "type": ["string", "number"],
                "description": "RFC 3339 with an offset, or Unix seconds",
            },
            "recording": {"type": "boolean"},
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
            "ended_by": {"type": ["object", "null"]},
            "starts_at": {"type": ["number", "null"]},
            "recording": {"type": "boolean"},
            "cancelled": {"type": "boolean"},
            "host_away_until": {"type": ["number", "null"]},
            "announcement": {"type": ["string", "null"]},
            "comments": {"type": "object"},
            "summary": {"type": ["object", "null"]},
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
    ("get", "/api/v1/admin/dashboard", "The admin page's dashboard (staff)", True, None, 200, {}),
    ("get", "/api/v1/admin/storage", "Free space, writes refused for want of it (admins)", True, None, 200, {}),
    ("get", "/api/v1/admin/accounts", "Search accounts ?q=&status=&role= (staff)", True, None, 200, {}),
    ("get", "/api/v1/admin/accounts/pending", "Sign-ups waiting (staff)", True, None, 200, {}),
    ("post", "/api/v1/admin/accounts/{username}/{action}", "approve, reject, suspend {reason}, unsuspend, silence, unsilence (staff); role {role}, delete, password-reset (admins)", True, "AccountAction", 200, "AdminAccount"),
    ("get", "/api/v1/admin/rooms", "Rooms on this node (staff)", True, None, 200, {}),
    ("post", "/api/v1/admin/rooms/{room_id}/end", "Stop carrying a room here {reason} (staff)", True, "Reason", 200, "Room"),
    ("get", "/api/v1/admin/domain-blocks", "Domain blocks (admins)", True, None, 200, {}),
    ("post", "/api/v1/admin/domain-blocks", "Block a domain (admins)", True, "NewDomainBlock", 201, "DomainBlock"),
    ("delete", "/api/v1/admin/domain-blocks/{domain}", "Lift a domain block (admins)", True, None, 204, None),
    ("get", "/api/v1/admin/reports", "The reports queue ?state= (staff)", True, None, 200, {}),
    ("get", "/api/v1/admin/reports/{report_id}", "A report (staff)", True, None, 200, "Report"),
    ("post", "/api/v1/admin/reports/{report_id}/resolve", "Resolve a report {action, note} (staff)", True, "Resolution", 200, "Report"),
    ("post", "/api/v1/admin/reports/{report_id}/reopen", "Reopen a report (staff)", True, None, 200, "Report"),
    ("get", "/api/v1/admin/settings", "Server settings (staff)", True, None, 200, "ServerSettings"),
    ("patch", "/api/v1/admin/settings", "Change server settings (admins)", True, "ServerSettings", 200, "ServerSettings"),
    ("get", "/api/v1/reports", "Your reports", True, None, 200, {}),
    ("post", "/api/v1/reports", "Report an account, a room or a speaker", True, "NewReport", 201, "Report"),
    ("get", "/api/v1/blocks", "Accounts you block", True, None, 200, {}),
    ("post", "/api/v1/blocks", "Block an account {handle}", True, "Handle", 201, {}),
    ("delete", "/api/v1/blocks/{handle}", "Unblock", True, None, 204, None),
    ("get", "/api/v1/mutes", "Accounts whose rooms you muted", True, None, 200, {}),
    ("post", "/api/v1/mutes", "Mute an account's room announcements {handle}", True, "Handle", 201, {}),
    ("delete", "/api/v1/mutes/{handle}", "Unmute", True, None, 204, None),
    ("post", "/api/v1/password-reset", "Set a password with a one-time link's token", False, "PasswordReset", 200, {}),
    ("get", "/api/v1/about", "The node: name, description, rules, contact, blocked servers", False, None, 200, {}),
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
    ("post", "/api/v1/visitor/codes", "Send a one-time code to a fediverse handle {handle, room}", False, "VisitorCodeRequest", 202, "VisitorCodeSent"),
    ("post", "/api/v1/visitor/sessions", "Join as a visitor with the code {request, code}", False, "VisitorCode", 201, "Visitor"),
    ("get", "/api/v1/visitor", "The visitor asking", False, None, 200, "Visitor"),
    ("delete", "/api/v1/visitor", "Sign the visitor out (?all=true: every session)", False, None, 204, None),
    ("post", "/api/v1/visitor/requests/{request_id}/report", "It was not me: stop the code", False, None, 204, None),
    ("get", "/api/v1/admin/visitor-reports", "Visitor codes reported as not asked for (admins)", True, None, 200, {}),
    ("delete", "/api/v1/admin/visitors/{handle}", "Revoke a visitor's sessions (admins)", True, None, 200, {}),
    ("get", "/api/v1/search", "Search people (name, handle; remote by WebFinger) and rooms (title) ?q=", False, None, 200, {}),
    ("post", "/api/v1/me/password", "Change your password {current_password, new_password}; signs out your other sessions", True, None, 200, {}),
    ("get", "/api/v1/search", "Search people (name, handle; remote by WebFinger) and rooms (title) ?q=", False, None, 200, {}),
    ("get", "/api/v1/remote-join", "Where a visitor joins a room from their own server (?handle=&room=)", False, None, 200, {}),
    ("put", "/api/v1/me/avatar", "Upload your avatar: the image as the body (PNG, JPEG, GIF or WebP, at most 8 MiB); remade as a PNG without metadata", True, None, 200, "Account"),
    ("delete", "/api/v1/me/avatar", "Remove your avatar", True, None, 200, "Account"),
    ("get", "/api/v1/remote-avatar", "A known remote actor's icon, fetched and remade by this node (?actor=)", False, None, 200, None),
    ("post", "/api/v1/rooms/{room_id}/reactions", "React {emoji} (rate-limited per person: 429)", True, "Reaction", 200, {}),
    ("get", "/api/v1/rooms/{room_id}/comments", "Comments (replies to the room's posts), newest first (?limit=&before=)", False, None, 200, {}),
    ("post", "/api/v1/rooms/{room_id}/comments", "Comment {text}: a federated reply to the room's post", True, "NewComment", 201, {}),
    ("post", "/api/v1/rooms/{room_id}/comments/hide", "Hide a comment everywhere {comment} (host, cohost)", True, "CommentRef", 200, "Room"),
    ("put", "/api/v1/rooms/{room_id}/pin", "Pin a comment {comment} or a link {link, label} (host, cohost)", True, "Pin", 200, "Room"),
    ("delete", "/api/v1/rooms/{room_id}/pin", "Unpin (host, cohost)", True, None, 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/hand-over", "Hand the room to a cohost {to} (host)", True, "HandOver", 200, "Room"),
    ("post", "/api/v1/rooms/{room_id}/take-host", "Take over as host while the host is away (cohost)", True, None, 200, "Room"),
    ("get", "/api/v1/rooms/{room_id}/calendar.ics", "A scheduled room as iCalendar", False, None, 200, None),
    ("get", "/api/v1/rooms/{room_id}/recording", "A recorded room's replay: URLs, size, length", False, None, 200, {}),
    ("delete", "/api/v1/rooms/{room_id}/recording", "Delete the recording (host)", True, None, 204, None),
    ("get", "/api/v1/rooms/{room_id}/recording.ogg", "The recording, Ogg/Opus; Range; ?download=1", False, None, 200, None),
    ("get", "/api/v1/reminders", "Rooms you asked to be reminded of", True, None, 200, {}),
    ("post", "/api/v1/reminders", "Remind me when a room {room} starts (here or elsewhere)", True, "ReminderRequest", 201, {}),
    ("delete", "/api/v1/reminders", "No reminder (?room=)", True, None, 200, {}),
    ("get", "/api/v1/notifications", "Your notifications, newest first (?limit=&before=)", True, None, 200, {}),
    ("post", "/api/v1/notifications/read", "Mark read: {ids}, {up_to} or all", True, "MarkRead", 200, {}),
]  # fmt: skip


# Query parameters, by (method, path).
_QUERY: dict[tuple[str, str], list[str]] = {
    ("delete", "/api/v1/follows"): ["handle"],
    ("get", "/api/v1/search"): ["q"],
    ("get", "/api/v1/remote-join"): ["handle", "room"],
    ("get", "/api/v1/remote-avatar"): ["actor"],
    ("delete", "/api/v1/reminders"): ["room"],
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
    elif path.endswith(".ogg"):
        op["responses"]["200"] = {"description": "stream", "content": {"audio/ogg": {}}}
    elif path == "/api/v1/remote-avatar":
        op["responses"]["200"] = {"description": "a PNG", "content": {"image/png": {}}}
    elif path.endswith(".ics"):
        op["responses"]["200"] = {"description": "iCalendar", "content": {"text/calendar": {}}}
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
    # The avatar upload's body is the image itself.
    paths["/api/v1/me/avatar"]["put"]["requestBody"] = {
        "required": True,
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in sorted(MEDIA_TYPES)
        },
    }
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
