"""Reports: our users' (filed here, and forwarded to the target's server as a ``Flag``
when the target is elsewhere and the reporter asks), and other servers' (their ``Flag``s,
filed in our queue). Moderators resolve them, saying what they did; what they did is done
through node.moderation.operators.

A report names its target by what the reporter sees: an account (``alice`` of ours,
``bob@host`` of another server), a room (its id on this node, which may be our copy of a
room of another node) or a speaker in a room (the room's id and the member's name).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

from federation.actors import ActorUrls
from federation.reports import Flag
from node.accounts import Account, AccountStatus
from node.errors import InvalidInput, NotFound
from node.fediverse.service import Fediverse
from node.moderation.operators import Operators
from node.moderation.staff import require_staff
from node.onair.stage import Stage
from node.relaying.names import netloc
from node.reports import (
    MAX_ACTION_NOTE,
    MAX_COMMENT,
    Report,
    ReportAction,
    ReportState,
    ReportTarget,
    parse_action,
    parse_target,
    text_of,
)
from node.store.accounts import AccountDirectory
from node.store.personal_blocks import member_name
from node.store.reports import NewReport, ReportStore
from node.store.settings import SettingsStore

log = logging.getLogger(__name__)


class ReportNotifier(Protocol):
    """Who tells a reporter that their report was handled (the notifications feature
    plugs in here; the node's default tells nobody)."""

    def report_handled(self, account_id: int, report_id: int) -> None: ...


class NoNotifier:
    def report_handled(self, account_id: int, report_id: int) -> None:
        return None


class ReportDesk:
    def __init__(
        self,
        *,
        store: ReportStore,
        accounts: AccountDirectory,
        stage: Stage,
        fediverse: Fediverse,
        settings: SettingsStore,
        operators: Operators,
        notifier: ReportNotifier | None = None,
    ) -> None:
        self.store = store
        self.notifier: ReportNotifier = notifier or NoNotifier()
        self.accounts = accounts
        self.stage = stage
        self.fediverse = fediverse
        self.settings = settings
        self.operators = operators
        self.base_url = stage.base_url
        self.own_host = netloc(self.base_url)

    # -- our users' reports -----------------------------------------------------------

    def _rule(self, value: Any) -> str:
        rule = text_of("rule", value, 300)
        rules = self.settings.current().rules
        if rule and rules and rule not in rules:
            raise InvalidInput("rule", "must be one of the node's rules (GET /api/v1/about)")
        return rule

    def _account_target(self, value: Any) -> str:
        name = member_name(value, self.own_host)
        if "@" not in name:
            account = self.accounts.get(name)
            if account.status is AccountStatus.DELETED:
                raise NotFound(f"no account {name}")
        return name

    async def file(self, reporter: Account, body: dict[str, Any]) -> Report:
        kind = parse_target(body.get("target"))
        comment = text_of("comment", body.get("comment"), MAX_COMMENT)
        rule = self._rule(body.get("rule"))
        forward = body.get("forward", False)
        if not isinstance(forward, bool):
            raise InvalidInput("forward", "must be true or false")
        room_url: str | None = None
        room_title = ""
        if kind is ReportTarget.ACCOUNT:
            target = self._account_target(body.get("account"))
        else:
            room_id = body.get("room")
            if not isinstance(room_id, str) or not room_id:
                raise InvalidInput("room", "must be the id of a room on this node")
            on_air = self.stage.get(room_id)
            room = on_air.room
            room_url, room_title = on_air.carriage.origin, room.title
            if kind is ReportTarget.ROOM:
                target = room.host
            else:
                target = member_name(body.get("account"), self.own_host)
                if target not in room.members:
                    raise NotFound(f"{target} is not in this room")
        if target == reporter.username:
            raise InvalidInput("account", "you cannot report yourself")
        actor: str | None = None
        remote = None
        if "@" in target:
            if forward:
                # Before anything is stored: a report that cannot be forwarded is refused
                # whole rather than kept half done.
                remote = await self.fediverse.resolve_handle(target)
                actor = remote.id
        else:
            actor = ActorUrls.for_user(self.base_url, target).id
        report = self.store.add(
            NewReport(
                target_kind=kind,
                target_account=target,
                target_actor=actor,
                room_url=room_url,
                room_title=room_title,
                comment=comment,
                rule=rule,
                forward=remote is not None,
                reporter_id=reporter.id,
            )
        )
        assert report is not None
        if remote is not None:
            objects = [remote.id] + ([room_url] if room_url else [])
            content = comment + (f"\n\nRule broken: {rule}" if rule else "")
            flag_id = await self.fediverse.send_flag(remote, objects, content)
            self.store.set_flag(report.id, flag_id)
            log.info("report %d forwarded to %s as %s", report.id, remote.host, flag_id)
        log.info("report %d filed by %s about %s", report.id, reporter.username, target)
        return self.store.get(report.id)

    # -- other servers' reports (federation.ports.FlagReceiver) -----------------------

    def _ours(self, url: str) -> tuple[str, str] | None:
        """("account", username) or ("room", room id) if ``url`` is one of ours."""
        if netloc(url) != self.own_host:
            return None
        path = urlsplit(url).path.rstrip("/")
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "users":
            return "account", parts[2]
        if len(parts) == 3 and parts[1] == "rooms":
            return "room", parts[2]
        if len(parts) == 5 and parts[1] == "users" and parts[3] == "rooms":
            return "room", parts[4]  # a room's Note id
        return None

    async def receive_flag(self, flag: Flag) -> None:
        account: str | None = None
        room_id: str | None = None
        for url in flag.objects:
            found = self._ours(url)
            if found is None:
                continue
            if found[0] == "account" and account is None:
                account = found[1]
            elif found[0] == "room" and room_id is None:
                room_id = found[1]
        room_url, room_title, host = None, "", None
        if room_id is not None:
            rows = self.stage.store.rows("rooms.id = ?", [room_id])
            if rows:
                room_url = f"{self.base_url}/rooms/{room_id}"
                room_title, host = rows[0]["title"], rows[0]["host_username"]
        if account is not None:
            try:
                self.accounts.get(account)
            except NotFound:
                account = None
        if account is None and host is None:
            log.info("Flag %s from %s names nothing of ours", flag.id, flag.actor)
            return
        if host is not None and account in (None, host):
            kind, target = ReportTarget.ROOM, host
        elif room_url is not None:
            kind, target = ReportTarget.SPEAKER, account
        else:
            kind, target = ReportTarget.ACCOUNT, account
        filed = self.store.add(
            NewReport(
                target_kind=kind,
                target_account=target,
                target_actor=ActorUrls.for_user(self.base_url, target or "").id,
                room_url=room_url,
                room_title=room_title,
                comment=flag.content[:MAX_COMMENT],
                reporter_actor=flag.actor,
                forwarded_from=netloc(flag.actor),
                flag_id=flag.id,
            )
        )
        if filed is not None:
            log.info("report %d from %s (Flag %s)", filed.id, filed.forwarded_from, flag.id)

    # -- moderators -------------------------------------------------------------------

    def queue(self, actor: Account, state: Any) -> list[Report]:
        require_staff(actor)
        if state in (None, "", "all"):
            return self.store.recent()
        try:
            return self.store.recent(ReportState(state))
        except ValueError:
            raise InvalidInput("state", "must be open, resolved or all") from None

    async def resolve(self, actor: Account, report_id: int, body: dict[str, Any]) -> Report:
        """Resolve a report, doing ``action`` to its target on this node first; the
        report records who did what."""
        require_staff(actor)
        report = self.store.get(report_id)
        action = parse_action(body.get("action"))
        note = text_of("note", body.get("note"), MAX_ACTION_NOTE)
        done = await self._act(actor, report, action, note)
        taken = "; ".join(part for part in (done, note) if part) or "no action"
        self.store.resolve(report.id, actor.id, taken)
        self._tell_reporter(report)
        return self.store.get(report.id)

    def _tell_reporter(self, report: Report) -> None:
        """Our user who filed ``report`` hears it was handled (a Flag's reporter is on
        another server, anonymous: nobody here to tell)."""
        if report.reporter is None:
            return
        try:
            reporter = self.accounts.get(report.reporter)
        except NotFound:
            return
        try:
            self.notifier.report_handled(reporter.id, report.id)
        except Exception:
            # The report is resolved whatever a notification does.
            log.exception("notifying %s of report %d failed", report.reporter, report.id)

    async def _act(self, actor: Account, report: Report, action: ReportAction, note: str) -> str:
        if action is ReportAction.NONE:
            return ""
        if action is ReportAction.END_ROOM:
            on_air = self._local_room(report)
            await self.operators.end_room(actor, on_air, note or None)
            return f"ended the room {report.room_title!r} here"
        if not report.local_target or report.target_account is None:
            raise InvalidInput("action", "the reported account is not on this node")
        if action is ReportAction.SUSPEND:
            await self.operators.suspend(actor, report.target_account, note or None)
            return f"suspended {report.target_account}"
        self.operators.silence(actor, report.target_account, True)
        return f"silenced {report.target_account}"

    def _local_room(self, report: Report) -> str:
        """Our id of the reported room (ours, or our copy of another node's)."""
        if report.room_url is None:
            raise InvalidInput("action", "the report names no room")
        for on_air in self.stage.rooms_on_air.values():
            if report.room_url in (
                on_air.carriage.origin,
                f"{self.base_url}/rooms/{on_air.room.id}",
            ):
                return on_air.room.id
        raise NotFound("the reported room is not carried here now")

    def reopen(self, actor: Account, report_id: int) -> Report:
        require_staff(actor)
        return self.store.reopen(report_id)

    def of_reporter(self, reporter: Account) -> list[Report]:
        return self.store.of_reporter(reporter.id)
