"""Rooms: the life cycle graph, roles, hands and invitations. No I/O frameworks here.

A `Room` is the authoritative state of one room on its node. Every method that changes
state takes the acting username, checks the permission, changes the state and emits an
event dict to the room's listeners (the web layer sends them over WebSockets; the media
layer reacts to mutes and role changes). node.store.rooms persists the durable part
(title, life cycle, blocks); `replicate` makes a room what a room JSON of another node says.

Permissions, in the spirit of Spaces:
- host: everything; cannot be moved, removed or blocked; the only one who starts/ends
  the room and makes cohosts.
- cohost: invites to speak, mutes, moves speakers back to the audience, removes and blocks
  speakers and listeners (not the host, not other cohosts); edits title/description.
- speaker: speaks, self-mutes, may step down to the audience.
- listener: raises and lowers a hand, accepts or declines an invitation.

Someone removed or blocked stays out for the room's life (``blocked``), on every node that
carries it (the set travels in relay snapshots). A room's ``policy`` (node.onair.admission)
adds the node's own rules: the host's personal blocks, servers whose users may not speak.
How a room ended is kept (``ending``): by its host, by the operator of a node (which ends
it on that node only; node.relaying tells the others), or by the node itself.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from federation.sanitize import plain_text
from node.comments import Comment, CommentBoard
from node.errors import (
    Conflict,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    RateLimited,
)
from node.reactions import RAISED_HAND, REACTIONS, ReactionLimiter
from node.room_summary import RoomStats

MAX_TITLE = 120
MAX_DESCRIPTION = 1000
MAX_MEMBER_NAME = 64
"""A replicated member's display name is cut to this (accounts' own limit, as
node.accounts.MAX_DISPLAY_NAME, which this layer does not import)."""
MAX_REASON = 500

Event = dict[str, Any]


class RoomState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


# The declared life cycle; anything else raises IllegalTransition.
TRANSITIONS: dict[RoomState, frozenset[RoomState]] = {
    RoomState.SCHEDULED: frozenset({RoomState.LIVE, RoomState.ENDED}),
    RoomState.LIVE: frozenset({RoomState.ENDED}),
    RoomState.ENDED: frozenset(),
}


class Role(enum.StrEnum):
    HOST = "host"
    COHOST = "cohost"
    SPEAKER = "speaker"
    LISTENER = "listener"


ON_STAGE = frozenset({Role.HOST, Role.COHOST, Role.SPEAKER})
MODERATORS = frozenset({Role.HOST, Role.COHOST})


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"


class EndedBy(enum.StrEnum):
    HOST = "host"
    """The host ended it: it ends on every node that carries it."""
    OPERATOR = "operator"
    """The operator of a node (``node``) stopped carrying it there; it goes on elsewhere."""
    NODE = "node"
    """The node ended it by itself (the host did not come back, nobody carries it on)."""


@dataclass(frozen=True, slots=True)
class Ending:
    by: EndedBy
    node: str = ""
    """``host[:port]`` of the node that ended it (for ``OPERATOR`` and ``NODE``)."""
    reason: str = ""
    carried_on: tuple[str, ...] = ()
    """Where the room may go on (URLs of its copies on the nodes that relayed it)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by.value,
            "node": self.node,
            "reason": self.reason,
            "carried_on": list(self.carried_on),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Ending | None:
        """An ending as another node's room JSON says it (plain text only)."""
        if not isinstance(doc, dict):
            return None
        try:
            by = EndedBy(str(doc.get("by")))
        except ValueError:
            return None
        carried = doc.get("carried_on")
        return cls(
            by,
            plain_text(str(doc.get("node") or ""), 255),
            plain_text(str(doc.get("reason") or ""), MAX_REASON),
            tuple(str(u) for u in carried[:32] if isinstance(u, str))
            if isinstance(carried, list)
            else (),
        )


class RoomPolicy(Protocol):
    """The node's own rules for a room it carries (node.onair.admission)."""

    def admits(self, room: Room, username: str) -> str | None:
        """None if ``username`` may join; else why not (the host blocked them...)."""
        ...

    def may_speak(self, room: Room, username: str) -> bool:
        """May ``username`` come on stage (not from a silenced server)?"""
        ...

    def host_blocked(self, room: Room, username: str) -> None:
        """The host blocked ``username`` in the room: keep them out of the host's rooms."""
        ...


