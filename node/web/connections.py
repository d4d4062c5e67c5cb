"""Which TCP connection an HTTP request came on, so a stream can be handed to a worker.

With ``[media] workers`` the node process hands each Ogg listener's TCP connection to a
media worker process (node/media/workers.py): the worker writes the response and the
audio, so the listener costs the node process nothing after the request. To do that the
request handler needs the connection's socket, which ASGI does not expose.

uvicorn accepts an HTTP protocol class in place of a parser name (``uvicorn.run(...,
http=cls)``); :func:`http_protocol` subclasses the configured one so that each
connection's requests carry its asyncio transport in their ``scope["state"]`` (uvicorn
copies the protocol's ``app_state`` into every request's scope, for lifespan state).
uvicorn internals used (0.54): ``connection_made`` and the ``app_state`` attribute of
``HttpToolsProtocol`` and ``H11Protocol``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = ["TRANSPORT_KEY", "http_protocol", "transport_of"]

TRANSPORT_KEY = "parley.transport"


def http_protocol(parser: str) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol for ``parser`` ("httptools" or "h11"), connection-aware."""
    base: Any
    if parser == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class ConnectionAware(base):
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            state: dict[str, Any] = getattr(self, "app_state", {})
            self.app_state = {**state, TRANSPORT_KEY: transport}

    ConnectionAware.__name__ = f"ConnectionAware{base.__name__}"
    return ConnectionAware


def transport_of(scope: Any) -> asyncio.Transport | None:
    """The plain-TCP transport a request came on, if the server gave it and it can be
    handed over (not TLS: the TLS state lives in this process)."""
    transport = (scope.get("state") or {}).get(TRANSPORT_KEY)
    if transport is None or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return transport
