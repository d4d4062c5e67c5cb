"""Account settings that are not the profile: the password.

- ``POST /api/v1/me/password {"current_password", "new_password"}`` → ``200
  {"revoked_sessions": n}``. The current password is checked (a stolen session alone must
  not lock the owner out), attempts count against the sign-in rate limit, and every other
  session of the account is signed out; the one that asked stays signed in.

Sessions are listed and revoked by ``GET``/``DELETE /api/v1/sessions`` (node.web.api). The
publish key for OBS and the avatar get their own endpoints.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.store.accounts import AccountDirectory
from node.web.api import read_json
from node.web.auth import require_account
from node.web.limits import client_address


async def change_password(request: Request) -> Response:
    account = require_account(request)
    request.app.state.auth_limiter.check(f"password:{client_address(request)}")
    body = await read_json(request)
    accounts: AccountDirectory = request.app.state.accounts
    accounts.change_password(account, body.get("current_password"), body.get("new_password"))
    revoked = accounts.revoke_other_sessions(account, request.scope["state"].get("session_id"))
    return JSONResponse({"revoked_sessions": revoked})


routes = [Route("/api/v1/me/password", change_password, methods=["POST"])]
