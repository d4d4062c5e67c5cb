"""A Fedify-based ActivityPub peer for interop tests (no tests live here).

`FedifyPeer` runs `node tests/fedify/peer.mjs` on a free loopback port: one actor, `bob`,
served by Fedify (WebFinger, actor, inbox, followers), which auto-accepts Follows, plus a
JSON control API under `/_control/` that the methods here call.  Tests get peers from
the `fedify_peers` fixture (tests/conftest.py):

    def test_follow(fedify_peers, node):
        peer = fedify_peers(first_knock="draft-cavage-http-signatures-12")
        result = peer.follow(f"alice@127.0.0.1:{node.port}")

The Node dependencies are installed by `npm ci` in tests/fedify (the Makefile does it).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx

PEER_DIR = Path(__file__).resolve().parent / "fedify"
PEER_SCRIPT = PEER_DIR / "peer.mjs"

SignatureSpec = Literal["rfc9421", "draft-cavage-http-signatures-12"]


class FedifyPeerError(RuntimeError):
    """The peer could not start, or a control call failed."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_installed() -> None:
    """Raise a clear error when node or the peer's npm packages are missing."""
    if shutil.which("node") is None:
        raise FedifyPeerError("node is not on PATH; the Fedify peer needs Node.js 20 or newer")
    if not (PEER_DIR / "node_modules" / "@fedify" / "fedify").is_dir():
        raise FedifyPeerError(
            f"{PEER_DIR / 'node_modules'} is missing: run `npm ci` in tests/fedify "
            "(cd tests/fedify && npm ci)"
        )


