"""Mailboxes of slow consumers (room WebSockets, relaying nodes): full means dropped, and
a close always reaches the consumer."""

from __future__ import annotations

from typing import Any

import pytest

from node.mailbox import Mailbox
from node.onair.watchers import Watcher
from node.relaying.hub import RelaySubscriber


@pytest.mark.parametrize(
    "box",
    [Watcher("alice"), RelaySubscriber("relay.example", None)],
    ids=["room websocket", "relaying node"],
)
def test_a_close_reaches_a_consumer_whose_queue_is_full(box: Mailbox[Any]) -> None:
    sent = 0
    while box.send({"n": sent}):
        sent += 1
    assert sent == box.queue.maxsize  # full: the room drops this consumer
    box.close()
    items = []
    while not box.queue.empty():
        items.append(box.queue.get_nowait())
    assert items[-1] is None  # its sending task ends instead of waiting for more
    assert len(items) == sent
    assert box.send({"n": "late"}) is False
