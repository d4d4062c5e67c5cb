"""Avatars: our accounts' pictures, and remote people's icons seen through this node.

- An account uploads an image; node.images remakes it (a PNG square, no metadata) and it
  is written under the data dir's ``avatars/`` through DataFiles (whole or not at all)
  with a new name each time, so its URL (``/avatars/<name>``) never changes meaning and
  is cached for good. The actor document names it as the ``icon``.
- A remote person's icon (their actor's ``icon``) is fetched **by the node**, through the
  one outgoing client (address policy, blocked domains, size and time limits), remade
  the same way, kept under ``avatars/remote-<hash>.png`` for a day and served from here:
  listeners' browsers never contact the remote server, so their addresses stay here.
  Only icons of actors this node already knows (its actor cache: people it looked up,
  followed, or heard from) are fetched: this is not a proxy for any URL.

docs/SECURITY.md, "Images"; docs/API.md, "Avatars".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from federation.errors import FederationError
from node.accounts import Account
from node.errors import InvalidInput, NotFound
from node.fediverse.service import Fediverse
from node.images import ACCEPT, AVATAR_SIZE, ICON_SIZE, ImageRefused, remake_square
from node.store.accounts import AccountDirectory
from node.store.files import DataFiles

log = logging.getLogger(__name__)

AREA = "avatars"
REMOTE_TTL_S = 24 * 3600.0
"""How long a remote icon is served from the copy kept here before it is fetched again."""
FAILED_TTL_S = 600.0
"""How long an icon that could not be fetched is not asked for again."""
FETCH_TIMEOUT_S = 10.0
MAX_FAILED = 1000
_LOCAL_NAME = re.compile(r"[a-z0-9_]{1,30}-[0-9a-f]{12}\.png")
_REMOTE_PREFIX = "remote-"


def remote_icon_path(actor_id: str) -> str:
    """Where this node serves ``actor_id``'s icon (its actor must be known here)."""
    return f"/api/v1/remote-avatar?actor={quote(actor_id, safe='')}"


class Avatars:
    def __init__(self, files: DataFiles, accounts: AccountDirectory, fediverse: Fediverse) -> None:
        self.files = files
        self.accounts = accounts
        self.fediverse = fediverse
        self._fetching: dict[str, asyncio.Task[Path]] = {}
        self._failed: dict[str, float] = {}

    # -- our accounts ------------------------------------------------------------------

    async def upload(self, account: Account, data: bytes) -> Account:
        """Remake ``data`` and make it ``account``'s avatar; the old file goes."""
        try:
            image = await asyncio.to_thread(remake_square, data, AVATAR_SIZE)
        except ImageRefused as exc:
            raise InvalidInput("avatar", str(exc)) from None
        name = f"{account.username}-{secrets.token_hex(6)}.png"
        await asyncio.to_thread(self.files.write, AREA, name, image)
        updated = self.accounts.set_avatar(account, name)
        self._forget(account.avatar)
        return updated

    def remove(self, account: Account) -> Account:
        updated = self.accounts.set_avatar(account, None)
        self._forget(account.avatar)
        return updated

    def _forget(self, name: str | None) -> None:
        if name:
            try:
                self.files.delete(AREA, name)
            except OSError as exc:
                log.warning("old avatar %s not removed: %s", name, exc)

    def local_file(self, name: str) -> Path:
        """The file of an uploaded avatar; NotFound for anything else."""
        if not _LOCAL_NAME.fullmatch(name):
            raise NotFound("no such avatar")
        path = self.files.path(AREA, name)
        if not path.is_file():
            raise NotFound("no such avatar")
        return path

    # -- remote people ------------------------------------------------------------------

    async def remote_icon(self, actor_id: str, *, before_fetch: Callable[[], None]) -> Path:
        """The kept copy of a known actor's icon, fetched if it is missing or old
        (``before_fetch`` runs first: the caller's rate limit)."""
        actor = await self.fediverse.actor_cache.get(actor_id)
        if actor is None or not actor.icon:
            raise NotFound("no icon known for this actor")
        key = hashlib.sha256(f"{actor.id}\n{actor.icon}".encode()).hexdigest()[:40]
        path = self.files.path(AREA, f"{_REMOTE_PREFIX}{key}.png")
        try:
            if time.time() - path.stat().st_mtime < REMOTE_TTL_S:
                return path
        except FileNotFoundError:
            pass
        if time.monotonic() < self._failed.get(key, 0.0):
            raise NotFound("this icon could not be fetched; try later")
        task = self._fetching.get(key)
        if task is None:
            before_fetch()
            # One fetch per icon however many listeners ask at once.
            task = asyncio.get_running_loop().create_task(self._fetch(actor.icon, path))
            self._fetching[key] = task
            task.add_done_callback(lambda _: self._fetching.pop(key, None))
        try:
            return await asyncio.shield(task)
        except (FederationError, ImageRefused, TimeoutError) as exc:
            log.info("icon %s of %s not taken: %s", actor.icon, actor.id, exc)
            if len(self._failed) >= MAX_FAILED:
                self._failed.clear()
            self._failed[key] = time.monotonic() + FAILED_TTL_S
            raise NotFound("this icon could not be fetched; try later") from None

    async def _fetch(self, url: str, path: Path) -> Path:
        client = self.fediverse.federation_client()
        data, _ = await asyncio.wait_for(client.fetch_media(url, accept=ACCEPT), FETCH_TIMEOUT_S)
        image = await asyncio.to_thread(remake_square, data, ICON_SIZE)
        await asyncio.to_thread(self.files.write, AREA, path.name, image)
        return path
