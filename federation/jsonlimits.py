"""JSON from outside, with a nesting limit.

``json.loads`` recurses once per level: 100,000 nested arrays (200 KB) raise
RecursionError, and a document a little shallower than that parses but makes every later
recursive walk (``json.dumps`` when it is stored, ``dict(...)`` copies) fail the same way.
Nothing we accept nests deeper than a dozen levels, so anything past
:data:`MAX_JSON_DEPTH` is refused as malformed, before or after parsing.
"""

from __future__ import annotations

import json
from typing import Any

from federation.errors import ActivityParseError

MAX_JSON_DEPTH = 64


class JsonTooDeep(ActivityParseError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels", None)
        self.limit = limit


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests containers deeper than ``limit``; iterative,
    so it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises ActivityParseError (JsonTooDeep for nesting) instead of
    ValueError, UnicodeDecodeError or RecursionError."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ActivityParseError(f"malformed JSON: {exc}", None) from None
    if json_depth_exceeds(value, max_depth):
        raise JsonTooDeep(max_depth)
    return value
