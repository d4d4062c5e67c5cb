"""Who may do what on the admin page.

- admins: everything;
- moderators: the dashboard, reports, sign-ups, rooms, and suspending or silencing *users*
  (never other staff); not roles, server settings, domain blocks, deletions or password
  links (a moderator who could reset an admin's password could become one);
- users: nothing of it (403).
"""

from __future__ import annotations

from node.accounts import Account, AccountRole
from node.errors import Forbidden


def require_staff(account: Account) -> None:
    if not account.role.staff or not account.active:
        raise Forbidden("only the node's admins and moderators may do this")


def require_admin(account: Account) -> None:
    if account.role is not AccountRole.ADMIN or not account.active:
        raise Forbidden("only the node's admins may do this")


def require_power_over(actor: Account, target: Account) -> None:
    """``actor`` (staff) may act on ``target``'s account: never on themselves; admins on
    anyone else; moderators on users only."""
    require_staff(actor)
    if actor.id == target.id:
        raise Forbidden("you cannot do this to your own account")
    if actor.role is not AccountRole.ADMIN and target.role is not AccountRole.USER:
        raise Forbidden(f"a moderator cannot do this to a {target.role.value}")
