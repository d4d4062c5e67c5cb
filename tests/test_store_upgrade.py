"""Release 0.1's databases upgrade intact (tests/fixtures/release_0_1, made by release
0.1's own nodes): every row and every key is still there after the migrations, and real
nodes of this code, started on copies of them on the ports their identities contain,
keep every account, session, key, follower, pending delivery, room and relay row working.

Every schema change adds its migration and keeps this file green.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from federation.signatures import verify_request
from node.accounts import check_password, token_hash
from node.store.database import DB_FILENAME, open_database
from node.store.migrate import status
from node.store.schema import MIGRATIONS
from tests.conftest import NodeProcess
from tests.federation_helpers import wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())
PORT_A, PORT_B, PORT_C = (MANIFEST["ports"][n] for n in ("a", "b", "c"))
A = f"http://127.0.0.1:{PORT_A}"
B = f"http://127.0.0.1:{PORT_B}"
PASSWORD = MANIFEST["password"]


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' "
            "and name != '_sqlite_migrations' order by name"
        )
    ]


def _all_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: sorted(conn.execute(f'select * from "{t}"').fetchall(), key=repr)
            for t in _tables(conn)
        }
    finally:
        conn.close()


def _shape(path: Path) -> dict[str, Any]:
    """Tables with their columns (name, type, not null, default, pk) and indexes."""
    conn = sqlite3.connect(path)
    try:
        shape: dict[str, Any] = {}
        for table in _tables(conn):
            columns = [tuple(c[1:]) for c in conn.execute(f'pragma table_info("{table}")')]
            indexes = sorted(
                (
                    index[1],
                    index[2],
                    tuple(c[2] for c in conn.execute(f'pragma index_info("{index[1]}")')),
                )
                for index in conn.execute(f'pragma index_list("{table}")')
            )
            shape[table] = (columns, indexes)
        return shape
    finally:
        conn.close()


def _upgraded_copy(tmp_path: Path, name: str) -> Path:
    data = tmp_path / name / "data"
    data.mkdir(parents=True)
    shutil.copy(FIXTURES / f"node_{name}.db", data / DB_FILENAME)
    return data


def _check_keypair(private_pem: str, public_pem: str) -> None:
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
    signature = private.sign(b"still me", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"still me", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("name", ["a", "b"])
def test_every_row_and_key_is_kept_by_the_migrations(tmp_path: Path, name: str) -> None:
    before = _all_rows(FIXTURES / f"node_{name}.db")
    if name == "a":
        assert {t: len(rows) for t, rows in before.items()} == MANIFEST["row_counts_a"]
    data = _upgraded_copy(tmp_path, name)
    db = open_database(data, check=True)
    found = status(db)
    assert found.version == len(MIGRATIONS) and found.pending == ()
    db.close()
    after = _all_rows(data / DB_FILENAME)
    new_tables = set(after) - set(before)
    assert {t: after[t] for t in before} == before
    assert all(after[t] == [] for t in new_tables)
    # The same schema as a database this code creates, table by table, index by index.
    fresh = tmp_path / "fresh"
    open_database(fresh).close()
    assert _shape(data / DB_FILENAME) == _shape(fresh / DB_FILENAME)

    conn = sqlite3.connect(data / DB_FILENAME)
    try:
        accounts = conn.execute(
            "select username, password_hash, private_key_pem, public_key_pem from accounts"
        ).fetchall()
        expected = MANIFEST[f"accounts_{name}"]
        assert sorted(a[0] for a in accounts) == sorted(expected)
        for _, password_hash, private_pem, public_pem in accounts:
            assert check_password(password_hash, PASSWORD)
            _check_keypair(private_pem, public_pem)
        instance = dict(conn.execute("select name, value from fed_instance").fetchall())
        _check_keypair(instance["private_pem"], instance["public_pem"])
        hashes_stored = {r[0] for r in conn.execute("select token_hash from sessions")}
        for token in MANIFEST[f"tokens_{name}"].values():
            assert token_hash(token) in hashes_stored
    finally:
        conn.close()


# -- real nodes on the upgraded data dirs ----------------------------------------------------


def _claim_ports() -> None:
    for port in (PORT_A, PORT_B, PORT_C):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                pytest.fail(
                    f"port {port} is taken ({exc}): the release-0.1 fixture's identities "
                    f"contain it (http://127.0.0.1:{port}), so this test needs it free"
                )


class ErinsNode:
    """Node C of the fixture (erin's; its database is not part of it): a plain HTTP
    server on its port that takes what A delivers to erin's inbox."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", PORT_C), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def upgraded_nodes(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess, ErinsNode]]:
    """B, then A (A's live room names B on its succession list), started by this code on
    copies of release 0.1's databases: each migrates its own at start-up."""
    _claim_ports()
    _upgraded_copy(tmp_path, "a")
    _upgraded_copy(tmp_path, "b")
    erin = ErinsNode()
    a = NodeProcess(
        tmp_path / "a",
        PORT_A,
        {"accounts": {"registration": "approval"}, "media": {"host_grace_s": 3600.0}},
    )
    b = NodeProcess(tmp_path / "b", PORT_B, {"media": {"host_grace_s": 3600.0}})
    try:
        b.start(timeout=60)
        a.start(timeout=60)
        yield a, b, erin
    finally:
        a.stop()
        b.stop()
        erin.stop()


def _get(base: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base}{path}", headers=headers, timeout=15)


def _post(base: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}{path}", headers=headers, timeout=15, **kw)


def _db(node: NodeProcess, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(node.directory / "data" / DB_FILENAME, timeout=10)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def _log(node: NodeProcess) -> str:
    return (node.directory / "node.log").read_text(errors="replace")


def _room_state(base: str, room_id: str) -> str | None:
    response = _get(base, f"/api/v1/rooms/{room_id}")
    return str(response.json()["state"]) if response.status_code == 200 else None


def test_upgraded_nodes_keep_accounts_sessions_and_followers(
    upgraded_nodes: tuple[NodeProcess, NodeProcess, ErinsNode],
) -> None:
    a, b, _ = upgraded_nodes
    tokens_a, tokens_b = MANIFEST["tokens_a"], MANIFEST["tokens_b"]
    # Each node migrated its own database when it started.
    for node in (a, b):
        applied = _db(node, "select name from _sqlite_migrations order by id")
        assert [r[0] for r in applied] == [m.key for m in MIGRATIONS]
    # Old session tokens still work ...
    for username, token in tokens_a.items():
        me = _get(A, "/api/v1/me", token)
        assert me.status_code == 200 and me.json()["username"] == username
    assert _get(B, "/api/v1/me", tokens_b["dave"]).json()["handle"] == f"@dave@127.0.0.1:{PORT_B}"
    assert _get(A, "/api/v1/me", tokens_a["alice"]).json()["is_admin"] is True
    # ... old passwords still log in; the pending sign-up still waits for the admin.
    for base, username in ((A, "alice"), (A, "bob"), (B, "dave")):
        login = _post(base, "/api/v1/sessions", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
    pat = _post(A, "/api/v1/sessions", json={"username": "pat", "password": PASSWORD})
    assert pat.status_code == 403
    pending = _get(A, "/api/v1/admin/accounts/pending", tokens_a["alice"]).json()["accounts"]
    assert [p["username"] for p in pending] == ["pat"]
    assert _post(A, "/api/v1/admin/accounts/pat/approve", tokens_a["alice"]).status_code == 200
    pat = _post(A, "/api/v1/sessions", json={"username": "pat", "password": PASSWORD})
    assert pat.status_code == 200
    # Follows both ways, as each side recorded them.
    followers = _get(A, "/api/v1/accounts/alice/followers").json()["followers"]
    assert sorted(f["handle"] for f in followers) == [
        f"dave@127.0.0.1:{PORT_B}",
        f"erin@127.0.0.1:{PORT_C}",
    ]
    following = _get(B, "/api/v1/follows", tokens_b["dave"]).json()["following"]
    assert [(f["handle"], f["state"]) for f in following] == [
        (f"alice@127.0.0.1:{PORT_A}", "accepted")
    ]
    bob_follows = _get(A, "/api/v1/follows", tokens_a["bob"]).json()["following"]
    assert [(f["handle"], f["state"]) for f in bob_follows] == [
        (f"erin@127.0.0.1:{PORT_C}", "accepted")
    ]


def test_upgraded_nodes_resume_rooms_relays_and_deliveries(
    upgraded_nodes: tuple[NodeProcess, NodeProcess, ErinsNode],
) -> None:
    a, b, erin = upgraded_nodes
    rooms_a, rooms_b = MANIFEST["rooms_a"], MANIFEST["rooms_b"]
    alice = MANIFEST["tokens_a"]["alice"]
    dave = MANIFEST["tokens_b"]["dave"]
    # Crash recovery (FEDERATION.md "Survival"): a live room with no relay ended at once;
    # A's live room that B relayed was recovered from its succession list (the
    # relay_origin_rooms row): A asked B, nobody had carried it on, so it ends and its
    # end is announced; the mirrors (relay_rooms rows) resumed and, with no node
    # carrying their rooms on, ended.
    assert _room_state(A, rooms_a["scheduled"]) == "scheduled"
    assert _room_state(A, rooms_a["ended"]) == "ended"
    assert _room_state(A, rooms_a["live_unlisted"]) == "ended"
    assert _room_state(B, rooms_b["live"]) == "ended"
    wait_for(lambda: _room_state(A, rooms_a["live"]) == "ended", 60, "A's live room ends")
    wait_for(lambda: _room_state(A, rooms_a["mirror_of_b"]) is None, 60, "A's mirror ends")
    wait_for(lambda: _room_state(B, rooms_b["mirror_of_a"]) is None, 60, "B's mirror ends")
    assert "no node carries on room " + rooms_a["live"] in _log(a)
    assert "no node carries room " + rooms_a["mirror_of_b"] + " on any more" in _log(a)
    assert "no node carries room " + rooms_b["mirror_of_a"] + " on any more" in _log(b)
    assert _db(a, "select count(*) from relay_rooms") == [(0,)]
    assert _db(a, "select count(*) from relay_origin_rooms") == [(0,)]
    # Dave (an old follower on B) got the end, signed with alice's old key.
    live_url = f"{A}/rooms/{rooms_a['live']}"
    wait_for(
        lambda: (
            _db(b, "select state from fed_remote_rooms where id = ?", (live_url,)) == [("ended",)]
        ),
        60,
        "the end of A's live room at B",
    )

    # Alice starts her old scheduled room: dave, on B, is told and lists it.
    started = _post(A, f"/api/v1/rooms/{rooms_a['scheduled']}/start", alice)
    assert started.status_code == 200, started.text
    scheduled_url = f"{A}/rooms/{rooms_a['scheduled']}"

    def dave_lists_it() -> bool:
        rooms = _get(B, "/api/v1/rooms", dave).json()["rooms"]
        return any(r.get("remote") and r.get("url") == scheduled_url for r in rooms)

    wait_for(dave_lists_it, 60, "dave lists alice's room")

    # The deliveries release 0.1 left queued for erin's node are retried, signed with
    # alice's key as release 0.1 stored it; so is the new Create.
    fixture = sqlite3.connect(FIXTURES / "node_a.db")
    queued = [
        r[0] for r in fixture.execute("select id from fed_deliveries where state = 'queued'")
    ]
    fixture.close()
    assert len(queued) == 3
    wait_for(
        lambda: (
            _db(
                a,
                f"select count(*) from fed_deliveries where state = 'delivered' and id in "
                f"({','.join('?' * len(queued))})",
                tuple(queued),
            )
            == [(len(queued),)]
        ),
        90,
        "the queued deliveries delivered",
    )
    public_pem = _db(a, "select public_key_pem from accounts where username = 'alice'")[0][0]

    def erin_got_the_started_room() -> bool:
        docs = [json.loads(body) for _, _, body in list(erin.received)]
        return any(
            doc.get("object", {}).get("id", "").endswith(rooms_a["scheduled"]) for doc in docs
        )

    # The new Create is queued when the room starts: it may arrive after the old three.
    wait_for(erin_got_the_started_room, 60, "the started room's Create at erin's node")
    bodies = [json.loads(body) for _, _, body in list(erin.received)]
    assert {doc["type"] for doc in bodies} >= {"Create", "Update"}
    for path, headers, body in erin.received:
        assert path == "/inbox"
        info = verify_request(
            "POST",
            f"http://127.0.0.1:{PORT_C}{path}",
            headers,
            body,
            public_pem,
            now=dt.datetime.now(dt.UTC),
        )
        assert info.key_id == f"{A}/users/alice#main-key"