class FedifyPeer:
    """One `node tests/fedify/peer.mjs` process and a client for its control API."""

    def __init__(
        self,
        *,
        port: int | None = None,
        username: str = "bob",
        authorized_fetch: bool = False,
        first_knock: SignatureSpec = "rfc9421",
        rsa_only: bool = False,
        skip_signature_verification: bool = False,
        signature_time_window: int | Literal["off"] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or _free_port()
        self.username = username
        self.authorized_fetch = authorized_fetch
        self.first_knock = first_knock
        self.rsa_only = rsa_only
        self.skip_signature_verification = skip_signature_verification
        self.signature_time_window = signature_time_window
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    # ------------------------------------------------------------------ identity

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def actor_id(self) -> str:
        return f"{self.base_url}/users/{self.username}"

    @property
    def inbox_url(self) -> str:
        return f"{self.actor_id}/inbox"

    @property
    def shared_inbox_url(self) -> str:
        return f"{self.base_url}/inbox"

    @property
    def handle(self) -> str:
        """`bob@127.0.0.1:<port>` (no leading @)."""
        return f"{self.username}@127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ process

    def command(self) -> list[str]:
        args = ["node", str(PEER_SCRIPT), "--port", str(self.port)]
        args += ["--username", self.username, f"--first-knock={self.first_knock}"]
        if self.authorized_fetch:
            args.append("--authorized-fetch")
        if self.rsa_only:
            args.append("--rsa-only")
        if self.skip_signature_verification:
            args.append("--skip-signature-verification")
        if self.signature_time_window is not None:
            args.append(f"--signature-time-window={self.signature_time_window}")
        return args

    def start(self, timeout: float = 30.0) -> FedifyPeer:
        check_installed()
        if self.log_path is not None:
            self._stderr = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            self.command(),
            cwd=PEER_DIR,
            stdout=subprocess.PIPE,
            stderr=self._stderr if self._stderr is not None else subprocess.DEVNULL,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.2):
                    if self.process.poll() is not None:
                        break
                    continue
                line = self.process.stdout.readline()
                if not line:
                    break
                if line.startswith(b"READY "):
                    self.port = int(line.split()[1])
                    return self
        self.stop()
        raise FedifyPeerError(
            f"Fedify peer did not print READY in {timeout} s (last line {line!r}); "
            f"command: {' '.join(self.command())}"
        )

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> FedifyPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ control API

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, f"/_control/{path}", json=body)
        if response.status_code >= 400:
            raise FedifyPeerError(
                f"{method} /_control/{path} -> {response.status_code}: {response.text}"
            )
        return response.json()

    @staticmethod
    def _target(target: str, **extra: Any) -> dict[str, Any]:
        """A handle (`alice@host:port`), or an http(s) URL of an actor/object."""
        if target.startswith(("http://", "https://")):
            return {"url": target, **extra}
        return {"handle": target, **extra}

    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "info"))

    def inbox(self) -> list[dict[str, Any]]:
        """Every POST to bob's inbox or the shared inbox, oldest first.

        Each entry has `type`, `id`, `actor`, `object`, `object_id`, `activity` (the JSON),
        `headers` (all request headers, lower-cased), `signature`, `signature_input`,
        `signature_format` ("rfc9421", "draft-cavage-http-signatures-12" or None, from the
        headers), `http_signature` ({verified, spec, key_id, reason}: Fedify's verifier run
        again on the request), `status` (what the peer answered), `handled_by` (the inbox
        listener that ran, None when Fedify refused it) and `unverified_reason`.
        """
        return list(self._call("GET", "inbox"))

    def clear_logs(self) -> None:
        self._call("DELETE", "logs")

    def requests(self) -> list[dict[str, Any]]:
        """Every non-control request the peer served: method, path, signature_format, status."""
        return list(self._call("GET", "requests"))

    def outgoing(self) -> list[dict[str, Any]]:
        """Every HTTP request the peer made: method, url, signature_format, headers, status."""
        return list(self._call("GET", "outgoing"))

    def outbox(self) -> list[dict[str, Any]]:
        """Activities bob sent (Follow, Accept, Undo): type, id, to, inbox, activity, ok, error."""
        return list(self._call("GET", "outbox"))

    def followers(self) -> list[str]:
        """Actor ids following bob."""
        return [str(x) for x in self._call("GET", "followers")]

    def following(self) -> list[dict[str, Any]]:
        """bob's Follows: actor, follow_id, state ("pending", "accepted", "rejected")."""
        return list(self._call("GET", "following"))

    def follow(self, target: str, *, signed: bool = True) -> dict[str, Any]:
        """bob looks `target` up (WebFinger for a handle, then the actor) and sends a Follow.

        Returns {actor: {id, preferredUsername, inbox, sharedInbox, ...}, webfinger, follow,
        delivered}.  `signed` makes the look-up GETs signed (authorized fetch).
        """
        return dict(self._call("POST", "follow", self._target(target, signed=signed)))

    def flag(self, target: str, content: str, objects: list[str] | None = None) -> dict[str, Any]:
        """bob reports ``target`` (a handle or actor URL) to its server with a Flag."""
        return dict(
            self._call(
                "POST",
                "flag",
                {**self._target(target), "content": content, "objects": objects or []},
            )
        )

    def undo_follow(self, target: str) -> dict[str, Any]:
        """bob sends Undo(Follow) for an earlier `follow(target)`."""
        return dict(self._call("POST", "undo-follow", self._target(target)))

    def lookup(self, target: str, *, signed: bool = True, raw: bool = False) -> dict[str, Any]:
        """Fedify's `ctx.lookupObject` of a handle or URL.

        Returns {type, id, is_actor, object (Fedify's JSON-LD re-serialisation), actor
        (summary, for actors), webfinger, raw (the fetched document, if `raw`)}.
        """
        return dict(self._call("POST", "lookup", self._target(target, signed=signed, raw=raw)))

    def reply(self, in_reply_to: str, content: str, to: str) -> dict[str, Any]:
        """bob posts a reply (Create{Note inReplyTo}) to the post `in_reply_to`, delivered to
        the actor `to` (the post's author). Returns {note, activity, delivered}."""
        body = {"inReplyTo": in_reply_to, "content": content, "to": to}
        return dict(self._call("POST", "reply", body))

    def rsvp(self, event: str, to: str) -> dict[str, Any]:
        """bob answers the Event `event` with Accept (an RSVP, FEP-8a8e), sent to `to`."""
        return dict(self._call("POST", "rsvp", {"event": event, "to": to}))

    def like(self, obj: str, to: str) -> dict[str, Any]:
        return dict(self._call("POST", "like", {"object": obj, "to": to}))

    def announce(self, obj: str, to: str) -> dict[str, Any]:
        """bob boosts `obj`."""
        return dict(self._call("POST", "announce", {"object": obj, "to": to}))

    # ------------------------------------------------------------------ waiting

    def wait_for(
        self, predicate: Callable[[FedifyPeer], Any], timeout: float = 10.0, what: str = ""
    ) -> Any:
        """Poll until `predicate(self)` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise FedifyPeerError(f"timed out after {timeout} s waiting for {what or value}")
            time.sleep(0.1)

    def wait_for_activity(
        self, activity_type: str, timeout: float = 10.0, **fields: Any
    ) -> dict[str, Any]:
        """The first inbox entry of `activity_type` whose fields equal `fields`."""

        def find(peer: FedifyPeer) -> dict[str, Any] | None:
            for entry in peer.inbox():
                if entry.get("type") == activity_type and all(
                    entry.get(k) == v for k, v in fields.items()
                ):
                    return entry
            return None

        return dict(self.wait_for(find, timeout, f"{activity_type} {fields}"))
