"""Exceptions raised by the media layer.

One small tree, so the web layer can map them to HTTP errors in one place::

    MediaError
    ├── InvalidOffer      an SDP offer we refuse (``reason`` is safe to show a client)
    ├── SessionNotFound   no peer session with that id
    ├── StreamClosed      a packet stream ended; its readers stop
    └── WorkerUnavailable no media worker could take a session (node.media.workers)
"""

from __future__ import annotations


class MediaError(Exception):
    """Base class of every error raised by ``node.media``."""


class InvalidOffer(MediaError):
    """A WHIP/WHEP offer was refused before or during negotiation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionNotFound(MediaError):
    """No peer session is known under the given id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no media session {session_id!r}")
        self.session_id = session_id


class StreamClosed(MediaError):
    """The packet stream a reader follows was closed."""


class WorkerUnavailable(MediaError):
    """No media worker process could take the session (one died or did not answer)."""
