"""The address policy (federation/egress.py) and the client that applies it: DNS
rebinding, the allow-list, WebSockets. The resolver is the seam (a fake DNS); the
connections are real, to servers on loopback."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.client import FederationClient
from federation.egress import (
    AddressPolicy,
    is_host_and_port,
    parse_allow_entry,
    resolve_destination,
)
from federation.errors import BlockedDomain, PrivateAddress, RemoteFetchError
from federation.keys import generate_keypair
from federation.signatures import sign_request
from tests.hostile import HostileServer, json_answer, redirect

PUBLIC = "93.184.215.14"
KEYS = generate_keypair()
KEY_ID = "https://parley.example/actor#main-key"


class RebindingDns:
    """Answers a public address to the first question and loopback to every later one:
    what a rebinding attacker's name server does."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.questions.append(host)
        return [PUBLIC] if len(self.questions) == 1 else ["127.0.0.1"]


async def test_dns_rebinding_cannot_reach_loopback(hostile_servers: Callable) -> None:
    """Case 3 (rebinding): the name is resolved once, checked, and the connection goes to
    that address; a second look-up that would say 127.0.0.1 never happens."""
    internal: HostileServer = hostile_servers()
    internal.answers["/secret"] = json_answer({"secret": True})
    dns = RebindingDns()
    async with FederationClient(
        resolve_host=dns, timeout=httpx.Timeout(2.0, connect=1.0)
    ) as client:
        try:
            await client.get_json(
                f"http://localhost:{internal.port}/secret",
                key_id=KEY_ID,
                private_pem=KEYS.private_pem,
            )
        except RemoteFetchError:
            pass  # the public address does not serve us; what matters is where we went
    assert internal.seen == []
    assert dns.questions == ["localhost"]


async def test_the_connection_goes_to_the_checked_address() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    dns = RebindingDns()
    async with FederationClient(
        resolve_host=dns, transport=httpx.MockTransport(handler)
    ) as client:
        fetched = await client.fetch("https://rebind.example:8443/doc?x=1")
    assert fetched.doc == {"ok": True}
    assert fetched.url == "https://rebind.example:8443/doc?x=1"
    (request,) = seen
    assert request.url.host == PUBLIC and request.url.port == 8443
    assert request.url.raw_path == b"/doc?x=1"
    assert request.headers["host"] == "rebind.example:8443"
    assert request.extensions["sni_hostname"] == "rebind.example"
    assert dns.questions == ["rebind.example"]


async def test_allowlisted_loopback_port_only(hostile_servers: Callable) -> None:
    allowed, other = hostile_servers(), hostile_servers()
    allowed.answers["/doc"] = json_answer({"ok": 1})
    other.answers["/doc"] = json_answer({"ok": 2})
    policy = AddressPolicy.build(allowlist=[allowed.netloc])
    async with FederationClient(policy=policy) as client:
        assert (await client.fetch(f"{allowed.base_url}/doc")).doc == {"ok": 1}
        with pytest.raises(PrivateAddress):
            await client.fetch(f"{other.base_url}/doc")
        # A redirect from the allowed server to the other one is checked at the hop.
        allowed.answers["/hop"] = redirect(f"{other.base_url}/doc")
        with pytest.raises(PrivateAddress):
            await client.fetch(f"{allowed.base_url}/hop")
        # The relay WebSocket goes through the same policy.
        with pytest.raises(PrivateAddress):
            await client.open_websocket(f"ws://127.0.0.1:{other.port}/relay/v1/rooms/x", {})
    assert other.seen == []


@pytest.mark.parametrize(
    "url",
    ["ftp://a.example/x", "http:///x", "http://a.example:99999/x", "http://[::1/x", "file:///etc"],
)
async def test_urls_that_are_not_destinations(url: str) -> None:
    async def never(host: str, port: int) -> list[str]:
        raise AssertionError("no look-up for a URL that is not a destination")

    with pytest.raises(RemoteFetchError):
        await resolve_destination(url, AddressPolicy(), never)


async def test_unresolvable_and_blocked() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(RemoteFetchError):
        await resolve_destination("https://nowhere.example/", AddressPolicy(), nxdomain)
    with pytest.raises(BlockedDomain):
        await resolve_destination(
            "https://a.spam.example/", AddressPolicy(), nxdomain, ["spam.example"]
        )


def test_allowlist_entries_and_plain_http() -> None:
    assert parse_allow_entry("127.0.0.1:8080") == "127.0.0.1:8080"
    assert parse_allow_entry("[::1]:8080") == "[::1]:8080"
    assert parse_allow_entry("Peer.LAN:80") == "peer.lan:80"
    for bad in ("127.0.0.1", "host:port", "http://x:1", "a:1/path", ""):
        with pytest.raises(ValueError):
            parse_allow_entry(bad)
    policy = AddressPolicy.build(allowlist=["127.0.0.1:8080", "peer.lan:80"])
    assert policy.permits("127.0.0.1", 8080, "127.0.0.1")
    assert not policy.permits("127.0.0.1", 8081, "127.0.0.1")
    assert policy.permits("10.0.0.5", 80, "peer.lan")
    assert policy.permits(PUBLIC, 443, "example.org")
    assert policy.plain_http_allowed("127.0.0.1:8080")
    assert not policy.plain_http_allowed("example.org")
    assert AddressPolicy(allow_private=True).plain_http_allowed("example.org")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.org", True),
        ("Example.ORG:8443", True),
        ("bücher.example", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("", False),
        ("#$%^&*()`~", False),
        ("example.org#x", False),
        ("example.org/x", False),
        ("ho st.example", False),
        ("[::1", False),
        ("example.org:99999", False),
        ("example.org:port", False),
        (":80", False),
    ],
)
def test_is_host_and_port(text: str, expected: bool) -> None:
    assert is_host_and_port(text) is expected


KEY = generate_keypair()


@given(st.text(max_size=60))
def test_a_host_that_passes_makes_a_url_the_signer_takes(text: str) -> None:
    if is_host_and_port(text):
        url = f"https://{text}/.well-known/webfinger?resource=acct:a@{text}"
        sign_request("GET", url, {}, None, "https://a.example/actor#key", KEY.private_pem)
