from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from federation.client import ACCEPT_ACTIVITY, FederationClient, domain_is_blocked
from federation.errors import (
    BlockedDomain,
    PayloadTooLarge,
    PrivateAddress,
    RemoteFetchError,
    SignatureError,
)
from federation.keys import KeyPair, generate_keypair
from federation.signatures import SignatureFormat, identify_signature, verify_request

KEY_ID = "https://parley.example/actor#main-key"


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair()


def ok_transport() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))


async def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


@pytest.mark.parametrize(
    ("host", "blocked"),
    [
        ("evil.example", True),
        ("sub.evil.example", True),
        ("EVIL.example.", True),
        ("notevil.example", False),
        ("evil.example.org", False),
    ],
)
def test_domain_block_matching(host: str, blocked: bool) -> None:
    assert domain_is_blocked(host, ["evil.example"]) is blocked


async def test_blocked_domain_refused(keys: KeyPair) -> None:
    async with FederationClient(
        transport=ok_transport(), blocked_domains=["evil.example"], resolve_host=public_resolver
    ) as client:
        with pytest.raises(BlockedDomain) as info:
            await client.get_json(
                "https://a.evil.example/x", key_id=KEY_ID, private_pem=keys.private_pem
            )
        assert info.value.host == "a.evil.example"


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "192.168.0.4", "169.254.169.254", "::1", "fe80::1",
                "::ffff:127.0.0.1", "100.64.0.1", "0.0.0.0"],
)  # fmt: skip
async def test_private_addresses_refused(keys: KeyPair, address: str) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", address]  # one bad address is enough to refuse

    async with FederationClient(transport=ok_transport(), resolve_host=resolver) as client:
        with pytest.raises(PrivateAddress) as info:
            await client.get_json(
                "https://sneaky.example/x", key_id=KEY_ID, private_pem=keys.private_pem
            )
        assert info.value.address == address


async def test_ip_literal_refused(keys: KeyPair) -> None:
    async with FederationClient(transport=ok_transport()) as client:
        with pytest.raises(PrivateAddress):
            await client.post_activity(
                "http://127.0.0.1:8000/inbox", b"{}", key_id=KEY_ID, private_pem=keys.private_pem
            )


async def test_redirect_to_private_refused(keys: KeyPair) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://10.0.0.1/secret"})

    async with FederationClient(
        transport=httpx.MockTransport(handler), resolve_host=public_resolver
    ) as client:
        with pytest.raises(PrivateAddress):
            await client.get_json(
                "https://a.example/x", key_id=KEY_ID, private_pem=keys.private_pem
            )


async def test_response_size_cap(keys: KeyPair) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 2000)

    async with FederationClient(
        transport=httpx.MockTransport(handler),
        resolve_host=public_resolver,
        max_response_bytes=1000,
    ) as client:
        with pytest.raises(PayloadTooLarge):
            await client.get_json(
                "https://a.example/x", key_id=KEY_ID, private_pem=keys.private_pem
            )


async def test_non_2xx_get_raises_with_status(keys: KeyPair) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    async with FederationClient(transport=transport, resolve_host=public_resolver) as client:
        with pytest.raises(RemoteFetchError) as info:
            await client.get_json(
                "https://a.example/x", key_id=KEY_ID, private_pem=keys.private_pem
            )
        assert info.value.status == 404


async def test_network_error_is_remote_fetch_error(keys: KeyPair) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with FederationClient(
        transport=httpx.MockTransport(handler), resolve_host=public_resolver
    ) as client:
        with pytest.raises(RemoteFetchError) as info:
            await client.post_activity("https://a.example/inbox", b"{}", key_id=KEY_ID,
                                       private_pem=keys.private_pem)  # fmt: skip
        assert info.value.status is None


# ------------------------------------------------ real HTTP server: signature interop


