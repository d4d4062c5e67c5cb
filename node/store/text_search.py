"""Substring search in SQLite: a user's text as a LIKE pattern with its wildcards escaped
(used with ``escape '\\'``), so ``50%`` or ``a_b`` match themselves."""

from __future__ import annotations


def like_escape(text: str) -> str:
    """``text`` with SQL LIKE's wildcards escaped (for ``escape '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """The LIKE pattern of every value that contains ``text``."""
    return "%" + like_escape(text) + "%"
