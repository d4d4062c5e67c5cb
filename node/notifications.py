"""Our users' notifications: what happened, stored (node.store.notifications), listed by the
API and pushed live to the pages they have open (``NotificationHub``): over the room's
WebSocket on a room page (``attach``: the socket the page has anyway), else over one small
WebSocket per signed-in page (node/web/notifications.py).

Adding a kind is one line in ``KINDS``: its name, the text shown (a format string over
the notification's data) and the data key that holds where it leads. Whoever notifies
passes that data: ``notifier.notify(account_id, "kind", {...})``.

Kinds today: a room you asked to be reminded of started (here, or on another server that
told us: its Event or its Note went live), someone you follow went live (local follows
never go over the network, so followers here are told directly; followers of people
elsewhere through the announcement we receive), you were invited to speak, you got a
follower (from another server by its ``Follow``; from this node by
node.fediverse.local_follows), your report was handled (``report_handled``: the adapter
the moderation side calls when a moderator resolves a report).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from federation.activities import RemoteRoom
from federation.activities import RoomState as AnnouncedState
from node.mailbox import Mailbox
from node.store.notifications import NotificationStore
from node.store.reminders import Reminders

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    text: str
    """A format string over the notification's data."""
    link: str | None = "url"
    """The data key holding the URL the notification leads to."""


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("room_started", "{title} has started: you asked to be reminded"),
        Kind("followed_live", "{host} is live: {title}"),
        Kind("invited", "{host} invited you to speak in {title}"),
        Kind("new_follower", "{follower} follows you"),
        Kind("report_handled", "Your report #{report} was handled: thank you", link=None),
    )
}


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(notification: dict[str, Any]) -> dict[str, Any]:
    """A stored notification as the API shows it: with its text and link."""
    kind = KINDS.get(notification["kind"])
    data = notification.get("data") or {}
    text = kind.text.format_map(_Defaults(data)) if kind else notification["kind"]
    link = data.get(kind.link) if kind and kind.link else None
    return {**notification, "text": text, "url": link if isinstance(link, str) else None}


class Listener(Mailbox[dict[str, Any]]):
    """One open page of one account."""

    def __init__(self, account_id: int) -> None:
        super().__init__(maxsize=64)
        self.account_id = account_id


class NotificationHub:
    def __init__(self) -> None:
        self._listeners: dict[int, set[Listener]] = {}
        self._attached: dict[int, set[Mailbox[Any]]] = {}

    def attach(self, account_id: int, mailbox: Mailbox[Any]) -> Callable[[], None]:
        """Push ``account_id``'s notifications into a socket that exists anyway (a room
        page's WebSocket); returns what detaches it. A full mailbox just misses one: the
        socket is the room's to drop, not ours."""
        self._attached.setdefault(account_id, set()).add(mailbox)

        def detach() -> None:
            found = self._attached.get(account_id)
            if found is not None:
                found.discard(mailbox)
                if not found:
                    del self._attached[account_id]

        return detach

    def listen(self, account_id: int) -> Listener:
        listener = Listener(account_id)
        self._listeners.setdefault(account_id, set()).add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        found = self._listeners.get(listener.account_id)
        if found is not None:
            found.discard(listener)
            if not found:
                del self._listeners[listener.account_id]

    def push(self, account_id: int, message: dict[str, Any]) -> None:
        for listener in list(self._listeners.get(account_id, ())):
            if not listener.send(message):
                self.forget(listener)
                listener.close()
        for mailbox in list(self._attached.get(account_id, ())):
            mailbox.send(message)


class Notifier:
    """Notifies our users; implements federation.ports.Notices for the inbox."""

    def __init__(
        self,
        store: NotificationStore,
        reminders: Reminders,
        hub: NotificationHub,
        *,
        base_url: str,
        room_page: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.reminders = reminders
        self.hub = hub
        self.base_url = base_url.rstrip("/")
        self._room_page = room_page or (
            lambda url: f"{self.base_url}/rooms/remote?origin={quote(url, safe='')}"
        )

    def notify(
        self, account_id: int, kind: str, data: dict[str, Any], *, dedupe: str | None = None
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r} (node.notifications.KINDS)")
        stored = self.store.add(account_id, kind, data, dedupe)
        if stored is not None:
            self.hub.push(
                account_id,
                {
                    "type": "notification",
                    "notification": render(stored),
                    "unread": self.store.unread(account_id),
                },
            )

    def _usernames(self, names: list[str]) -> dict[str, int]:
        return self.store.account_ids(names)

    # -- rooms ----------------------------------------------------------------------------

    def room_started(
        self,
        *,
        url: str,
        title: str,
        host: str,
        host_actor: str,
        event_id: str | None,
        room_url: str | None = None,
    ) -> None:
        """A room went live: those who asked to be reminded (reminders are kept by the
        room's own ``room_url``), and our users who follow its host. ``url`` is where our
        users open it."""
        data = {"title": title, "host": host, "url": url}
        reminded = set(self.reminders.accounts_for(room_url or url, event_id))
        for account_id in reminded:
            self.notify(account_id, "room_started", data, dedupe=f"room_started {url}")
        followers = self._usernames(self.store.following_here(host_actor, self.base_url))
        for account_id in followers.values():
            if account_id not in reminded:
                self.notify(account_id, "followed_live", data, dedupe=f"live {url}")

    def invited(self, username: str, *, title: str, host: str, url: str, at: float) -> None:
        found = self._usernames([username])
        if username in found:
            data = {"title": title, "host": host, "url": url}
            self.notify(found[username], "invited", data, dedupe=f"invited {url} {at:.0f}")

    # -- federation.ports.Notices ---------------------------------------------------------

    async def room_announced(self, room: RemoteRoom) -> None:
        if room.state is not AnnouncedState.LIVE:
            return
        host = self.store.display_name(room.host)
        handle = f"{host}@{urlsplit(room.host).netloc}"
        self.room_started(
            url=self._room_page(room.url),
            title=room.title,
            host=handle,
            host_actor=room.host,
            event_id=room.event_id,
            room_url=room.url,
        )

    async def followed(self, local_actor: str, follower: str) -> None:
        """``follower`` follows our ``local_actor`` (a Follow from another server, or a
        follow between two accounts here)."""
        prefix = f"{self.base_url}/users/"
        if not local_actor.startswith(prefix):
            return
        found = self._usernames([local_actor[len(prefix) :]])
        if follower.startswith(prefix):
            name = follower[len(prefix) :]
            handle, page = f"{name}@{urlsplit(self.base_url).netloc}", f"/@{quote(name)}"
        else:
            name = self.store.display_name(follower)
            handle = f"{name}@{urlsplit(follower).netloc}"
            page = f"/@{quote(handle, safe='@:')}"
        for account_id in found.values():
            self.notify(
                account_id,
                "new_follower",
                {"follower": handle, "actor": follower, "url": f"{self.base_url}{page}"},
                dedupe=f"follower {follower}",
            )

    # -- moderation -----------------------------------------------------------------------

    def report_handled(self, account_id: int, report_id: int) -> None:
        """A moderator resolved ``report_id``, which ``account_id`` filed: called by
        node.moderation.reports.ReportDesk through its ``ReportNotifier`` Protocol (wired
        in node/web/app.py)."""
        self.notify(
            account_id, "report_handled", {"report": report_id}, dedupe=f"report {report_id}"
        )
