"""node.notifications over the node's real SQLite stores (in memory, migrated): every kind
renders its text and link, a thing notifies once, an open page gets it live, a local
follow tells the followed account, and the adapter the moderation side calls when a
report is resolved (``report_handled(account_id, report_id)``) notifies the reporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlite_utils

from node.fediverse.local_follows import LocalFollows
from node.mailbox import Mailbox
from node.notifications import KINDS, NotificationHub, Notifier, render
from node.store.accounts import AccountDirectory
from node.store.federation import SqliteFollows
from node.store.migrate import migrate
from node.store.notifications import NotificationStore
from node.store.reminders import Reminders

BASE = "https://rooms.example"


@pytest.fixture
def db() -> Iterator[sqlite_utils.Database]:
    database = sqlite_utils.Database(memory=True)
    migrate(database)
    yield database
    database.close()


@pytest.fixture
def accounts(db: sqlite_utils.Database) -> AccountDirectory:
    directory = AccountDirectory(db)
    for name in ("alice", "bob"):
        directory.create(name, "correct horse")
    return directory


@pytest.fixture
def hub() -> NotificationHub:
    return NotificationHub()


@pytest.fixture
def notifier(db: sqlite_utils.Database, hub: NotificationHub) -> Notifier:
    return Notifier(NotificationStore(db), Reminders(db), hub, base_url=BASE)


def test_every_kind_has_its_text_and_link(notifier: Notifier) -> None:
    assert set(KINDS) == {
        "room_started",
        "followed_live",
        "invited",
        "new_follower",
        "report_handled",
    }
    shown = render({"id": 1, "kind": "invited", "data": {"title": "T", "host": "bob", "url": "u"}})
    assert shown["text"] == "bob invited you to speak in T" and shown["url"] == "u"
    # A missing field never raises: it shows as "?".
    assert render({"id": 2, "kind": "followed_live", "data": {}})["text"] == "? is live: ?"
    with pytest.raises(ValueError, match="unknown notification kind"):
        notifier.notify(1, "poked", {})


def test_a_resolved_report_tells_the_reporter_once_and_live(
    notifier: Notifier, accounts: AccountDirectory, hub: NotificationHub
) -> None:
    alice = accounts.get("alice")
    page = hub.listen(alice.id)
    notifier.report_handled(alice.id, 17)
    notifier.report_handled(alice.id, 17)  # resolved, reopened, resolved: told once
    [stored] = notifier.store.page(alice.id, limit=10)
    shown = render(stored)
    assert shown["kind"] == "report_handled"
    assert shown["text"] == "Your report #17 was handled: thank you"
    assert shown["url"] is None
    pushed = page.queue.get_nowait()
    assert pushed is not None
    assert pushed["type"] == "notification" and pushed["unread"] == 1
    assert pushed["notification"]["text"] == shown["text"]
    assert page.queue.empty()
    assert notifier.store.unread(alice.id) == 1
    assert notifier.store.unread(accounts.get("bob").id) == 0


async def test_a_local_follow_tells_the_followed_account(
    db: sqlite_utils.Database, accounts: AccountDirectory, notifier: Notifier
) -> None:
    local = LocalFollows(SqliteFollows(db), accounts, BASE, on_followed=notifier.followed)
    await local.follow(accounts.get("bob"), "alice")
    alice = accounts.get("alice")
    [stored] = notifier.store.page(alice.id, limit=10)
    shown = render(stored)
    assert shown["text"] == "bob@rooms.example follows you"
    assert shown["url"] == f"{BASE}/@bob"
    # Unfollowing and following again does not notify twice.
    await local.unfollow(accounts.get("bob"), "alice")
    await local.follow(accounts.get("bob"), "alice")
    assert len(notifier.store.page(alice.id, limit=10)) == 1
    assert notifier.store.page(accounts.get("bob").id, limit=10) == []


async def test_a_remote_follower_links_to_our_view_of_them(
    notifier: Notifier, accounts: AccountDirectory
) -> None:
    await notifier.followed(f"{BASE}/users/alice", "https://other.example:8443/users/zed")
    [stored] = notifier.store.page(accounts.get("alice").id, limit=10)
    shown = render(stored)
    assert shown["text"] == "zed@other.example:8443 follows you"
    assert shown["url"] == f"{BASE}/@zed@other.example:8443"
    # A follow of someone who is not ours notifies nobody.
    await notifier.followed("https://other.example/users/alice", f"{BASE}/users/bob")
    assert notifier.store.page(accounts.get("bob").id, limit=10) == []


def test_a_room_socket_carries_its_users_notifications(
    notifier: Notifier, accounts: AccountDirectory, hub: NotificationHub
) -> None:
    """A room page's socket (a mailbox of the room) gets its user's notifications too; a
    full one misses one and stays the room's (never closed from here); detached, nothing."""
    alice = accounts.get("alice")
    room_socket: Mailbox[Any] = Mailbox(maxsize=1)
    detach = hub.attach(alice.id, room_socket)
    notifier.report_handled(alice.id, 1)
    notifier.report_handled(alice.id, 2)  # the mailbox is full: dropped, not closed
    first = room_socket.queue.get_nowait()
    assert first is not None and first["notification"]["data"] == {"report": 1}
    assert not room_socket.closed and room_socket.queue.empty()
    detach()
    notifier.report_handled(alice.id, 3)
    assert room_socket.queue.empty()
    assert notifier.store.unread(alice.id) == 3