class OpenDoors:
    """No rules beyond the room's own (tests, rooms seen from afar)."""

    def admits(self, room: Room, username: str) -> str | None:
        return None

    def may_speak(self, room: Room, username: str) -> bool:
        return True

    def host_blocked(self, room: Room, username: str) -> None:
        return None


OPEN_DOORS = OpenDoors()


@dataclass(slots=True)
class Member:
    username: str
    display_name: str
    role: Role = Role.LISTENER
    muted: bool = False
    hand_raised_at: float | None = None
    invited: bool = False
    connections: int = 0
    publishing: bool = False
    csrc: int | None = None
    """The contributing source (RTP CSRC) naming this member in the room's audio once they
    spoke (see Room.csrc_for)."""

    @property
    def on_stage(self) -> bool:
        return self.role in ON_STAGE

    def to_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "muted": self.muted,
            "hand_raised": self.hand_raised_at is not None,
            "invited": self.invited,
            "connected": self.connections > 0 or self.publishing,
            "publishing": self.publishing,
            "csrc": self.csrc,
        }


def valid_csrc(value: Any) -> int | None:
    """A CSRC from a room JSON (another node's), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 0xFFFFFFFF:
        return value
    return None


def validate_title(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("title", "must be a string")
    value = value.strip()
    if not value:
        raise InvalidInput("title", "must not be empty")
    if len(value) > MAX_TITLE:
        raise InvalidInput("title", f"at most {MAX_TITLE} characters")
    return value


def validate_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("description", "must be a string")
    value = value.strip()
    if len(value) > MAX_DESCRIPTION:
        raise InvalidInput("description", f"at most {MAX_DESCRIPTION} characters")
    return value


def validate_visibility(value: Any) -> Visibility:
    if value is None:
        return Visibility.PUBLIC
    try:
        return Visibility(value)
    except ValueError:
        raise InvalidInput("visibility", "must be 'public' or 'unlisted'") from None


@dataclass
class Room:
    id: str
    host: str
    host_display_name: str
    title: str
    description: str = ""
    visibility: Visibility = Visibility.PUBLIC
    state: RoomState = RoomState.SCHEDULED
    max_speakers: int = 10
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    members: dict[str, Member] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    """Removed or blocked: out for the room's life."""
    listener_count: int = 0
    ending: Ending | None = None
    policy: RoomPolicy = OPEN_DOORS
    member_extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What this node knows of some members beyond the room's state, merged into their
    JSON here and never replicated: a visitor's avatar on this node, who verified them
    (node.visitors)."""
    owner: str = ""
    """The account that created the room (its announcements and recording are theirs);
    the host may change (``hand_over``, ``take_host``), the owner does not."""
    starts_at: float | None = None
    recording: bool = False
    """Decided before the room goes live (consent): everyone sees it while live."""
    cancelled: bool = False
    """Ended before it went live."""
    host_away_until: float | None = None
    """The host left without ending the room: it ends then unless they (or a cohost who
    takes over as host) come back (node.onair.local_mix)."""
    announcement: str | None = None
    """The object id our users reply to when they comment (the room's public Note)."""
    summary: dict[str, Any] | None = None
    board: CommentBoard = field(default_factory=CommentBoard)
    stats: RoomStats = field(default_factory=RoomStats)
    reactions: ReactionLimiter = field(default_factory=ReactionLimiter)
    clock: Callable[[], float] = time.time
    csrcs: dict[str, int] = field(default_factory=dict)
    """Username -> CSRC, kept for the room's life (a speaker who leaves and comes back is
    named by the same number)."""
    _subscribers: list[Callable[[Event], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.owner = self.owner or self.host
        # Everyone comes on stage muted, the host included (as on Spaces): a microphone
        # is never live before its owner says so.
        self.members.setdefault(
            self.host, Member(self.host, self.host_display_name, role=Role.HOST, muted=True)
        )

    # Events ----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _emit(self, event: Event) -> None:
        for callback in list(self._subscribers):
            callback(event)

    def _member_changed(self, member: Member) -> None:
        if member.on_stage and self.state is RoomState.LIVE:
            self.stats.on_stage(member.username, member.display_name)
        self._emit({"type": "member", "member": self.member_json(member)})

    def member_json(self, member: Member) -> dict[str, Any]:
        extras = self.member_extras.get(member.username)
        return {**member.to_json(), **extras} if extras else member.to_json()

    # Queries ---------------------------------------------------------------------------

    @property
    def stage(self) -> list[Member]:
        order = {Role.HOST: 0, Role.COHOST: 1, Role.SPEAKER: 2}
        return sorted(
            (m for m in self.members.values() if m.on_stage),
            key=lambda m: (order[m.role], m.username),
        )

    @property
    def hands(self) -> list[Member]:
        raised = [m for m in self.members.values() if m.hand_raised_at is not None]
        return sorted(raised, key=lambda m: m.hand_raised_at or 0.0)

    @property
    def host_present(self) -> bool:
        host = self.members[self.host]
        return host.connections > 0 or host.publishing

    def member(self, username: str) -> Member:
        try:
            return self.members[username]
        except KeyError:
            raise NotFound(f"{username} is not in this room") from None

    def role_of(self, username: str | None) -> Role | None:
        if username is None or username not in self.members:
            return None
        return self.members[username].role

    def can_publish(self, username: str) -> bool:
        return self.state is RoomState.LIVE and self.role_of(username) in ON_STAGE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "visibility": self.visibility.value,
            "state": self.state.value,
            "host": {"username": self.host, "display_name": self.host_display_name},
            "speakers": [self.member_json(m) for m in self.stage],
            "audience": [
                self.member_json(m)
                for m in sorted(self.members.values(), key=lambda m: m.username)
                if not m.on_stage
            ],
            "hands": [m.username for m in self.hands],
            "listener_count": self.listener_count,
            "max_speakers": self.max_speakers,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "ended_by": self.ending.to_json() if self.ending is not None else None,
            "starts_at": self.starts_at,
            "recording": self.recording,
            "cancelled": self.cancelled,
            "host_away_until": self.host_away_until,
            "announcement": self.announcement,
            "comments": self.board.to_json(),
            "summary": self.summary,
        }

    # Permission checks -----------------------------------------------------------------

    def _require_moderator(self, actor: str) -> Role:
        role = self.role_of(actor)
        if role not in MODERATORS:
            raise Forbidden("only the host or a cohost may do this")
        assert role is not None
        return role

    def _require_host(self, actor: str) -> None:
        if actor != self.host:
            raise Forbidden("only the host may do this")

    def _require_power_over(self, actor: str, target: Member) -> None:
        actor_role = self._require_moderator(actor)
        if target.role is Role.HOST or (
            target.role is Role.COHOST and actor_role is not Role.HOST
        ):
            raise Forbidden(f"a {actor_role.value} cannot do this to the {target.role.value}")

    def _require_live(self) -> None:
        if self.state is not RoomState.LIVE:
            raise Conflict(f"the room is {self.state.value}, not live")

    # Life cycle ------------------------------------------------------------------------

    def _transition(self, target: RoomState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.state.value, target.value)
        was = self.state
        self.state = target
        if target is RoomState.LIVE:
            self.started_at = self.clock()
            for member in self.stage:
                self.stats.on_stage(member.username, member.display_name)
        elif target is RoomState.ENDED:
            self.ended_at = self.clock()
            self.host_away_until = None
            if was is RoomState.SCHEDULED:
                self.cancelled = True
            elif self.summary is None:
                self.summary = self.stats.summary(self.started_at, self.ended_at)
        self._emit({"type": "room", "room": self.to_json()})

    def start(self, actor: str) -> None:
        self._require_host(actor)
        self._transition(RoomState.LIVE)

    def end(self, actor: str | None, *, ending: Ending | None = None) -> None:
        """End the room; actor None means the node itself (host grace expired) or, with
        an ``OPERATOR`` ending, the node's operator."""
        if actor is not None:
            self._require_host(actor)
        if RoomState.ENDED not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.state.value, RoomState.ENDED.value)
        if ending is None:
            ending = Ending(EndedBy.HOST if actor is not None else EndedBy.NODE)
        self.ending = ending
        self._transition(RoomState.ENDED)

    def update(self, actor: str, changes: dict[str, Any]) -> None:
        self._require_moderator(actor)
        for key, value in changes.items():
            if key == "title":
                self.title = validate_title(value)
            elif key == "description":
                self.description = validate_description(value)
            elif key in ("starts_at", "recording"):
                if self.state is not RoomState.SCHEDULED:
                    raise Conflict(f"{key} is decided before the room goes live")
                if key == "recording":
                    if not isinstance(value, bool):
                        raise InvalidInput("recording", "must be true or false")
                    self.recording = value
                else:
                    # Parsed by node.schedule (the web layer): a time or None.
                    self.starts_at = None if value is None else float(value)
            else:
                raise InvalidInput(key, "unknown or read-only field")
        self._emit({"type": "room", "room": self.to_json()})

    # Presence --------------------------------------------------------------------------

    def connect(self, username: str, display_name: str) -> Member:
        if username in self.blocked:
            raise Forbidden("you are blocked from this room")
        if self.state is RoomState.ENDED:
            raise Conflict("the room has ended")
        if username not in self.members:
            refused = self.policy.admits(self, username)
            if refused is not None:
                # Out for the room's life, on every node carrying it (the kick travels).
                self.expel(username, blocked=True)
                raise Forbidden(refused)
        member = self.members.get(username)
        if member is None:
            member = self.members[username] = Member(
                username, display_name, csrc=self.csrcs.get(username)
            )
        member.connections += 1
        self._member_changed(member)
        return member

    def disconnect(self, username: str) -> None:
        member = self.members.get(username)
        if member is None:
            return
        member.connections = max(0, member.connections - 1)
        if member.connections == 0 and not member.on_stage and not member.publishing:
            del self.members[username]
            self._emit({"type": "member_left", "username": username})
        else:
            self._member_changed(member)

    def set_publishing(self, username: str, publishing: bool) -> None:
        member = self.members.get(username)
        if member is None or member.publishing == publishing:
            return
        member.publishing = publishing
        self._member_changed(member)

    def csrc_for(self, username: str) -> int:
        """The CSRC naming ``username`` in the room's program packets (RFC 3550): given
        the first time they are mixed, the same for the rest of the room's life. Clients
        map the CSRCs a WebRTC receiver reports to people with the members' ``csrc``."""
        csrc = self.csrcs.get(username)
        if csrc is None:
            csrc = self.csrcs[username] = max(self.csrcs.values(), default=0) + 1
        member = self.members.get(username)
        if member is not None and member.csrc != csrc:
            member.csrc = csrc
            self._member_changed(member)
        return csrc

    def set_listener_count(self, count: int, total: int | None = None) -> None:
        self.stats.listeners(count, total)
        if count != self.listener_count:
            self.listener_count = count
            self._emit({"type": "listeners", "count": count})

    # Hands and invitations -------------------------------------------------------------

    def raise_hand(self, username: str) -> None:
        self._require_live()
        member = self.member(username)
        if member.on_stage:
            raise Conflict("you are already on stage")
        if member.hand_raised_at is None:
            member.hand_raised_at = self.clock()
            self._member_changed(member)
            # The raised hand floats like a reaction (and counts as one in the summary).
            self.stats.reactions[RAISED_HAND] += 1
            self._emit({"type": "reaction", "username": username, "emoji": RAISED_HAND})

    def lower_hand(self, actor: str, username: str) -> None:
        member = self.member(username)
        if actor != username:
            self._require_moderator(actor)
        if member.hand_raised_at is not None:
            member.hand_raised_at = None
            self._member_changed(member)

    def _require_may_speak(self, username: str) -> None:
        if not self.policy.may_speak(self, username):
            raise Forbidden(f"{username} cannot speak here: this node limits their server")

    def _stage_full(self) -> bool:
        return len(self.stage) >= self.max_speakers

    def invite(self, actor: str, username: str) -> None:
        self._require_live()
        self._require_moderator(actor)
        member = self.member(username)
        if member.on_stage:
            raise Conflict(f"{username} is already on stage")
        self._require_may_speak(username)
        if self._stage_full():
            raise Conflict(f"the stage is full ({self.max_speakers} speakers)")
        member.invited = True
        self._member_changed(member)

    def answer_invitation(self, username: str, accept: bool) -> None:
        member = self.member(username)
        if not member.invited:
            raise Conflict("you have no invitation to speak")
        member.invited = False
        if accept:
            self._require_live()
            self._require_may_speak(username)
            if self._stage_full():
                self._member_changed(member)
                raise Conflict(f"the stage is full ({self.max_speakers} speakers)")
            member.role = Role.SPEAKER
            member.hand_raised_at = None
            # Spaces brings new speakers up muted; they unmute when ready.
            member.muted = True
        self._member_changed(member)

    # Moderation ------------------------------------------------------------------------

    def set_muted(self, actor: str, username: str, muted: bool) -> None:
        member = self.member(username)
        if actor != username:
            self._require_power_over(actor, member)
            if not muted:
                # As on Spaces, a moderator can silence a speaker but only the speaker
                # turns their own microphone back on.
                raise Forbidden("only the speaker can unmute themselves")
        elif not member.on_stage:
            raise Conflict("you are not on stage")
        if member.muted != muted:
            member.muted = muted
            self._member_changed(member)

    def set_role(self, actor: str, username: str, role: Role) -> None:
        member = self.member(username)
        if role is Role.HOST or member.role is Role.HOST:
            raise Forbidden("the host role cannot be given or taken")
        if actor == username and role is Role.LISTENER:
            pass  # anyone may step down to the audience
        elif role is Role.COHOST or member.role is Role.COHOST:
            self._require_host(actor)
        else:
            self._require_power_over(actor, member)
        if role in ON_STAGE and not member.on_stage:
            self._require_may_speak(username)
        if role in ON_STAGE and not member.on_stage and self._stage_full():
            raise Conflict(f"the stage is full ({self.max_speakers} speakers)")
        if role in ON_STAGE and not member.on_stage:
            member.muted = True
            member.hand_raised_at = None
        member.role = role
        member.invited = False
        self._member_changed(member)

    def remove(self, actor: str, username: str, *, block: bool = False) -> None:
        member = self.members.get(username)
        if member is not None:
            self._require_power_over(actor, member)
        else:
            self._require_moderator(actor)
            if username == self.host:
                raise Forbidden("the host cannot be removed")
        if block and actor == self.host:
            self.policy.host_blocked(self, username)
        self.expel(username, blocked=block)

    def expel(self, username: str, *, blocked: bool) -> None:
        """Out for the room's life, without a permission check: a moderator's removal
        (above), or the node's own rules (a refused join, a suspended server)."""
        if username == self.host:
            raise Forbidden("the host cannot be removed")
        self.blocked.add(username)
        if self.members.pop(username, None) is not None:
            self._emit({"type": "member_left", "username": username})
        self._emit({"type": "kicked", "username": username, "blocked": blocked})

    def to_audience(self, username: str) -> None:
        """Off the stage without a permission check: the node's own rules (the server
        of ``username`` was silenced here). The host stays."""
        member = self.members.get(username)
        if member is None or not member.on_stage or member.role is Role.HOST:
            return
        member.role = Role.LISTENER
        member.invited = False
        self._member_changed(member)

    # Reactions -------------------------------------------------------------------------

    def check_reaction(self, username: str, emoji: Any) -> str:
        """The reaction if ``username`` may send it now (a valid emoji, within the rate);
        raises InvalidInput or RateLimited (the drop is counted)."""
        if emoji not in REACTIONS:
            raise InvalidInput("emoji", "must be one of " + " ".join(REACTIONS))
        wait = self.reactions.take(username)
        if wait > 0:
            self.stats.reactions_dropped += 1
            raise RateLimited(wait)
        return str(emoji)

    def react(self, username: str, emoji: Any) -> None:
        self._require_live()
        self.member(username)
        emoji = self.check_reaction(username, emoji)
        self.stats.reactions[emoji] += 1
        self._emit({"type": "reaction", "username": username, "emoji": emoji})

    # Comments (replies to the room's announcements) -------------------------------------

    def add_comment(self, comment: Comment) -> None:
        """A reply arrived (checked and cleaned by node.fediverse.comments)."""
        if self.board.add(comment):
            self._emit({"type": "comment", "comment": comment.to_json()})

    def remove_comment(self, comment_id: str) -> None:
        """Its author deleted it."""
        if self.board.remove(comment_id):
            self._emit({"type": "comment_hidden", "id": comment_id})

    def hide_comment(self, actor: str, comment_id: str) -> None:
        self._require_moderator(actor)
        self.board.hide(comment_id)
        self._emit({"type": "comment_hidden", "id": comment_id})
        self._emit({"type": "pinned", "pinned": self.board.pinned})

    def pin(self, actor: str, comment_id: str | None, link: str | None, label: str) -> None:
        self._require_moderator(actor)
        self.board.pin(comment_id, link, label)
        self._emit({"type": "pinned", "pinned": self.board.pinned})

    def set_engagement(self, likes: int, boosts: int) -> None:
        if (likes, boosts) != (self.board.likes, self.board.boosts):
            self.board.likes, self.board.boosts = likes, boosts
            self._emit({"type": "engagement", "likes": likes, "boosts": boosts})

    # The host leaving ------------------------------------------------------------------

    def _make_host(self, member: Member, old_role: Role) -> None:
        old = self.members.get(self.host)
        if old is not None:
            old.role = old_role
            old.invited = False
            self._member_changed(old)
        member.role = Role.HOST
        member.hand_raised_at = None
        self.host = member.username
        self.host_display_name = member.display_name
        self.host_away_until = None
        self._member_changed(member)
        self._emit({"type": "room", "room": self.to_json()})

    def hand_over(self, actor: str, username: str) -> None:
        """The host leaves and gives the room to a cohost (then stays as a listener)."""
        self._require_live()
        self._require_host(actor)
        member = self.member(username)
        if member.role is not Role.COHOST:
            raise Conflict("hand the room to one of its cohosts")
        self._make_host(member, Role.LISTENER)

    def take_host(self, actor: str) -> None:
        """A cohost takes over as host while the host is away (the host comes back as a
        cohost)."""
        self._require_live()
        member = self.member(actor)
        if member.role is not Role.COHOST:
            raise Forbidden("only a cohost may take over as host")
        if self.host_away_until is None:
            raise Conflict("the host is here")
        self._make_host(member, Role.COHOST)

    def set_host_away(self, until: float | None) -> None:
        if until != self.host_away_until:
            self.host_away_until = until
            self._emit({"type": "host_away", "until": until})

    # Replication (a room carried from another node) -------------------------------------
    # A relaying node's copy follows the carrying node's events without permission checks:
    # the carrying node already checked them. These emit the same events as local changes.

    def replicate(
        self,
        *,
        title: str,
        description: str,
        state: RoomState,
        host: str,
        host_display_name: str,
        members: list[Member],
        listener_count: int,
        started_at: float | None,
        ending: Ending | None = None,
    ) -> None:
        self.title = title
        self.description = description
        if state is RoomState.ENDED and ending is not None and ending.by is EndedBy.OPERATOR:
            # An operator ends a room on their own node only: that node stops carrying
            # it (node.relaying); an ending of that kind never ends it here.
            state = self.state
        if state is not self.state and state in TRANSITIONS[self.state]:
            if state is RoomState.ENDED:
                self.ending = ending or Ending(EndedBy.HOST)
            self._transition(state)
        self.host = host
        self.host_display_name = host_display_name
        self.members = {m.username: m for m in members}
        self.csrcs.update((m.username, m.csrc) for m in members if m.csrc is not None)
        self.members.setdefault(host, Member(host, host_display_name, role=Role.HOST))
        self.listener_count = listener_count
        self.started_at = started_at if started_at is not None else self.started_at
        self._emit({"type": "room", "room": self.to_json()})

    def replicate_member(self, raw: dict[str, Any]) -> None:
        username = str(raw.get("username"))
        try:
            role = Role(str(raw.get("role")))
        except ValueError:
            return
        member = self.members.get(username)
        if member is None:
            member = self.members[username] = Member(username, username)
        member.display_name = plain_text(str(raw.get("display_name") or username), MAX_MEMBER_NAME)
        member.role = role
        member.muted = bool(raw.get("muted"))
        if raw.get("hand_raised"):
            member.hand_raised_at = member.hand_raised_at or self.clock()
        else:
            member.hand_raised_at = None
        member.invited = bool(raw.get("invited"))
        member.publishing = bool(raw.get("publishing"))
        member.connections = max(member.connections, 1) if raw.get("connected") else 0
        csrc = valid_csrc(raw.get("csrc"))
        if csrc is not None:
            member.csrc = self.csrcs[username] = csrc
        self._member_changed(member)

    def replicate_left(self, username: str) -> None:
        if self.members.pop(username, None) is not None:
            self._emit({"type": "member_left", "username": username})

    def replicate_kicked(self, username: str, blocked: bool) -> None:
        self.replicate_left(username)
        self.blocked.add(username)
        self._emit({"type": "kicked", "username": username, "blocked": blocked})

    def replicate_removed(self, usernames: set[str]) -> None:
        """Who the carrying node keeps out (a snapshot): out here too, for the room's
        life; members among them leave."""
        for username in usernames - self.blocked:
            self.blocked.add(username)
            if username in self.members and username != self.host:
                self.replicate_kicked(username, True)

    def reset_presence(self, connected: set[str], publishing: set[str]) -> None:
        """Who is connected and publishing, as this node knows it now (it took the room
        over: members it cannot see are not connected). Audience members gone from it
        leave the room."""
        for username, member in list(self.members.items()):
            member.connections = 1 if username in connected else 0
            member.publishing = username in publishing
            if not member.connections and not member.on_stage and not member.publishing:
                del self.members[username]
        self._emit({"type": "room", "room": self.to_json()})

    def replicate_listeners(self, count: int) -> None:
        if count != self.listener_count:
            self.listener_count = count
            self._emit({"type": "listeners", "count": count})


def new_room_id() -> str:
    return secrets.token_urlsafe(9)
