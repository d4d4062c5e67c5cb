"""Accounts and their sessions in SQLite (tables ``accounts``, ``account_standing``,
``sessions`` and ``password_resets``).

A session token is shown to the client once; only its SHA-256 is stored. Each account gets
an RSA keypair at creation: federation signs its activities with it. ``account_standing``
holds what release 0.1's ``accounts`` row has no column for (a moderator role, silence,
suspension and deletion times, the reason given at sign-up); ``accounts.is_admin`` is kept
equal to ``role == 'admin'`` so either reads the same.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from federation.keys import generate_keypair
from node.accounts import (
    MAX_BIO,
    MAX_DISPLAY_NAME,
    MAX_SIGNUP_REASON,
    Account,
    AccountRole,
    AccountStatus,
    SessionInfo,
    check_password,
    hash_password,
    password_needs_rehash,
    text_field,
    token_hash,
    validate_password,
    validate_password_field,
    validate_username,
)
from node.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from node.store.database import transaction
from node.store.text_search import contains_pattern

PASSWORD_RESET_TTL_S = 24 * 3600
"""A one-time password-reset link works this long (an admin passes it on by hand)."""
UNUSABLE_PASSWORD = "!deleted"
"""What a deleted account's password hash becomes: no password verifies against it."""

_SELECT = (
    "select accounts.*, s.role as role, s.silenced_at as silenced_at, "
    "s.suspended_at as suspended_at, s.deleted_at as deleted_at, "
    "s.signup_reason as signup_reason from accounts "
    "left join account_standing s on s.account_id = accounts.id"
)


