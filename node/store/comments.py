"""Comments in rooms (``room_comments``) and likes and boosts of rooms' objects
(``room_engagement``). node.fediverse.comments decides what goes in."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

from node.comments import Comment


def _comment(row: Any) -> Comment:
    return Comment(
        id=row[0],
        author=row[1],
        handle=row[2],
        name=row[3],
        content=row[4],
        url=row[5],
        in_reply_to=row[6],
        published=float(row[7]),
        hidden=bool(row[8]),
        local=bool(row[9]),
    )


_COLUMNS = "id, author, handle, name, content, url, in_reply_to, published, hidden, local"


class CommentStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def save(self, room_id: str, comment: Comment) -> bool:
        """Insert, or update the text of an edited reply; False if it was hidden or
        belongs to another room or author (ids are never reused for something else)."""
        row = self._db.execute(
            "select room_id, author, hidden from room_comments where id = ?", [comment.id]
        ).fetchone()
        if row is not None:
            if row[0] != room_id or row[1] != comment.author or row[2]:
                return False
            self._db.execute(
                "update room_comments set content = ?, name = ?, handle = ? where id = ?",
                [comment.content, comment.name, comment.handle, comment.id],
            )
            return True
        self._db.execute(
            f"insert into room_comments ({_COLUMNS}, room_id, created_at) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                comment.id,
                comment.author,
                comment.handle,
                comment.name,
                comment.content,
                comment.url,
                comment.in_reply_to,
                comment.published,
                int(comment.hidden),
                int(comment.local),
                room_id,
                time.time(),
            ],
        )
        return True

    def room_of(self, comment_id: str) -> str | None:
        row = self._db.execute(
            "select room_id from room_comments where id = ?", [comment_id]
        ).fetchone()
        return None if row is None else str(row[0])

    def hide(self, comment_id: str) -> None:
        self._db.execute("update room_comments set hidden = 1 where id = ?", [comment_id])

    def delete(self, comment_id: str, author: str) -> str | None:
        """Its author deleted it: the room it was in, or None."""
        row = self._db.execute(
            "select room_id from room_comments where id = ? and author = ?", [comment_id, author]
        ).fetchone()
        if row is None:
            return None
        self._db.execute("delete from room_comments where id = ?", [comment_id])
        return str(row[0])

    def of_room(
        self, room_id: str, *, limit: int, before: float | None = None, hidden: bool = False
    ) -> list[Comment]:
        """Newest first."""
        sql = f"select {_COLUMNS} from room_comments where room_id = ?"
        params: list[Any] = [room_id]
        if not hidden:
            sql += " and hidden = 0"
        if before is not None:
            sql += " and published < ?"
            params.append(before)
        sql += " order by published desc limit ?"
        params.append(limit)
        return [_comment(r) for r in self._db.execute(sql, params).fetchall()]

    # -- likes and boosts ------------------------------------------------------------------

    def add_engagement(
        self, room_id: str, object_id: str, actor: str, kind: str, activity_id: str
    ) -> None:
        self._db.execute(
            "insert or ignore into room_engagement (room_id, object_id, actor, kind, "
            "activity_id, created_at) values (?, ?, ?, ?, ?, ?)",
            [room_id, object_id, actor, kind, activity_id, time.time()],
        )

    def remove_engagement(self, kind: str, actor: str, object_id: str | None) -> str | None:
        """The room whose count changed, or None."""
        sql = "select room_id, object_id from room_engagement where kind = ? and actor = ?"
        params: list[Any] = [kind, actor]
        if object_id is not None:
            sql += " and object_id = ?"
            params.append(object_id)
        row = self._db.execute(sql + " limit 1", params).fetchone()
        if row is None:
            return None
        self._db.execute(
            "delete from room_engagement where kind = ? and actor = ? and object_id = ?",
            [kind, actor, row[1]],
        )
        return str(row[0])

    def counts(self, room_id: str) -> tuple[int, int]:
        """(likes, boosts) of the room's objects; one per person and object."""
        rows = dict(
            self._db.execute(
                "select kind, count(*) from room_engagement where room_id = ? group by kind",
                [room_id],
            ).fetchall()
        )
        return int(rows.get("like", 0)), int(rows.get("boost", 0))