@dataclass
class Peer:
    """A loopback ActivityPub peer that verifies signatures with the real verifiers."""

    public_pem: str
    require_rfc9421: bool = False
    seen: list[tuple[SignatureFormat, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            info = identify_signature(headers)
            if self.require_rfc9421 and info.format is not SignatureFormat.RFC9421:
                self.seen.append((info.format, "refused"))
                return Response(status_code=401)
            verify_request(
                request.method, str(request.url), headers, body or None, self.public_pem
            )
        except SignatureError as exc:
            self.seen.append((SignatureFormat.CAVAGE, exc.reason))
            return JSONResponse({"error": exc.reason}, status_code=401)
        self.seen.append((info.format, "ok"))
        if request.method == "POST":
            assert request.headers["content-type"] == "application/activity+json"
            self.bodies.append(body)
            return Response(status_code=202)
        assert request.headers["accept"] == ACCEPT_ACTIVITY
        return JSONResponse({"id": str(request.url), "type": "Person"})


@pytest.fixture
async def serve() -> AsyncIterator[object]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(peer: Peer) -> str:
        app = Starlette(routes=[Route("/{path:path}", peer.endpoint, methods=["GET", "POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", ws="none",
                                log_level="warning")  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        servers.append((server, task))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def test_signed_get_and_post_against_real_server(keys: KeyPair, serve: object) -> None:
    peer = Peer(keys.public_pem)
    base = await serve(peer)  # type: ignore[operator]
    async with FederationClient(allow_private_addresses=True) as client:
        doc = await client.get_json(f"{base}/users/bob?page=1", key_id=KEY_ID,
                                    private_pem=keys.private_pem)  # fmt: skip
        assert doc["type"] == "Person"
        body = json.dumps({"type": "Follow"}).encode()
        result = await client.post_activity(f"{base}/users/bob/inbox", body, key_id=KEY_ID,
                                            private_pem=keys.private_pem)  # fmt: skip
    assert result.status == 202
    assert peer.seen == [(SignatureFormat.CAVAGE, "ok"), (SignatureFormat.CAVAGE, "ok")]
    assert peer.bodies == [body]


async def test_401_retries_once_with_rfc9421(keys: KeyPair, serve: object) -> None:
    peer = Peer(keys.public_pem, require_rfc9421=True)
    base = await serve(peer)  # type: ignore[operator]
    async with FederationClient(allow_private_addresses=True) as client:
        result = await client.post_activity(f"{base}/inbox", b'{"a":1}', key_id=KEY_ID,
                                            private_pem=keys.private_pem)  # fmt: skip
        assert result.status == 202
        # The host is remembered: the next request goes straight to RFC 9421.
        await client.get_json(f"{base}/x", key_id=KEY_ID, private_pem=keys.private_pem)
    assert peer.seen == [
        (SignatureFormat.CAVAGE, "refused"),
        (SignatureFormat.RFC9421, "ok"),
        (SignatureFormat.RFC9421, "ok"),
    ]


async def test_wrong_key_gets_401_twice_then_returns(serve: object) -> None:
    peer = Peer(generate_keypair().public_pem)
    base = await serve(peer)  # type: ignore[operator]
    other = generate_keypair()
    async with FederationClient(allow_private_addresses=True) as client:
        result = await client.post_activity(f"{base}/inbox", b"{}", key_id=KEY_ID,
                                            private_pem=other.private_pem)  # fmt: skip
    assert result.status == 401
    assert len(peer.seen) == 2


async def test_actor_resolver_fetches_caches_and_checks_key(keys: KeyPair) -> None:
    from federation.actors import ActorUrls, build_person
    from federation.client import ActorResolver
    from federation.errors import ActivityParseError

    urls = ActorUrls.for_user("https://remote.example", "bob")
    doc = build_person(
        urls, username="bob", name="Bob", summary="", public_key_pem=keys.public_pem
    )
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # The client connects to the checked address and names the host in Host.
        assert request.url.host == "93.184.215.14"
        fetched.append(f"https://{request.headers['host']}{request.url.raw_path.decode()}")
        assert "Signature" in request.headers
        return httpx.Response(200, json=doc)

    class Cache:
        def __init__(self) -> None:
            self.actors: dict[str, object] = {}

        async def get(self, actor_id: str) -> object:
            return self.actors.get(actor_id)

        async def get_by_key_id(self, key_id: str) -> object:
            return None

        async def put(self, actor: object) -> None:
            self.actors[actor.id] = actor  # type: ignore[attr-defined]

        async def remove(self, actor_id: str) -> None:
            self.actors.pop(actor_id, None)

    cache = Cache()
    async with FederationClient(
        transport=httpx.MockTransport(handler), resolve_host=public_resolver
    ) as client:
        resolver = ActorResolver(client, cache, signing_key_id=KEY_ID,  # type: ignore[arg-type]
                                 signing_private_pem=keys.private_pem)  # fmt: skip
        owner = await resolver.key_owner(urls.key_id)
        assert owner.id == urls.id
        assert fetched == [urls.id]  # fragment stripped
        assert (await resolver.actor(urls.id)).id == urls.id
        assert len(fetched) == 1  # served from cache
        with pytest.raises(ActivityParseError):
            await resolver.key_owner(urls.id + "#other-key")
