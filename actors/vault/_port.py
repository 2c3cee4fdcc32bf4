"""The session vault's port: what the actors ask of it, what it stores, what it raises.

A vault keeps each tenant's Telethon session string encrypted at rest. Session strings and keys
never appear in a log line, an error message or a repr. This module imports no store and no
cipher: the adapters are :mod:`._kv` (JetStream KV) and :mod:`._memory` (the verified fake).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "RotateProgress",
    "SessionVault",
    "Stage",
    "VaultCorruptError",
    "VaultEntry",
    "VaultError",
    "VaultKeyError",
    "VaultUnavailableError",
    "session_fingerprint",
]

Stage = Literal["pre_auth", "authorized", "proxy"]
"""``proxy`` marks a tenant's sealed proxy URL, kept beside its session (never in its place)."""

RotateProgress = Callable[[int, int], None]
"""``(done, total)``: entries handled so far out of those listed when the work began."""


class VaultError(Exception):
    """Base class of every error the vault raises."""


class VaultKeyError(VaultError):
    """Raised when the configured keys are missing or invalid, or cannot decrypt a stored value.

    The message names the tenant (or the key source) but never holds key material or a session.
    """


class VaultCorruptError(VaultError):
    """Raised when a value decrypts but is not a session document of the tenant it is stored under.

    Only a holder of the key can produce such a value: a bug, or a value moved between tenants.
    """


class VaultUnavailableError(VaultError):
    """Raised when the backing store does not answer (timeouts, no responders, 503, closed)."""


@dataclass(frozen=True, slots=True)
class VaultEntry:
    """A stored session; its repr and str show the stage only, never the session."""

    session: str = field(repr=False)
    stage: Stage


class SessionVault(Protocol):
    """Where the actors keep their tenants' Telethon sessions.

    Every method may block on the store and raises :class:`VaultUnavailableError` when it does
    not answer; tenant ids are validated (``InvalidTenantError``).
    """

    async def put(self, tenant: str, session: str, *, stage: Stage) -> None:
        """Store ``tenant``'s session (replacing any), encrypted with the newest key."""
        ...

    async def get(self, tenant: str) -> VaultEntry | None:
        """The stored session, or None. Raises VaultKeyError, VaultCorruptError."""
        ...

    async def delete(self, tenant: str) -> None:
        """Forget ``tenant``'s session; deleting a missing one is not an error."""
        ...

    async def tenants(self) -> list[str]:
        """The tenants with a stored session, sorted."""
        ...

    async def put_proxy(self, tenant: str, url: str) -> None:
        """Store ``tenant``'s proxy URL (credentials included), sealed like a session."""
        ...

    async def get_proxy(self, tenant: str) -> str | None:
        """The stored proxy URL, or None. Raises VaultKeyError, VaultCorruptError."""
        ...

    async def delete_proxy(self, tenant: str) -> None:
        """Forget ``tenant``'s proxy; deleting a missing one is not an error."""
        ...

    async def rotate(self, *, on_progress: RotateProgress | None = None) -> int:
        """Re-encrypt every entry with the newest key; returns how many were re-encrypted.

        ``on_progress(done, total)`` is called after each entry (one deleted meanwhile counts
        as done), ending with ``done == total``; it names no tenant.

        Raises VaultKeyError (and changes nothing more) at the first entry no key decrypts.
        """
        ...


def session_fingerprint(session: str) -> str:
    """A short, stable, non-reversible id of a session (for ``Authorized.session_fingerprint``)."""
    return hashlib.sha256(session.encode()).hexdigest()[:16]
