"""What every user has of moderation: reporting (``/api/v1/reports``), personal blocks
and mutes (``/api/v1/blocks``, ``/api/v1/mutes``), redeeming a password-reset link, and
the node's public face (``/api/v1/about``: name, description, rules, contact,
registration, blocked servers with their public comment)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.moderation.reports import ReportDesk
from node.store.accounts import AccountDirectory
from node.store.domain_blocks import DomainBlockList
from node.store.personal_blocks import PersonalBlocks, Shun
from node.store.settings import SettingsStore
from node.web.api import read_json
from node.web.auth import require_account
from node.web.limits import client_address

REPORTS_PER_MINUTE = 10
"""Reports one account may file per minute (then 429): enough for a bad room, not a flood."""


async def reports(request: Request) -> Response:
    account = require_account(request)
    desk: ReportDesk = request.app.state.reports
    if request.method == "POST":
        request.app.state.report_limiter.check(f"account:{account.id}")
        body = await read_json(request)
        if body.get("forward") is True:
            # Forwarding looks the target up on its server, as a follow does.
            request.app.state.fetch_limiter.check(request, account)
        report = await desk.file(account, body)
        return JSONResponse(report.for_reporter(), 201)
    return JSONResponse({"reports": [r.for_reporter() for r in desk.of_reporter(account)]})


Endpoint = Callable[[Request], Awaitable[Response]]


def _shunning(kind: Shun) -> tuple[Endpoint, Endpoint]:
    async def listing(request: Request) -> Response:
        account = require_account(request)
        blocks: PersonalBlocks = request.app.state.personal_blocks
        if request.method == "POST":
            body = await read_json(request)
            name = blocks.add(account, kind, body.get("handle"))
            return JSONResponse({"handle": name}, 201)
        return JSONResponse({f"{kind.value}s": blocks.list(account, kind)})

    async def one(request: Request) -> Response:
        account = require_account(request)
        blocks: PersonalBlocks = request.app.state.personal_blocks
        blocks.remove(account, kind, request.path_params["handle"])
        return Response(status_code=204)

    return listing, one


blocks_listing, block_one = _shunning(Shun.BLOCK)
mutes_listing, mute_one = _shunning(Shun.MUTE)


async def password_reset(request: Request) -> Response:
    request.app.state.auth_limiter.check(client_address(request))
    body = await read_json(request)
    accounts: AccountDirectory = request.app.state.accounts
    account = accounts.redeem_password_reset(body.get("token"), body.get("password"))
    return JSONResponse({"username": account.username})


async def about(request: Request) -> Response:
    settings: SettingsStore = request.app.state.settings
    domains: DomainBlockList = request.app.state.domains
    current = settings.current()
    host = request.app.state.host
    doc = current.to_json()
    doc["name"] = current.name or host
    doc["host"] = host
    doc["contact"] = (
        {"username": current.contact, "url": f"/@{current.contact}"} if current.contact else None
    )
    doc["domain_blocks"] = [b.public_json() for b in domains.list()]
    return JSONResponse(doc)


routes = [
    Route("/api/v1/reports", reports, methods=["GET", "POST"]),
    Route("/api/v1/blocks", blocks_listing, methods=["GET", "POST"]),
    Route("/api/v1/blocks/{handle}", block_one, methods=["DELETE"]),
    Route("/api/v1/mutes", mutes_listing, methods=["GET", "POST"]),
    Route("/api/v1/mutes/{handle}", mute_one, methods=["DELETE"]),
    Route("/api/v1/password-reset", password_reset, methods=["POST"]),
    Route("/api/v1/about", about, methods=["GET"]),
]
