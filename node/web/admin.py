"""The admin API under /api/v1/admin: dashboard, accounts, rooms, domain blocks, reports,
server settings and the storage's state. Every route is for the node's staff
(node.moderation.staff says which need an admin); anyone else gets 403 (401 when not
signed in)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.accounts import Account
from node.errors import InvalidInput, NotFound
from node.moderation.dashboard import Dashboard
from node.moderation.operators import Operators
from node.moderation.reports import ReportDesk
from node.moderation.staff import require_admin, require_staff
from node.onair.stage import Stage
from node.rooms import RoomState
from node.store.accounts import AccountDirectory
from node.store.domain_blocks import DomainBlockList
from node.store.health import StorageHealth
from node.store.settings import SettingsStore
from node.web.api import read_json
from node.web.auth import require_account

MAX_PAGE = 200


def _staff(request: Request) -> Account:
    account = require_account(request)
    require_staff(account)
    return account


def _admin(request: Request) -> Account:
    account = require_account(request)
    require_admin(account)
    return account


def _operators(request: Request) -> Operators:
    operators: Operators = request.app.state.operators
    return operators


def _reports(request: Request) -> ReportDesk:
    desk: ReportDesk = request.app.state.reports
    return desk


def _accounts(request: Request) -> AccountDirectory:
    accounts: AccountDirectory = request.app.state.accounts
    return accounts


def admin_account_json(request: Request, account: Account) -> dict[str, Any]:
    """An account as the admin page shows it."""
    return {
        "username": account.username,
        "display_name": account.display_name,
        "handle": f"@{account.username}@{request.app.state.host}",
        "role": account.role.value,
        "status": account.status.value,
        "silenced": account.silenced,
        "signup_reason": account.signup_reason,
        "created_at": account.created_at,
        "is_admin": account.is_admin,
    }


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise InvalidInput(name, "must be a non-negative integer", status=400)
    return min(int(raw), maximum)


# -- dashboard --------------------------------------------------------------------------


async def dashboard(request: Request) -> Response:
    _staff(request)
    board: Dashboard = request.app.state.dashboard
    return JSONResponse(board.snapshot())


# -- accounts ---------------------------------------------------------------------------


async def accounts(request: Request) -> Response:
    _staff(request)
    params = request.query_params
    query = params.get("q", "").strip().lower()[:64]
    status = params.get("status") or None
    if status not in (None, "pending", "active", "suspended", "deleted"):
        raise InvalidInput("status", "must be pending, active, suspended or deleted", status=400)
    role = params.get("role") or None
    if role not in (None, "admin", "moderator", "user"):
        raise InvalidInput("role", "must be admin, moderator or user", status=400)
    silenced = {"true": True, "false": False}.get(params.get("silenced", ""))
    found = _accounts(request).find(
        query,
        status=status,
        role=role,
        silenced=silenced,
        limit=_int_param(request, "limit", 50, MAX_PAGE),
        offset=_int_param(request, "offset", 0, 1_000_000),
    )
    return JSONResponse({"accounts": [admin_account_json(request, a) for a in found]})


async def pending_accounts(request: Request) -> Response:
    _staff(request)
    found = _accounts(request).pending()
    return JSONResponse({"accounts": [admin_account_json(request, a) for a in found]})


async def account_action(request: Request) -> Response:
    actor = _staff(request)
    username = request.path_params["username"]
    action = request.path_params["action"]
    operators = _operators(request)
    body = await read_json(request)
    if action == "approve":
        account = operators.approve(actor, username)
    elif action == "reject":
        operators.reject(actor, username)
        return Response(status_code=204)
    elif action == "suspend":
        account = await operators.suspend(actor, username, body.get("reason"))
    elif action == "unsuspend":
        account = operators.unsuspend(actor, username)
    elif action in ("silence", "unsilence"):
        account = operators.silence(actor, username, action == "silence")
    elif action == "delete":
        account = await operators.delete(actor, username)
    elif action == "role":
        account = operators.set_role(actor, username, body.get("role"))
    elif action == "password-reset":
        return JSONResponse(operators.password_reset(actor, username), 201)
    else:
        raise NotFound(f"no account action {action}")
    return JSONResponse(admin_account_json(request, account))


# -- rooms ------------------------------------------------------------------------------


async def rooms(request: Request) -> Response:
    _staff(request)
    board: Dashboard = request.app.state.dashboard
    stage: Stage = request.app.state.stage
    found = [
        board.room_summary(on_air)
        for on_air in stage.rooms_on_air.values()
        if on_air.room.state is not RoomState.ENDED
    ]
    found.sort(key=lambda r: (r["state"] != "live", -(r["started_at"] or 0.0)))
    return JSONResponse({"rooms": found})


async def end_room(request: Request) -> Response:
    actor = _staff(request)
    body = await read_json(request)
    on_air = await _operators(request).end_room(
        actor, request.path_params["room_id"], body.get("reason")
    )
    stage: Stage = request.app.state.stage
    return JSONResponse(stage.room_json(on_air.room))


# -- domain blocks ----------------------------------------------------------------------


async def domain_blocks(request: Request) -> Response:
    domains: DomainBlockList = request.app.state.domains
    if request.method == "POST":
        block = _operators(request).block_domain(_admin(request), await read_json(request))
        return JSONResponse(block.to_json(), 201)
    _admin(request)
    return JSONResponse({"domain_blocks": [b.to_json() for b in domains.list()]})


async def domain_block(request: Request) -> Response:
    _operators(request).unblock_domain(_admin(request), request.path_params["domain"])
    return Response(status_code=204)


# -- reports ----------------------------------------------------------------------------


def _report_id(request: Request) -> int:
    raw = request.path_params["report_id"]
    if not raw.isdigit():
        raise NotFound("no such report")
    return int(raw)


async def reports(request: Request) -> Response:
    actor = _staff(request)
    found = _reports(request).queue(actor, request.query_params.get("state", "open"))
    return JSONResponse({"reports": [r.to_json() for r in found]})


async def report(request: Request) -> Response:
    _staff(request)
    return JSONResponse(_reports(request).store.get(_report_id(request)).to_json())


async def resolve_report(request: Request) -> Response:
    actor = _staff(request)
    body = await read_json(request)
    resolved = await _reports(request).resolve(actor, _report_id(request), body)
    return JSONResponse(resolved.to_json())


async def reopen_report(request: Request) -> Response:
    actor = _staff(request)
    return JSONResponse(_reports(request).reopen(actor, _report_id(request)).to_json())


# -- storage ----------------------------------------------------------------------------


async def storage(request: Request) -> Response:
    _admin(request)
    health: StorageHealth = request.app.state.storage
    return JSONResponse(health.to_json())


# -- server settings --------------------------------------------------------------------


async def settings(request: Request) -> Response:
    store: SettingsStore = request.app.state.settings
    if request.method == "PATCH":
        _admin(request)
        changed = store.current().changed(await read_json(request))
        if changed.contact:
            _accounts(request).get(changed.contact)  # 404 for no such account
        return JSONResponse(store.update(changed).to_json())
    _staff(request)
    return JSONResponse(store.current().to_json())


routes = [
    Route("/api/v1/admin/storage", storage, methods=["GET"]),
    Route("/api/v1/admin/dashboard", dashboard, methods=["GET"]),
    Route("/api/v1/admin/accounts", accounts, methods=["GET"]),
    Route("/api/v1/admin/accounts/pending", pending_accounts, methods=["GET"]),
    Route("/api/v1/admin/accounts/{username}/{action}", account_action, methods=["POST"]),
    Route("/api/v1/admin/rooms", rooms, methods=["GET"]),
    Route("/api/v1/admin/rooms/{room_id}/end", end_room, methods=["POST"]),
    Route("/api/v1/admin/domain-blocks", domain_blocks, methods=["GET", "POST"]),
    Route("/api/v1/admin/domain-blocks/{domain}", domain_block, methods=["DELETE"]),
    Route("/api/v1/admin/reports", reports, methods=["GET"]),
    Route("/api/v1/admin/reports/{report_id}", report, methods=["GET"]),
    Route("/api/v1/admin/reports/{report_id}/resolve", resolve_report, methods=["POST"]),
    Route("/api/v1/admin/reports/{report_id}/reopen", reopen_report, methods=["POST"]),
    Route("/api/v1/admin/settings", settings, methods=["GET", "PATCH"]),
]
