"""Durability: a node killed with SIGKILL in the middle of heavy writes (sign-ups, rooms,
follows and their deliveries) has kept every row it acknowledged with a 2xx; restarted,
it goes on delivering what was queued."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from node.store.database import DB_FILENAME, SYNCHRONOUS, open_database
from node.store.federation import CLAIM_LEASE
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import wait_for
from tests.store_helpers import WriteLoad, read_rows


def test_the_settings_are_the_ones_stated(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # 2 = FULL: every commit is fsynced to the WAL before it returns (README, Durability).
    assert SYNCHRONOUS == "FULL"
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    db.close()


def test_kill_9_during_heavy_writes_loses_no_acknowledged_row(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    a = node_factory()
    b = node_factory()
    target = "target"
    api_factory(b).signup(target)
    handle = f"{target}@127.0.0.1:{b.port}"
    load = WriteLoad(a, room_writers=2, signup_writers=3, follow_handle=handle).start()
    # Enough of each acknowledged, then killed while every writer is still sending.
    load.wait_for(signups=12, rooms=60, follows=6, timeout=180)
    assert a.process is not None
    a.stop(kill=True)
    assert a.process.returncode == -9
    done = load.stop()
    assert done.errors == []

    db = a.directory / "data" / DB_FILENAME
    # Opening it replays the WAL the kill left, as the next start does.
    assert read_rows(db, "PRAGMA integrity_check") == [("ok",)]
    accounts = {r[0] for r in read_rows(db, "select username from accounts")}
    assert set(done.signups) <= accounts
    sessions = read_rows(
        db,
        "select count(*) from sessions join accounts on accounts.id = sessions.account_id "
        f"where username in ({','.join('?' * len(done.signups))})",
        tuple(done.signups),
    )
    assert sessions[0][0] >= len(done.signups)
    rooms = {r[0] for r in read_rows(db, "select id from rooms")}
    assert {room_id for _, _, room_id in done.rooms} <= rooms
    following = set(read_rows(db, "select local_actor, remote_actor from fed_following"))
    sent = [json.loads(r[0]) for r in read_rows(db, "select activity_json from fed_deliveries")]
    follows_sent = {(d["actor"], d["object"]) for d in sent if d["type"] == "Follow"}
    for username, actor in done.follows:
        local = f"{a.base_url}/users/{username}"
        assert (local, actor) in following
        assert (local, actor) in follows_sent

    # Restarted, it answers for them and delivers whatever was still queued.
    a.start()
    for username in done.signups[:3]:
        login = httpx.post(
            f"{a.base_url}/api/v1/sessions",
            json={"username": username, "password": "correct horse battery"},
        )
        assert login.status_code == 200, login.text
    wait_for(
        lambda: (
            {u for u, _ in done.follows}
            <= {
                f["handle"].split("@")[0]
                for f in httpx.get(f"{b.base_url}/api/v1/accounts/{target}/followers").json()[
                    "followers"
                ]
            }
        ),
        # A row the kill caught mid-send is leased to the dead process: retried when the
        # lease runs out (FEDERATION.md "Delivery").
        CLAIM_LEASE.total_seconds() + 60,
        "every acknowledged follow reaches the other node",
    )
