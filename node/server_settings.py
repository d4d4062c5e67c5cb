"""What an admin says about the node on the admin page: its name, description, rules,
contact account and registration mode. Shown on /about, in NodeInfo ``metadata`` and
wherever the node introduces itself. Pure: validation and defaults; kept by
node.store.settings (node.toml's ``[accounts] registration`` is the default until an
admin picks one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, get_args

from node.accounts import validate_username
from node.config import Registration
from node.errors import InvalidInput

MAX_NAME = 80
MAX_DESCRIPTION = 2000
MAX_RULE = 300
MAX_RULES = 20
REGISTRATION_MODES: tuple[str, ...] = get_args(Registration)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    name: str
    """Empty: the node's host stands for its name."""
    description: str
    rules: tuple[str, ...]
    contact: str
    """Username of the contact account, or empty."""
    registration: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "rules": list(self.rules),
            "contact": self.contact,
            "registration": self.registration,
        }

    def changed(self, body: dict[str, Any]) -> ServerSettings:
        """These settings with the fields of ``body`` (a PATCH), validated."""
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key == "name":
                changes[key] = _text(key, value, MAX_NAME)
            elif key == "description":
                changes[key] = _text(key, value, MAX_DESCRIPTION)
            elif key == "rules":
                changes[key] = _rules(value)
            elif key == "contact":
                changes[key] = "" if value in (None, "") else validate_username(value)
            elif key == "registration":
                if value not in REGISTRATION_MODES:
                    raise InvalidInput(key, "must be 'open', 'approval' or 'closed'")
                changes[key] = value
            else:
                raise InvalidInput(key, "unknown setting")
        return replace(self, **changes)


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    return value


def _rules(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise InvalidInput("rules", f"must be a list of at most {MAX_RULES} rules")
    rules = []
    for rule in value:
        if not isinstance(rule, str) or len(rule.strip()) > MAX_RULE:
            raise InvalidInput("rules", f"each rule is text of at most {MAX_RULE} characters")
        if rule.strip():
            rules.append(rule.strip())
    return tuple(rules)
