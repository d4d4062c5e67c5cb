"""Avatars on real node processes (node.avatars): an upload is remade, stored under the
data dir and federated as the actor's ``icon`` (read back by Fedify); hostile uploads
get clear errors and write nothing; remote people's icons come through the node, once,
and hostile icons are refused."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
from PIL import Image

from federation.actors import ACTIVITY_JSON, ActorUrls, build_person
from federation.keys import generate_keypair
from tests.conftest import Api, NodeProcess
from tests.fedify_peer import FedifyPeer
from tests.hostile import Answer, HostileServer, json_answer


def photo_with_gps() -> bytes:
    """A JPEG as a phone makes it: camera make and GPS position in its EXIF."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 22.0, 7.5), "E", (4.0, 53.0, 30.0)
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 220)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb(side: int = 50_000) -> bytes:
    """A PNG of a few KB declaring ``side`` x ``side`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (1 << 20), 9))
        + chunk(b"IEND", b"")
    )


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (250, 120, 0)).save(out, format="PNG")
    return out.getvalue()


def avatar_files(node: NodeProcess) -> list[Path]:
    folder = node.directory / "data" / "avatars"
    return sorted(folder.iterdir()) if folder.exists() else []


def put_avatar(api: Api, token: str | None, body: bytes, media_type: str) -> httpx.Response:
    return api.request(
        "PUT", "/api/v1/me/avatar", token, content=body, headers={"Content-Type": media_type}
    )


def test_an_upload_is_remade_kept_under_the_data_dir_and_federated_as_the_icon(
    node: NodeProcess, api: Api, fedify_peers: Callable[..., FedifyPeer]
) -> None:
    alice = api.signup("alice")
    answer = put_avatar(api, alice, photo_with_gps(), "image/jpeg")
    assert answer.status_code == 200, answer.text
    url = answer.json()["avatar_url"]
    assert re.fullmatch(rf"{re.escape(node.base_url)}/avatars/alice-[0-9a-f]{{12}}\.png", url)

    served = httpx.get(url, timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    assert b"PhoneMaker" not in served.content and b"Exif" not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "PNG" and image.size == (256, 256)
        assert not image.getexif()
    # Stored under the data dir, whole; nothing else there.
    assert [p.name for p in avatar_files(node)] == [url.rsplit("/", 1)[1]]
    assert avatar_files(node)[0].read_bytes() == served.content
    assert api.http.get("/api/v1/accounts/alice").json()["avatar_url"] == url

    # Fedify, reading alice's actor as any server would, finds the icon.
    peer = fedify_peers()
    found = peer.lookup(f"alice@127.0.0.1:{node.port}")
    icon = found["object"]["icon"]
    assert icon["url"] == url and icon["type"] == "Image" and icon["mediaType"] == "image/png"

    # A new upload has a new name; the old file and URL are gone.
    second = put_avatar(api, alice, png((90, 90)), "image/png").json()["avatar_url"]
    assert second != url
    assert httpx.get(url, timeout=10).status_code == 404
    assert [p.name for p in avatar_files(node)] == [second.rsplit("/", 1)[1]]

    removed = api.request("DELETE", "/api/v1/me/avatar", alice)
    assert removed.status_code == 200 and removed.json()["avatar_url"] is None
    assert avatar_files(node) == []
    actor = httpx.get(
        f"{node.base_url}/users/alice", headers={"Accept": ACTIVITY_JSON}, timeout=10
    ).json()
    assert "icon" not in actor


def test_hostile_uploads_get_clear_errors_and_write_nothing(node: NodeProcess, api: Api) -> None:
    alice = api.signup("alice")
    cases = [
        (None, png((10, 10)), "image/png", 401, "unauthorized"),
        (alice, b"hello", "text/plain", 415, "invalid_input"),
        (alice, b"", "image/png", 422, "invalid_input"),
        (alice, b"<html><script>alert(1)</script></html>", "image/png", 422, "invalid_input"),
        (alice, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/webp", 422, "invalid_input"),
        (alice, png_bomb(), "image/png", 422, "invalid_input"),
        (alice, png((5000, 4000)), "image/png", 422, "invalid_input"),
        (alice, png((300, 300))[:500], "image/png", 422, "invalid_input"),
        (alice, b"\xff\xd8\xff" + b"\x00" * (9 * 1024 * 1024), "image/jpeg", 413, None),
    ]
    for token, body, media_type, status, code in cases:
        answer = put_avatar(api, token, body, media_type)
        assert answer.status_code == status, (media_type, len(body), answer.text)
        error = answer.json()
        assert set(error) >= {"error", "detail"}, error
        if code:
            assert error["error"] == code, error
        if status == 422:
            assert error["field"] == "avatar", error
    bomb = put_avatar(api, alice, png_bomb(), "image/png").json()
    assert "too large" in bomb["detail"], bomb
    assert avatar_files(node) == []
    assert api.http.get("/api/v1/accounts/alice").json()["avatar_url"] is None
    # Names that are not avatars' are not served (no path, no other area).
    for path in ("/avatars/..%2Fparley.db", "/avatars/parley.db", "/avatars/alice-zz.png"):
        assert httpx.get(f"{node.base_url}{path}", timeout=10).status_code == 404, path


def test_remote_icons_come_through_the_node_once(
    node: NodeProcess, api: Api, fedify_peers: Callable[..., FedifyPeer]
) -> None:
    peer = fedify_peers()
    found = api.http.get("/api/v1/search", params={"q": peer.handle}).json()
    person = found["accounts"][0]
    assert person["actor"] == peer.actor_id
    path = f"/api/v1/remote-avatar?actor={quote(peer.actor_id, safe='')}"
    assert person["avatar_url"] == path
    assert "/avatar.png" not in str(person)  # the remote icon URL is not handed out

    answers = [api.http.get(path) for _ in range(3)]
    assert all(a.status_code == 200 for a in answers), answers[0].text
    assert answers[0].headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(answers[0].content)) as image:
        assert image.size == (128, 128)
        assert image.convert("RGB").getpixel((64, 64))[0] > 200  # the peer's orange
    # Three listeners, one fetch by the node (kept in the data dir).
    fetched = [r for r in peer.requests() if r["path"] == "/avatar.png"]
    assert len(fetched) == 1, fetched
    assert any(p.name.startswith("remote-") for p in avatar_files(node))

    # Only actors the node knows: not a proxy for any URL.
    unknown = api.http.get("/api/v1/remote-avatar", params={"actor": "http://127.0.0.1:9/x"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    bad = api.http.get("/api/v1/remote-avatar", params={"actor": "file:///etc/passwd"})
    assert bad.status_code == 422 and bad.json()["field"] == "actor"


def test_hostile_remote_icons_are_refused_and_not_asked_again(
    node: NodeProcess, api: Api, hostile_servers: Callable[[], HostileServer]
) -> None:
    attacker = hostile_servers()
    keys = generate_keypair()
    for name, icon in (("bomb", png_bomb()), ("huge", b"\x89PNG" + b"\x00" * 3_000_000)):
        urls = ActorUrls.for_user(attacker.base_url, name)
        doc = build_person(
            urls,
            username=name,
            name=name,
            summary="",
            public_key_pem=keys.public_pem,
            icon_url=f"{attacker.base_url}/{name}.png",
        )
        attacker.answers[f"/users/{name}"] = json_answer(doc)
        attacker.answers[f"/{name}.png"] = Answer(200, icon, {"Content-Type": "image/png"})
        found = api.http.get("/api/v1/search", params={"q": urls.id}).json()
        assert found["accounts"][0]["actor"] == urls.id, found
        path = found["accounts"][0]["avatar_url"]
        for _ in range(2):
            answer = api.http.get(path)
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"] == "not_found"
        # Fetched once; the failure is remembered for a while.
        assert attacker.paths().count(f"/{name}.png") == 1, attacker.paths()
    assert not [p for p in avatar_files(node) if p.name.startswith("remote-")]
