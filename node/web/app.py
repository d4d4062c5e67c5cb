"""The application factory: the only place where the node's parts are wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from federation.routes import FederationSite, build_routes
from node.config import Config
from node.errors import ParleyError, RateLimited
from node.fediverse.service import Fediverse
from node.media.hls import HlsOutputs
from node.media.ice import IceSettings, install_ice_policy, parse_ice_server
from node.media.peers import PeerSessions
from node.media.workers import WorkerPool, WorkerSettings
from node.onair.stage import Stage
from node.relaying.service import RelayService
from node.rooms import Room
from node.store.accounts import AccountDirectory
from node.store.database import close_database, open_database
from node.store.files import DataFiles
from node.store.health import StorageHealth
from node.store.publish_keys import PublishKeys
from node.store.relaying import RelayRooms
from node.store.rooms import RoomStore
from node.web import admin, api, follows, hls, pages, publish_keys, search, settings, signaling
from node.web.auth import AttemptLimiter
from node.web.limits import FetchLimiter
from node.web.openapi import openapi_document

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


def browser_ice_servers(servers: tuple[str, ...]) -> list[dict[str, Any]]:
    """node.toml's ice_servers as RTCIceServer dictionaries for the browser."""
    result: list[dict[str, Any]] = []
    for server in map(parse_ice_server, servers):
        entry: dict[str, Any] = {"urls": server.urls}
        if server.username is not None:
            entry.update(username=server.username, credential=server.credential)
        result.append(entry)
    return result


def _error_response(status: int, code: str, detail: str, headers: Any = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status, headers=headers)


async def _parley_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ParleyError)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.5)))}
    if exc.field is not None:
        # Clients show the error next to the field that caused it.
        body = {"error": exc.code, "detail": exc.detail, "field": exc.field}
        return JSONResponse(body, exc.status, headers=headers)
    return _error_response(exc.status, exc.code, exc.detail, headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and pages.wants_html(request):
        return pages.not_found(request)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error_response(500, "internal_error", "the node hit an unexpected error")


def _federation_site(request: Request) -> FederationSite | None:
    fediverse: Fediverse | None = getattr(request.app.state, "fediverse", None)
    return None if fediverse is None else fediverse.site


def create_app(config: Config) -> Starlette:
    base_url = config.node.base_url.rstrip("/")
    hls_base_url = (config.hls.base_url or base_url).rstrip("/")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # `python -m node` has checked and migrated it before serving.
        storage = StorageHealth(config.data_path)
        db = open_database(config.data_path, health=storage)
        ice = IceSettings(
            ice_servers=config.media.ice_servers,
            host_addresses=config.media.host_addresses,
            udp_port_min=config.media.udp_port_min,
            udp_port_max=config.media.udp_port_max,
        )
        install_ice_policy(ice, asyncio.get_running_loop())
        accounts = AccountDirectory(db)
        frames_per_packet = config.media.webrtc_packet_ms // 20
        peers = PeerSessions(
            ice,
            max_sdp_bytes=config.media.max_sdp_bytes,
            fanout=config.media.webrtc_fanout,
            frames_per_packet=frames_per_packet,
        )

        def urls(room: Room) -> dict[str, str]:
            return {
                **signaling.room_urls(base_url, room.id, room.visibility),
                "hls_url": hls.hls_url(hls_base_url, room.id),
            }

        workers: WorkerPool | None = None
        if config.media.workers:
            workers = WorkerPool(
                config.media.workers,
                WorkerSettings(
                    ice,
                    max_sdp_bytes=config.media.max_sdp_bytes,
                    fanout=config.media.webrtc_fanout,
                    frames_per_packet=frames_per_packet,
                    event_loop=config.node.event_loop,
                    ogg_packets_per_page=config.media.ogg_page_ms // 20,
                ),
            )
            await workers.start()
        stage = Stage(config, accounts, RoomStore(db), peers, room_url=urls, listeners=workers)
        fediverse = Fediverse(config, db, accounts, stage)
        relay = RelayService(
            stage,
            RelayRooms(db),
            fediverse,
            ended_while_away=fediverse.announcer.recover,
        )
        app.state.relay = relay
        # Our rooms that other nodes may carry on since we stopped are not ended here:
        # node.relaying asks those nodes first, or resumes them as mirrors.
        recovering = relay.rooms_to_recover()
        stage.load_unfinished(keep={*recovering, *relay.mirrored_rooms()})
        stage.recovering.update(recovering)
        app.state.config = config
        app.state.storage = storage
        # Features that keep files (recordings, avatars) write through this.
        app.state.data_files = DataFiles(config.data_path, storage)
        app.state.host = urlsplit(base_url).netloc
        app.state.accounts = accounts
        app.state.stage = stage
        app.state.hls = HlsOutputs()
        app.state.auth_limiter = AttemptLimiter(config.accounts.auth_rate_per_minute)
        app.state.fetch_limiter = FetchLimiter(config.federation.fetch_rate_per_minute)
        app.state.publish_keys = PublishKeys(db, accounts)
        app.state.browser_ice_servers = browser_ice_servers(config.media.ice_servers)
        app.state.fediverse = fediverse
        app.state.local_follows = fediverse.local_follows
        await fediverse.start(room_actions=relay)
        relay.restore()
        relay.recover_origins(recovering)
        try:
            yield
        finally:
            await fediverse.stop()
            await relay.close()
            await stage.close()
            await app.state.hls.close()
            close_database(db)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(base_url))

    routes = [
        *api.routes,
        *admin.routes,
        *publish_keys.routes,
        *signaling.routes,
        *hls.routes,
        *search.routes,
        *settings.routes,
        Route("/api/v1/openapi.json", openapi),
        *build_routes(_federation_site),
        *follows.routes,
        *pages.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ParleyError: _parley_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.page_shell = pages.PageShell(STATIC_DIR / "index.html", base_url)
    return app
