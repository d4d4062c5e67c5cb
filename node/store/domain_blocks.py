"""The node's domain blocks (table ``domain_blocks``, plus node.toml's list): one live
object every part consults.

``DomainBlockList`` implements federation.ports.DomainPolicy (the outgoing client, the
inbox, the outbox, signed fetches and relay subscriptions ask ``is_blocked``) and answers
the node's own questions (``severity``: a silenced server's rooms are not listed and its
users do not come on stage). Rows are read into memory once and on every change, so a
block added on the admin page applies to the very next request, without a restart; the
parts that must act on a new block at once (rooms carried from there, follows with its
accounts) subscribe with ``on_change``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlite_utils

from node.domain_blocks import (
    MAX_COMMENT,
    DomainBlock,
    Severity,
    covers,
    host_of,
    normalize_domain,
    parse_severity,
)
from node.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

Listener = Callable[[DomainBlock], None]


def _text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    value = value.strip()
    if len(value) > MAX_COMMENT:
        raise InvalidInput(field, f"at most {MAX_COMMENT} characters")
    return value


class DomainBlockList:
    """node.toml's ``blocked_domains`` (suspended, fixed) and the admins' blocks."""

    def __init__(self, db: sqlite_utils.Database, configured: Iterable[str] = ()) -> None:
        self._db = db
        self._configured = tuple(
            DomainBlock(normalize_domain(d), Severity.SUSPEND, configured=True)
            for d in configured
            if d.strip()
        )
        self._rows: tuple[DomainBlock, ...] = ()
        self._listeners: list[Listener] = []
        self._load()

    def _load(self) -> None:
        rows = self._db.execute(
            "select b.domain, b.severity, b.public_comment, b.private_note, b.created_at, "
            "a.username from domain_blocks b left join accounts a on a.id = b.created_by "
            "order by b.created_at desc, b.domain"
        ).fetchall()
        self._rows = tuple(DomainBlock(r[0], Severity(r[1]), r[2], r[3], r[4], r[5]) for r in rows)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` with every block added or made harsher (not with removals:
        nothing reconnects by itself once a block is lifted)."""
        self._listeners.append(listener)

    # -- the policy (federation.ports.DomainPolicy) -----------------------------------

    def block_of(self, host: str) -> DomainBlock | None:
        """The harshest block covering ``host`` (a host name, ``host:port``, a handle or
        a URL), or None."""
        name = host_of(host)
        if not name:
            return None
        found: DomainBlock | None = None
        for block in (*self._configured, *self._rows):
            if covers(block.domain, name) and (
                found is None or block.severity is Severity.SUSPEND
            ):
                found = block
                if block.severity is Severity.SUSPEND:
                    break
        return found

    def severity(self, host: str) -> Severity | None:
        block = self.block_of(host)
        return None if block is None else block.severity

    def is_blocked(self, host: str) -> bool:
        """Refused both ways (suspended)."""
        return self.severity(host) is Severity.SUSPEND

    def is_silenced(self, host: str) -> bool:
        """Silenced or suspended: not listed, not on stage."""
        return self.severity(host) is not None

    # -- the admins' list -------------------------------------------------------------

    def list(self) -> list[DomainBlock]:
        return [*self._rows, *self._configured]

    def add(
        self,
        domain: Any,
        severity: Any,
        *,
        public_comment: Any = "",
        private_note: Any = "",
        by: int | None = None,
    ) -> DomainBlock:
        """Add a block, or change one (its severity and comments)."""
        name = normalize_domain(domain)
        level = parse_severity(severity)
        public = _text("public_comment", public_comment)
        private = _text("private_note", private_note)
        if any(b.domain == name for b in self._configured):
            raise Conflict(f"{name} is blocked in node.toml; change it there")
        before = self.block_of(name)
        self._db.execute(
            "insert into domain_blocks (domain, severity, public_comment, private_note, "
            "created_by, created_at) values (?, ?, ?, ?, ?, ?) on conflict (domain) do update "
            "set severity = excluded.severity, public_comment = excluded.public_comment, "
            "private_note = excluded.private_note",
            [name, level.value, public, private, by, time.time()],
        )
        self._load()
        block = next(b for b in self._rows if b.domain == name)
        log.info("domain block: %s (%s)", name, level.value)
        harsher = before is None or (
            before.severity is Severity.SILENCE and level is Severity.SUSPEND
        )
        if harsher:
            for listener in list(self._listeners):
                try:
                    listener(block)
                except Exception:
                    log.exception("acting on the block of %s failed", name)
        return block

    def remove(self, domain: Any) -> None:
        name = normalize_domain(domain)
        if any(b.domain == name for b in self._configured):
            raise Conflict(f"{name} is blocked in node.toml; change it there")
        cursor = self._db.execute("delete from domain_blocks where domain = ?", [name])
        if cursor.rowcount == 0:
            raise NotFound(f"{name} is not blocked")
        self._load()
        log.info("domain block lifted: %s", name)
