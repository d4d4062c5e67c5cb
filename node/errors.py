"""The node's exception tree. The web layer maps it to JSON errors in one place.

ParleyError
├── InvalidInput          400/422  bad field value (`field`, `reason`)
├── Unauthorized          401      no or bad credentials
├── Forbidden             403      authenticated but not allowed (`reason`)
├── NotFound              404      (`what`)
├── Conflict              409      state does not allow it (`reason`)
│   └── IllegalTransition          a room life cycle move not in the graph
├── PayloadTooLarge       413
├── RateLimited           429      (`retry_after` seconds)
├── Unavailable           503      try again (a part of the node is down for now)
│   └── UseHls                     no WebRTC listener here: play the room's hls_url
└── InsufficientStorage   507      the disk is full: `feature` cannot save (admin told)
"""

from __future__ import annotations


class ParleyError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # The request field the error is about, if one is (clients show it there).
        self.field = field


class InvalidInput(ParleyError):
    status = 422
    code = "invalid_input"

    def __init__(self, field: str, reason: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}", field=field)
        self.field: str = field
        self.reason = reason
        self.status = status


class Unauthorized(ParleyError):
    status = 401
    code = "unauthorized"


class Forbidden(ParleyError):
    status = 403
    code = "forbidden"


class NotFound(ParleyError):
    status = 404
    code = "not_found"


class Conflict(ParleyError):
    status = 409
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a room cannot go from {current} to {target}")
        self.current = current
        self.target = target


class PayloadTooLarge(ParleyError):
    status = 413
    code = "payload_too_large"


class RateLimited(ParleyError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many attempts; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class Unavailable(ParleyError):
    """The node cannot serve this right now (a media worker is down); try again."""

    status = 503
    code = "unavailable"


class UseHls(Unavailable):
    """The node sends new web listeners of this room to its HLS stream ([hls]
    after_listeners, or no media worker can take one)."""

    code = "use_hls"


class InsufficientStorage(ParleyError):
    """The data dir's disk is full: what ``feature`` (database, recordings, avatars...)
    had to save was not saved, and nothing half-written was kept. The node goes on
    serving; the admin sees it in GET /api/v1/admin/storage and the log."""

    status = 507
    code = "insufficient_storage"

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"the node's disk is full: {feature} cannot save anything now (nothing was "
            f"saved); the administrator is told. Try again later"
        )
        self.feature = feature
