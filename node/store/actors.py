"""Our actors as the federation package asks for them (``LocalActors``, ``KeyStore``):
the accounts table, and the instance actor's keypair in ``fed_instance``."""

from __future__ import annotations

import time

import sqlite_utils

from federation.actors import ActorUrls
from federation.keys import generate_keypair
from federation.ports import LocalAccount, NodeUsage
from node.accounts import Account
from node.config import Config
from node.errors import NotFound
from node.store.accounts import AccountDirectory


class NodeActors:
    """LocalActors and KeyStore over the accounts table and the instance keypair."""

    def __init__(
        self, db: sqlite_utils.Database, accounts: AccountDirectory, config: Config
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._config = config
        self.base_url = config.node.base_url.rstrip("/")
        self.instance = ActorUrls.for_instance(self.base_url)

    def ensure_instance_key(self) -> None:
        if self._instance_value("private_pem") is None:
            keys = generate_keypair()
            self._db.execute(
                "insert or ignore into fed_instance (name, value) values (?, ?), (?, ?)",
                ["private_pem", keys.private_pem, "public_pem", keys.public_pem],
            )

    def _instance_value(self, name: str) -> str | None:
        row = self._db.execute("select value from fed_instance where name = ?", [name]).fetchone()
        return None if row is None else str(row[0])

    def instance_key(self) -> tuple[str, str]:
        pem = self._instance_value("private_pem")
        if pem is None:
            raise RuntimeError("instance key not created yet (Fediverse.start)")
        return self.instance.key_id, pem

    def username_of(self, actor_id: str) -> str | None:
        prefix = f"{self.base_url}/users/"
        if not actor_id.startswith(prefix):
            return None
        username = actor_id[len(prefix) :]
        return username if username and "/" not in username else None

    def _active(self, username: str) -> Account | None:
        try:
            account = self._accounts.get(username)
        except NotFound:
            return None
        return account if account.status == "active" else None

    async def account(self, username: str) -> LocalAccount | None:
        account = self._active(username)
        if account is None:
            return None
        return LocalAccount(
            account.username, account.display_name, account.bio, account.public_key_pem
        )

    async def instance_public_key(self) -> str:
        return self._instance_value("public_pem") or ""

    async def usage(self) -> NodeUsage:
        now = time.time()

        def active_since(seconds: float) -> int:
            row = self._db.execute(
                "select count(distinct account_id) from sessions where last_used_at > ?",
                [now - seconds],
            ).fetchone()
            return int(row[0])

        posts = self._db.execute("select count(*) from fed_room_notes").fetchone()
        return NodeUsage(
            users_total=self._accounts.count(),
            users_active_month=active_since(30 * 86400),
            users_active_halfyear=active_since(182 * 86400),
            local_posts=int(posts[0]),
            open_registrations=self._config.accounts.registration == "open",
        )

    async def local_actor_key(self, actor_id: str) -> tuple[str, str] | None:
        if actor_id == self.instance.id:
            pem = self._instance_value("private_pem")
            return None if pem is None else (self.instance.key_id, pem)
        username = self.username_of(actor_id)
        if username is None:
            return None
        account = self._active(username)
        if account is None:
            return None
        return f"{actor_id}#main-key", self._accounts.private_key_pem(account.id)
