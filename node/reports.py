"""Reports: what a user (or another server, by a ``Flag``) tells the node's moderators.

A report names its target (an account, a room, or a speaker in a room; on this node or
another), a comment and the rule broken. Life: ``open -> resolved`` (by a moderator, who
says what was done), ``resolved -> open`` (reopened); nothing else. Pure: storage is
node.store.reports, filing and forwarding node.moderation.reports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from node.errors import IllegalTransition, InvalidInput

MAX_COMMENT = 1000
MAX_ACTION_NOTE = 500


class ReportTarget(enum.StrEnum):
    ACCOUNT = "account"
    ROOM = "room"
    SPEAKER = "speaker"


class ReportState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


REPORT_TRANSITIONS: dict[ReportState, frozenset[ReportState]] = {
    ReportState.OPEN: frozenset({ReportState.RESOLVED}),
    ReportState.RESOLVED: frozenset({ReportState.OPEN}),
}


def check_transition(current: ReportState, target: ReportState) -> None:
    if target not in REPORT_TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value)


class ReportAction(enum.StrEnum):
    """What a moderator may do to a report's target while resolving it."""

    NONE = "none"
    SUSPEND = "suspend"
    SILENCE = "silence"
    END_ROOM = "end_room"


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    target_kind: ReportTarget
    target_account: str | None
    """``username`` of ours, or ``user@host`` of another server."""
    target_actor: str | None
    room_url: str | None
    room_title: str
    comment: str
    rule: str
    forward: bool
    forwarded_from: str | None
    """The server a Flag came from (``host[:port]``); None for our users' reports."""
    reporter: str | None
    """Our user who filed it; None for a Flag (other servers keep reporters anonymous)."""
    state: ReportState
    action_taken: str
    resolved_by: str | None
    resolved_at: float | None
    created_at: float
    flag_id: str | None

    @property
    def local_target(self) -> bool:
        return self.target_account is not None and "@" not in self.target_account

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": {
                "kind": self.target_kind.value,
                "account": self.target_account,
                "actor": self.target_actor,
                "room_url": self.room_url,
                "room_title": self.room_title,
                "local": self.local_target,
            },
            "comment": self.comment,
            "rule": self.rule,
            "forward": self.forward,
            "forwarded_from": self.forwarded_from,
            "reporter": self.reporter,
            "state": self.state.value,
            "action_taken": self.action_taken,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
            "created_at": self.created_at,
        }

    def for_reporter(self) -> dict[str, Any]:
        """What the reporter sees of their own report (not who resolved it)."""
        doc = self.to_json()
        doc.pop("resolved_by")
        return doc


def text_of(field: str, value: Any, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    return value


def parse_target(value: Any) -> ReportTarget:
    try:
        return ReportTarget(value)
    except ValueError:
        raise InvalidInput("target", "must be 'account', 'room' or 'speaker'") from None


def parse_action(value: Any) -> ReportAction:
    if value is None:
        return ReportAction.NONE
    try:
        return ReportAction(value)
    except ValueError:
        choices = ", ".join(a.value for a in ReportAction)
        raise InvalidInput("action", f"must be one of {choices}") from None
