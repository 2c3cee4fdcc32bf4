"""The reply-subject guard of the endpoints (see :mod:`events.inbox`)."""

from __future__ import annotations

from events import ReplyGuard, is_inbox

__all__ = ["ReplyGuard", "allowed_reply", "is_inbox"]


def allowed_reply(subject: str | None) -> bool:
    """Whether an endpoint may answer (and run) a request whose reply subject is ``subject``."""
    return is_inbox(subject)
