"""What a login actor's mailbox carries: commands with their one reply, and its own observations.

Commands come from outside (the gateway, the validator) as :class:`Envelope`; the actor's own
attempt task and scan watcher send :class:`Observed` and :class:`AttemptEnded` into the same
mailbox, so one loop sees everything in order and is the only one to change the state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._inputs import Command, Observation
from ._state import LoginState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "AttemptEnded",
    "CommandReply",
    "Envelope",
    "Mail",
    "Mailbox",
    "Observed",
    "Wake",
    "refuse_mail",
]


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The answer to one command, sent once its first event is stored.

    ``extra``: more fields of the reply (a lease's ``lease_id``, ``fence``, ``sealed``...), or
    of its error (``holder`` and ``expires_at`` of ``leased``), merged into :meth:`to_json`.
    """

    ok: bool
    tenant: str
    attempt: int | None = None
    state: str | None = None
    error_code: str | None = None
    message: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def error(
        cls, tenant: str, code: str, message: str, extra: Mapping[str, object] | None = None
    ) -> CommandReply:
        return cls(ok=False, tenant=tenant, error_code=code, message=message, extra=extra or {})

    def to_json(self) -> dict[str, Any]:
        """The reply shape of docs/contract.md ("Requests and replies")."""
        if self.ok:
            return {
                "ok": True,
                "tenant": self.tenant,
                "attempt": self.attempt,
                "state": self.state,
                **self.extra,
            }
        error = {"code": self.error_code, "message": self.message or "", **self.extra}
        return {"ok": False, "error": error}


class _Stage(enum.Enum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    ANSWERED = "answered"


class Envelope:
    """A command in a mailbox and its reply, which is sent exactly once.

    The actor :meth:`claim`\\ s an envelope before it acts on it; whoever answers first wins,
    later answers are dropped. :meth:`expire` answers only an envelope nobody claimed yet,
    so a command answered ``unavailable`` because it waited too long never runs afterwards.
    """

    __slots__ = ("_reply", "_stage", "command", "trace")

    def __init__(
        self,
        command: Command,
        reply: Callable[[CommandReply], None],
        trace: str | None = None,
    ) -> None:
        self.command = command
        self.trace = trace
        self._reply = reply
        self._stage = _Stage.QUEUED

    def __repr__(self) -> str:  # the command's own repr hides a password
        return f"Envelope({self.command!r}, {self._stage.value})"

    @property
    def answered(self) -> bool:
        return self._stage is _Stage.ANSWERED

    def claim(self) -> bool:
        """Take the command to act on it: False if it was already answered (do not run it)."""
        if self._stage is not _Stage.QUEUED:
            return False
        self._stage = _Stage.CLAIMED
        return True

    def answer(self, reply: CommandReply) -> bool:
        """Send ``reply`` unless an answer was sent already; whether this one was sent."""
        if self._stage is _Stage.ANSWERED:
            return False
        self._stage = _Stage.ANSWERED
        self._reply(reply)
        return True

    def refuse(self, tenant: str, code: str, message: str) -> bool:
        """Answer with an error (a no-op once answered)."""
        return self.answer(CommandReply.error(tenant, code, message))

    def expire(self, tenant: str, message: str) -> bool:
        """Answer ``unavailable`` if nobody claimed the command yet; whether it did."""
        if self._stage is not _Stage.QUEUED:
            return False
        return self.refuse(tenant, "unavailable", message)


@dataclass(eq=False, slots=True)
class Observed:
    """What an attempt saw, sent to its actor's loop; the loop sends back the state after it.

    ``source`` is the attempt's handle: the loop ignores observations of any attempt but the
    current one (a restarted actor may find its predecessor's in the mailbox). ``answer``:
    the ``password`` command answered by the first event this observation stores. ``session``:
    the session string to save before ``Authorized`` is stored (never in a repr).
    """

    source: object
    observation: Observation
    answer: Envelope | None = None
    trace: str | None = None
    session: str | None = field(default=None, repr=False)
    _done: anyio.Event = field(default_factory=anyio.Event, repr=False)
    _state: tuple[LoginState, int] | None = field(default=None, repr=False)

    def resolve(self, state: LoginState, version: int) -> None:
        """Called by the loop once: ``state`` is the tenant's state after the observation,
        ``version`` grows with every change (the head's sequence)."""
        self._state = (state, version)
        self._done.set()

    async def result(self) -> tuple[LoginState, int]:
        """Wait for the loop's answer (cancelled with the attempt)."""
        await self._done.wait()
        assert self._state is not None  # noqa: S101 (set before the event)
        return self._state


@dataclass(frozen=True, eq=False, slots=True)
class AttemptEnded:
    """An attempt task finished by itself (its client is closed)."""

    source: object


@dataclass(frozen=True, slots=True)
class Wake:
    """A timer of the actor's loop fired (the lease timer): look at the clock again."""


Mail = Envelope | Observed | AttemptEnded | Wake


def refuse_mail(tenant: str, mail: Mail, code: str, why: str) -> None:
    """Answer ``mail`` that will never run (a command: error ``code``; the rest: nothing)."""
    if isinstance(mail, Envelope):
        mail.refuse(tenant, code, why)


class Mailbox(NamedTuple):
    """Both ends of an actor's bounded mailbox: it reads one and its attempt writes the other."""

    send: MemoryObjectSendStream[Mail]
    receive: MemoryObjectReceiveStream[Mail]
