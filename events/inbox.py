"""Which reply subjects tgqr answers (README, "Subjects"; docs/security.md).

A requester chooses its request's reply subject, and a responder publishes there with its own
rights. tgqr's responders answer only subjects under an inbox prefix: ``_INBOX.`` (nats
clients' default), ``_INBOX_<name>.`` (a custom prefix, as tgqr's own roles use) or ``_R_.``
(what the server maps a reply to when a request crosses accounts). A request with any other
reply, or none, is not run at all: it is dropped and counted (:class:`ReplyGuard`). The
accounts of ``nats.conf`` already make a chosen reply harmless; this is the second wall, for an
open or single-account server.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["ReplyGuard", "is_inbox"]

log = logging.getLogger("tgqr.replies")

_INBOX: Final = re.compile(r"(?:_INBOX(?:_[A-Za-z0-9-]{1,32})?|_R_)\.[!-~]{1,200}")
_LOG_EVERY_S: Final = 10.0


def is_inbox(subject: str | None) -> bool:
    """Whether ``subject`` is a reply subject tgqr may publish an answer to."""
    return bool(subject) and _INBOX.fullmatch(subject or "") is not None


@dataclass
class ReplyGuard:
    """Counts the requests dropped for their reply subject; logs one line per interval.

    The line names the subject of the request and how many were dropped since the last line,
    never the reply subject the requester chose (it is the attacker's text)."""

    clock: Callable[[], float] = time.monotonic
    dropped: int = 0
    _unlogged: int = field(default=0, repr=False)
    _logged_at: float | None = field(default=None, repr=False)
    on_drop: Callable[[str], None] | None = field(default=None, repr=False)
    """Called with the request's subject for each drop (a metric counter)."""

    def allows(self, subject: str, reply: str | None) -> bool:
        """Whether to serve a request on ``subject`` with ``reply``; counts a refusal."""
        if is_inbox(reply):
            return True
        self.dropped += 1
        self._unlogged += 1
        if self.on_drop is not None:
            self.on_drop(subject)
        now = self.clock()
        if self._logged_at is None or now - self._logged_at >= _LOG_EVERY_S:
            log.warning(
                "dropped %d request(s) whose reply subject is not an inbox (last on %s)",
                self._unlogged,
                subject[:80],
            )
            self._unlogged = 0
            self._logged_at = now
        return False