class AccountDirectory:
    """Accounts and sessions stored in the node's database."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def create(
        self,
        username: Any,
        password: Any,
        *,
        display_name: Any = "",
        is_admin: bool = False,
        pending: bool = False,
        signup_reason: Any = "",
    ) -> Account:
        username = validate_username(username)
        password = validate_password(password)
        display_name = text_field("display_name", display_name or "", MAX_DISPLAY_NAME)
        reason = text_field("reason", signup_reason or "", MAX_SIGNUP_REASON)
        if self._find_row(username) is not None:
            raise Conflict(f"the username {username} is taken", field="username")
        keys = generate_keypair()
        table = self._db.table("accounts")
        inserted = table.insert(
            {
                "username": username,
                "password_hash": hash_password(password),
                "display_name": display_name,
                "bio": "",
                "is_admin": int(is_admin),
                "status": "pending" if pending else "active",
                "private_key_pem": keys.private_pem,
                "public_key_pem": keys.public_pem,
                "created_at": time.time(),
            }
        )
        if reason:
            assert inserted.last_pk is not None
            self._standing(int(inserted.last_pk), signup_reason=reason)
        return self.get(username)

    def _rows(self, where: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.query(f"{_SELECT} where {where}", list(params))]

    def _find_row(self, username: str) -> dict[str, Any] | None:
        rows = self._rows("accounts.username = ? limit 1", [username])
        return rows[0] if rows else None

    def get(self, username: str) -> Account:
        row = self._find_row(username.lower())
        if row is None:
            raise NotFound(f"no account {username}")
        return Account.from_row(row)

    def get_by_id(self, account_id: int) -> Account:
        rows = self._rows("accounts.id = ? limit 1", [account_id])
        if not rows:
            raise NotFound(f"no account #{account_id}")
        return Account.from_row(rows[0])

    def private_key_pem(self, account_id: int) -> str:
        row = self._db.table("accounts").get(account_id)
        return str(row["private_key_pem"])

    def count(self) -> int:
        return int(self._db.table("accounts").count_where("status = 'active'"))

    def counts(self) -> dict[str, int]:
        """Accounts per status, and silenced ones (the admin dashboard)."""
        found = {s.value: 0 for s in AccountStatus}
        for status, count in self._db.execute(
            "select status, count(*) from accounts group by status"
        ).fetchall():
            found[status] = count
        silenced = self._db.execute(
            "select count(*) from account_standing s join accounts a on a.id = s.account_id "
            "where s.silenced_at is not null and a.status = 'active'"
        ).fetchone()
        found["silenced"] = int(silenced[0])
        return found

    def authenticate(self, username: Any, password: Any) -> Account:
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidInput("username", "username and password must be strings", status=400)
        row = self._find_row(username.strip().lower())
        if row is None or row["status"] == AccountStatus.DELETED:
            # Spend the same time as a real check so response time does not reveal
            # which usernames exist.
            hash_password(password)
            raise Unauthorized("wrong username or password")
        if not check_password(row["password_hash"], password):
            raise Unauthorized("wrong username or password")
        if row["status"] == AccountStatus.PENDING:
            raise Forbidden("this account is waiting for an administrator's approval")
        if row["status"] == AccountStatus.SUSPENDED:
            raise Forbidden("this account is suspended")
        if password_needs_rehash(row["password_hash"]):
            rehashed = {"password_hash": hash_password(password)}
            self._db.table("accounts").update(row["id"], rehashed)
        return Account.from_row(row)

    def update_profile(self, account: Account, changes: dict[str, Any]) -> Account:
        values: dict[str, str] = {}
        for key, value in changes.items():
            if key == "display_name":
                values[key] = text_field(key, value, MAX_DISPLAY_NAME)
            elif key == "bio":
                values[key] = text_field(key, value, MAX_BIO)
            else:
                raise InvalidInput(key, "unknown field")
        if values:
            self._db.table("accounts").update(account.id, values)
        return self.get_by_id(account.id)

    def set_avatar(self, account: Account, name: str | None) -> Account:
        """Record the avatar file ``name`` (node.avatars wrote it), or none."""
        self._db.table("accounts").update(account.id, {"avatar": name})
        return self.get_by_id(account.id)

    def change_password(self, account: Account, current: Any, new: Any) -> None:
        """Replace the password after checking the current one (a stolen session alone
        must not be enough to lock the owner out)."""
        if not isinstance(current, str) or not current:
            raise InvalidInput("current_password", "enter your current password")
        new = validate_password_field("new_password", new)
        row = self._db.table("accounts").get(account.id)
        if not check_password(row["password_hash"], current):
            raise InvalidInput("current_password", "is not your current password")
        self._db.table("accounts").update(account.id, {"password_hash": hash_password(new)})

    def search(self, text: str, limit: int = 20) -> list[Account]:
        """Active accounts whose username or display name contains ``text`` (any case),
        exact and prefix matches of the username first."""
        needle = text.strip().lower().lstrip("@")
        if not needle:
            return []
        pattern = contains_pattern(needle)
        rows = self._db.query(
            f"{_SELECT} where accounts.status = 'active' and "
            "(accounts.username like :p escape '\\' "
            "or lower(accounts.display_name) like :p escape '\\') "
            "order by (accounts.username = :n) desc, "
            "(accounts.username like :start escape '\\') desc, accounts.username limit :limit",
            {"p": pattern, "n": needle, "start": pattern[1:], "limit": limit},
        )
        return [Account.from_row(row) for row in rows]

    def pending(self) -> list[Account]:
        rows = self._rows("accounts.status = 'pending' order by accounts.created_at", [])
        return [Account.from_row(row) for row in rows]

    def find(
        self,
        query: str = "",
        *,
        status: str | None = None,
        role: str | None = None,
        silenced: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Account]:
        """Accounts of every status whose username or display name contains ``query``,
        newest first (the admin page's list)."""
        where, params = ["1 = 1"], []
        if query:
            pattern = contains_pattern(query.lower())
            where.append(
                "(accounts.username like ? escape '\\' "
                "or lower(accounts.display_name) like ? escape '\\')"
            )
            params += [pattern, pattern]
        if status is not None:
            where.append("accounts.status = ?")
            params.append(status)
        if role is not None:
            where.append(
                "coalesce(s.role, case when accounts.is_admin then 'admin' else 'user' end) = ?"
            )
            params.append(role)
        if silenced is not None:
            where.append("s.silenced_at is " + ("not null" if silenced else "null"))
        sql = " and ".join(where) + " order by accounts.created_at desc, accounts.id desc"
        rows = self._rows(f"{sql} limit ? offset ?", [*params, limit, offset])
        return [Account.from_row(row) for row in rows]

    # Standing: approval, roles, silence, suspension, deletion --------------------------

    def _standing(self, account_id: int, **values: Any) -> None:
        self._db.execute(
            "insert into account_standing (account_id) values (?) on conflict do nothing",
            [account_id],
        )
        if values:
            sets = ", ".join(f"{name} = ?" for name in values)
            self._db.execute(
                f"update account_standing set {sets} where account_id = ?",
                [*values.values(), account_id],
            )

    def approve(self, username: str) -> Account:
        account = self.get(username)
        self._db.table("accounts").update(account.id, {"status": "active"})
        return self.get_by_id(account.id)

    def reject(self, account: Account) -> None:
        """A pending sign-up refused: it is removed (its username is free again)."""
        if account.status is not AccountStatus.PENDING:
            raise Conflict(f"{account.username} is not waiting for approval")
        with transaction(self._db):
            self._db.execute("delete from account_standing where account_id = ?", [account.id])
            self._db.execute("delete from sessions where account_id = ?", [account.id])
            self._db.execute("delete from accounts where id = ?", [account.id])

    def set_role(self, account: Account, role: AccountRole) -> Account:
        with transaction(self._db):
            self._standing(account.id, role=role.value)
            self._db.table("accounts").update(
                account.id, {"is_admin": int(role is AccountRole.ADMIN)}
            )
        return self.get_by_id(account.id)

    def set_silenced(self, account: Account, silenced: bool) -> Account:
        self._standing(account.id, silenced_at=time.time() if silenced else None)
        return self.get_by_id(account.id)

    def suspend(self, account: Account) -> Account:
        """Suspended: no log-in, every session revoked (the caller ends its rooms)."""
        with transaction(self._db):
            self._standing(account.id, suspended_at=time.time())
            self._db.table("accounts").update(account.id, {"status": "suspended"})
            self._db.execute("delete from sessions where account_id = ?", [account.id])
            self._db.execute("delete from password_resets where account_id = ?", [account.id])
        return self.get_by_id(account.id)

    def unsuspend(self, account: Account) -> Account:
        with transaction(self._db):
            self._standing(account.id, suspended_at=None)
            self._db.table("accounts").update(account.id, {"status": "active"})
        return self.get_by_id(account.id)

    def mark_deleted(self, account: Account) -> Account:
        """The final step after a suspension: the profile, password, sessions and publish
        keys go; the username stays taken (its actor answers 410 Gone) and the key stays
        until the ``Delete`` telling other servers is delivered (it is signed with it)."""
        with transaction(self._db):
            self._standing(account.id, deleted_at=time.time())
            self._db.table("accounts").update(
                account.id,
                {
                    "status": "deleted",
                    "display_name": "",
                    "bio": "",
                    "password_hash": UNUSABLE_PASSWORD,
                },
            )
            self._db.execute("delete from sessions where account_id = ?", [account.id])
            self._db.execute("delete from publish_keys where account_id = ?", [account.id])
            self._db.execute("delete from password_resets where account_id = ?", [account.id])
        return self.get_by_id(account.id)

    def set_password(self, account: Account, password: Any) -> None:
        """A new password; every session of the account is revoked."""
        password = validate_password(password)
        with transaction(self._db):
            self._db.table("accounts").update(
                account.id, {"password_hash": hash_password(password)}
            )
            self._db.execute("delete from sessions where account_id = ?", [account.id])

    # One-time password-reset links (there is no mail: an admin passes the link on) -----

    def create_password_reset(self, account: Account, by: Account) -> tuple[str, float]:
        """A one-time token for ``account`` and when it expires; only its hash is kept,
        and an earlier unused token of the account stops working."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + PASSWORD_RESET_TTL_S
        with transaction(self._db):
            self._db.execute("delete from password_resets where account_id = ?", [account.id])
            self._db.table("password_resets").insert(
                {
                    "token_hash": token_hash(token),
                    "account_id": account.id,
                    "created_by": by.id,
                    "created_at": now,
                    "expires_at": expires,
                    "used_at": None,
                }
            )
        return token, expires

    def redeem_password_reset(self, token: Any, password: Any) -> Account:
        if not isinstance(token, str) or not token:
            raise InvalidInput("token", "must be the token of a password-reset link")
        password = validate_password(password)
        row = self._db.execute(
            "select account_id, expires_at, used_at from password_resets where token_hash = ?",
            [token_hash(token)],
        ).fetchone()
        if row is None or row[2] is not None or row[1] < time.time():
            raise Unauthorized("this password-reset link is unknown, used or expired")
        account = self.get_by_id(row[0])
        if not account.active:
            raise Forbidden("this account cannot sign in")
        with transaction(self._db):
            # Used once: marking it before anything else, in the same transaction.
            cursor = self._db.execute(
                "update password_resets set used_at = ? where token_hash = ? and used_at is null",
                [time.time(), token_hash(token)],
            )
            if cursor.rowcount != 1:
                raise Unauthorized("this password-reset link is unknown, used or expired")
            self._db.table("accounts").update(
                account.id, {"password_hash": hash_password(password)}
            )
            self._db.execute("delete from sessions where account_id = ?", [account.id])
        return account

    # Sessions ------------------------------------------------------------------------

    def open_session(self, account: Account, *, user_agent: str = "") -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        self._db.table("sessions").insert(
            {
                "id": secrets.token_hex(8),
                "account_id": account.id,
                "token_hash": token_hash(token),
                "user_agent": user_agent[:200],
                "created_at": now,
                "last_used_at": now,
            }
        )
        return token

    def resolve_token(self, token: str) -> tuple[Account, str]:
        """The account and session id a bearer token belongs to, or Unauthorized."""
        rows = list(
            self._db.table("sessions").rows_where("token_hash = ?", [token_hash(token)], limit=1)
        )
        if not rows:
            raise Unauthorized("unknown or revoked session")
        session = rows[0]
        account = self.get_by_id(session["account_id"])
        if account.status != "active":
            raise Unauthorized("account is not active")
        now = time.time()
        # Touch at most once a minute: a write per request would serialise the node on disk.
        if now - session["last_used_at"] > 60:
            self._db.table("sessions").update(session["id"], {"last_used_at": now})
        return account, session["id"]

    def sessions(self, account: Account) -> list[SessionInfo]:
        return [
            SessionInfo(r["id"], r["created_at"], r["last_used_at"], r["user_agent"] or "")
            for r in self._db.table("sessions").rows_where(
                "account_id = ?", [account.id], order_by="created_at"
            )
        ]

    def revoke_other_sessions(self, account: Account, keep: str | None) -> int:
        """Sign out everywhere but session ``keep``; the number of sessions revoked."""
        cursor = self._db.execute(
            "delete from sessions where account_id = ? and id is not ?", [account.id, keep]
        )
        return int(cursor.rowcount)

    def revoke_session(self, account: Account, session_id: str) -> None:
        rows = list(
            self._db.table("sessions").rows_where(
                "id = ? and account_id = ?", [session_id, account.id], limit=1
            )
        )
        if not rows:
            raise NotFound("no such session")
        self._db.table("sessions").delete(session_id)
