"""Servers that attack a node from outside, for tests (no tests live here).

`HostileServer` is a plain HTTP server on a loopback port in a thread: a test gives it
canned answers per path (JSON, redirects, statuses) and reads what it was asked.
Nothing here talks to the node's code: it is what a malicious server on the network
looks like to the node.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from federation.actors import ACTIVITY_JSON


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(doc: Any, media_type: str = ACTIVITY_JSON) -> Answer:
    return Answer(200, json.dumps(doc).encode(), {"Content-Type": media_type})


def redirect(location: str) -> Answer:
    return Answer(302, b"", {"Location": location})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HostileServer:
    """``answers[path]`` (the path with its query) is an Answer or a function of the
    request; anything else is 404. ``seen`` lists every request, in order."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer | Callable[[Seen], Answer]] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                server.seen.append(seen)
                found = server.answers.get(self.path) or server.answers.get(
                    self.path.split("?", 1)[0]
                )
                answer = found(seen) if callable(found) else found or Answer(404, b"nothing")
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]
