"""Administration: approving sign-ups when `[accounts] registration = "approval"`; the
storage's state (free space, writes refused because the disk is full)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.accounts import Account
from node.errors import Conflict, Forbidden
from node.store.accounts import AccountDirectory
from node.store.health import StorageHealth
from node.web.api import account_json
from node.web.auth import require_account


def _admin(request: Request) -> tuple[Account, AccountDirectory]:
    account = require_account(request)
    if not account.is_admin:
        raise Forbidden("only an administrator may do this")
    accounts: AccountDirectory = request.app.state.accounts
    return account, accounts


async def pending_accounts(request: Request) -> Response:
    _, accounts = _admin(request)
    return JSONResponse({"accounts": [account_json(request, a) for a in accounts.pending()]})


async def approve_account(request: Request) -> Response:
    _, accounts = _admin(request)
    account = accounts.get(request.path_params["username"])
    if account.status == "active":
        raise Conflict(f"{account.username} is already active")
    return JSONResponse(account_json(request, accounts.approve(account.username)))


async def storage(request: Request) -> Response:
    _admin(request)
    health: StorageHealth = request.app.state.storage
    return JSONResponse(health.to_json())


routes = [
    Route("/api/v1/admin/storage", storage, methods=["GET"]),
    Route("/api/v1/admin/accounts/pending", pending_accounts, methods=["GET"]),
    Route("/api/v1/admin/accounts/{username}/approve", approve_account, methods=["POST"]),
]
