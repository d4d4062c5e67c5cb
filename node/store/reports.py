"""The reports queue (table ``reports``); node.reports says what a report is."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from node.errors import NotFound
from node.reports import Report, ReportState, ReportTarget, check_transition

_SELECT = (
    "select r.*, reporter.username as reporter_name, resolver.username as resolver_name "
    "from reports r left join accounts reporter on reporter.id = r.reporter_id "
    "left join accounts resolver on resolver.id = r.resolved_by"
)


@dataclass(frozen=True, slots=True)
class NewReport:
    target_kind: ReportTarget
    target_account: str | None
    target_actor: str | None
    room_url: str | None
    room_title: str
    comment: str
    rule: str = ""
    forward: bool = False
    reporter_id: int | None = None
    reporter_actor: str | None = None
    forwarded_from: str | None = None
    flag_id: str | None = None


def _report(row: dict[str, Any]) -> Report:
    return Report(
        id=row["id"],
        target_kind=ReportTarget(row["target_kind"]),
        target_account=row["target_account"],
        target_actor=row["target_actor"],
        room_url=row["room_url"],
        room_title=row["room_title"] or "",
        comment=row["comment"] or "",
        rule=row["rule"] or "",
        forward=bool(row["forward"]),
        forwarded_from=row["forwarded_from"],
        reporter=row["reporter_name"],
        state=ReportState(row["state"]),
        action_taken=row["action_taken"] or "",
        resolved_by=row["resolver_name"],
        resolved_at=row["resolved_at"],
        created_at=row["created_at"],
        flag_id=row["flag_id"],
    )


class ReportStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def add(self, new: NewReport) -> Report | None:
        """File a report; None when a Flag with the same id was filed already (servers
        deliver again until they hear a 2xx)."""
        try:
            cursor = self._db.execute(
                "insert into reports (reporter_id, reporter_actor, forwarded_from, target_kind, "
                "target_account, target_actor, room_url, room_title, comment, rule, forward, "
                "flag_id, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    new.reporter_id,
                    new.reporter_actor,
                    new.forwarded_from,
                    new.target_kind.value,
                    new.target_account,
                    new.target_actor,
                    new.room_url,
                    new.room_title,
                    new.comment,
                    new.rule,
                    int(new.forward),
                    new.flag_id,
                    time.time(),
                ],
            )
        except sqlite3.IntegrityError:
            return None
        assert cursor.lastrowid is not None
        return self.get(cursor.lastrowid)

    def get(self, report_id: int) -> Report:
        rows = [dict(r) for r in self._db.query(f"{_SELECT} where r.id = ?", [report_id])]
        if not rows:
            raise NotFound(f"no report #{report_id}")
        return _report(rows[0])

    def recent(self, state: ReportState | None = None, limit: int = 100) -> list[Report]:
        where, params = ("where r.state = ?", [state.value]) if state else ("", [])
        sql = f"{_SELECT} {where} order by r.id desc limit ?"
        return [_report(dict(r)) for r in self._db.query(sql, [*params, limit])]

    def of_reporter(self, reporter_id: int, limit: int = 100) -> list[Report]:
        sql = f"{_SELECT} where r.reporter_id = ? order by r.id desc limit ?"
        return [_report(dict(r)) for r in self._db.query(sql, [reporter_id, limit])]

    def set_flag(self, report_id: int, flag_id: str) -> None:
        self._db.execute("update reports set flag_id = ? where id = ?", [flag_id, report_id])

    def resolve(self, report_id: int, by: int, action_taken: str) -> Report:
        report = self.get(report_id)
        check_transition(report.state, ReportState.RESOLVED)
        self._db.execute(
            "update reports set state = 'resolved', action_taken = ?, resolved_by = ?, "
            "resolved_at = ? where id = ?",
            [action_taken, by, time.time(), report_id],
        )
        return self.get(report_id)

    def reopen(self, report_id: int) -> Report:
        report = self.get(report_id)
        check_transition(report.state, ReportState.OPEN)
        self._db.execute(
            "update reports set state = 'open', resolved_at = null where id = ?", [report_id]
        )
        return self.get(report_id)

    def count_open(self) -> int:
        row = self._db.execute("select count(*) from reports where state = 'open'").fetchone()
        return int(row[0])
