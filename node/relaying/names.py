"""Member names as one node sees them: its own users bare (``alice``), everyone else as
a handle ``user@host[:port]``. Names on the relay stream are as the *sending* node names
them; the receiver qualifies bare names with the sender's host."""

from __future__ import annotations

from urllib.parse import urlsplit


def netloc(url: str) -> str:
    """``host[:port]`` of ``url``, lower-cased; "" when it does not parse (remote input)."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return ""


def http_url(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)


class Names:
    def __init__(self, own_host: str) -> None:
        self.own_host = own_host

    def handle(self, name: str) -> str:
        """A name of ours as a global handle."""
        return name if "@" in name else f"{name}@{self.own_host}"

    def local(self, handle: str) -> str:
        """A global handle as we name it."""
        user, _, host = handle.rpartition("@")
        return user if user and host.lower() == self.own_host else handle

    def from_peer(self, name: str, peer_host: str) -> str:
        """A name as ``peer_host`` sent it, as we name it."""
        return self.local(name if "@" in name else f"{name}@{peer_host}")
