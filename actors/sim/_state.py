"""The simulated Telegram's accounts, login tokens and authorizations: pure and synchronous.

Everything is keyed by a :data:`KeyRef` = ``(dc_id, auth_key_id)``: authorization is per auth
key, and an auth key belongs to one DC. Time (``now``) and randomness are passed in. Errors
that Telegram would answer with ``rpc_error`` are raised as :class:`RpcFailure`; misuse of the
"phone" (``accept``) raises :class:`SimulatorError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._errors import RpcFailure, SimulatorError
from ._srp import Challenge, Verifier, new_challenge, verify

__all__ = [
    "Authorized",
    "KeyRef",
    "LoginResult",
    "MigrateTo",
    "PasswordInfo",
    "SimState",
    "TokenIssued",
    "User",
]

KeyRef = tuple[int, int]
_TOKEN_BYTES: Final = 32
# Expired tokens are forgotten this long after their expiry (a scan then says "unknown").
_TOKEN_GRACE_S: Final = 600.0

UNREGISTERED: Final = (401, "AUTH_KEY_UNREGISTERED")
PASSWORD_NEEDED: Final = (401, "SESSION_PASSWORD_NEEDED")


def _nothing() -> None:
    return None


@dataclass(slots=True)
class User:
    """An account: where it lives, and its 2FA verifier if it has a password."""

    user_id: int
    dc_id: int
    first_name: str
    access_hash: int
    hint: str = ""
    verifier: Verifier | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TokenIssued:
    """``auth.loginToken``: show this token until ``expires`` (unix time, server clock)."""

    token: bytes
    expires: int


@dataclass(frozen=True, slots=True)
class Authorized:
    """``auth.loginTokenSuccess`` / ``auth.authorization``: the key is now logged in."""

    user: User


@dataclass(frozen=True, slots=True)
class MigrateTo:
    """``auth.loginTokenMigrateTo``: import ``token`` on ``dc_id``."""

    dc_id: int
    token: bytes


LoginResult = TokenIssued | Authorized | MigrateTo


@dataclass(frozen=True, slots=True)
class PasswordInfo:
    """``account.password``: the user, and a fresh SRP challenge when 2FA is set."""

    user: User
    challenge: Challenge | None


@dataclass(slots=True)
class _Token:
    value: bytes
    dc_id: int  # where it was exported, or (migration) where it must be imported
    exporter: KeyRef | None  # None for a migration token
    expires: int
    except_ids: frozenset[int]
    accepted_by: int | None = None
    migration: bytes | None = None
    used: bool = False


class SimState:
    """Accounts, tokens and authorizations of every simulated DC, plus scripted failures."""

    def __init__(
        self,
        *,
        dc_ids: Sequence[int],
        token_ttl_s: float,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self.dc_ids: Final = tuple(dc_ids)
        self._ttl = token_ttl_s
        self._random = random_bytes
        self.users: dict[int, User] = {}
        self._tokens: dict[bytes, _Token] = {}
        self._latest: dict[KeyRef, bytes] = {}
        self._authorized: dict[KeyRef, int] = {}
        self._pending_password: dict[KeyRef, int] = {}
        self._challenges: dict[KeyRef, tuple[Challenge, int]] = {}
        self._scripted: dict[str, deque[RpcFailure]] = {}
        self.logins = 0
        self.exports = 0
        self.scans = 0
        #: called after every change of the accounts or authorizations (to persist them)
        self.on_change: Callable[[], None] = _nothing

    # --- accounts -------------------------------------------------------------------------

    def add_user(
        self, user_id: int, *, dc_id: int, password: str | None, hint: str, first_name: str
    ) -> User:
        """Create the account unless it exists (then it is returned unchanged)."""
        if dc_id not in self.dc_ids:
            raise SimulatorError(f"unknown DC {dc_id}; the simulator has {list(self.dc_ids)}")
        if user_id <= 0:
            raise SimulatorError("user ids are positive integers")
        user = self.users.get(user_id)
        if user is None:
            verifier = Verifier.create(password, self._random) if password is not None else None
            access_hash = int.from_bytes(self._random(8), "little", signed=True)
            user = User(
                user_id, dc_id, first_name or f"User {user_id}", access_hash, hint, verifier
            )
            self.users[user_id] = user
            self.on_change()
        return user

    def user_of(self, ref: KeyRef) -> User | None:
        """The user this auth key is logged in as, or None."""
        user_id = self._authorized.get(ref)
        return None if user_id is None else self.users.get(user_id)

    def require_user(self, ref: KeyRef) -> User:
        """The logged-in user; raises ``401 AUTH_KEY_UNREGISTERED`` when there is none."""
        user = self.user_of(ref)
        if user is None:
            raise RpcFailure(*UNREGISTERED)
        return user

    # --- QR login -------------------------------------------------------------------------

    def export_token(self, ref: KeyRef, *, now: float, except_ids: Sequence[int]) -> LoginResult:
        """``auth.exportLoginToken``: the accepted token's outcome, or a new token."""
        self.exports += 1
        self._prune(now)
        latest = self._tokens.get(self._latest.get(ref, b""))
        if latest is not None and latest.accepted_by is not None and not latest.used:
            return self._complete(ref, latest)
        user = self.user_of(ref)
        if user is not None:
            return Authorized(user)
        token = _Token(
            value=self._random(_TOKEN_BYTES),
            dc_id=ref[0],
            exporter=ref,
            expires=int(now + self._ttl),
            except_ids=frozenset(except_ids),
        )
        self._tokens[token.value] = token
        self._latest[ref] = token.value
        return TokenIssued(token.value, token.expires)

    def accept(self, token_value: bytes, user: User, *, now: float) -> KeyRef:
        """The phone of ``user`` accepts a token; returns the exporter's key (to notify)."""
        token = self._tokens.get(token_value)
        if token is None or token.exporter is None:
            raise SimulatorError("unknown login token")
        if token.accepted_by is not None:
            raise SimulatorError("login token already used")
        if now >= token.expires:
            raise SimulatorError("login token expired")
        if user.user_id in token.except_ids:
            raise SimulatorError("that account is already logged in on this client")
        token.accepted_by = user.user_id
        self.scans += 1
        return token.exporter

    def latest_token_of(self, ref: KeyRef) -> bytes | None:
        """The last token this key exported (for scanning by client rather than by URL)."""
        return self._latest.get(ref)

    def import_token(self, ref: KeyRef, token_value: bytes, *, now: float) -> LoginResult:
        """``auth.importLoginToken`` on ``ref``'s DC."""
        token = self._tokens.get(token_value)
        if token is None or token.dc_id != ref[0]:
            raise RpcFailure(400, "AUTH_TOKEN_INVALID")
        if token.used:
            raise RpcFailure(400, "AUTH_TOKEN_ALREADY_ACCEPTED")
        if now >= token.expires:
            raise RpcFailure(400, "AUTH_TOKEN_EXPIRED")
        if token.accepted_by is None:
            return TokenIssued(token.value, token.expires)
        return self._complete(ref, token)

    def _complete(self, ref: KeyRef, token: _Token) -> LoginResult:
        user = self.users[token.accepted_by] if token.accepted_by is not None else None
        assert user is not None  # noqa: S101 - only accepted tokens get here
        if user.dc_id != ref[0]:
            if token.migration is None:
                migration = _Token(
                    value=self._random(_TOKEN_BYTES),
                    dc_id=user.dc_id,
                    exporter=None,
                    expires=token.expires,
                    except_ids=token.except_ids,
                    accepted_by=user.user_id,
                )
                self._tokens[migration.value] = migration
                token.migration = migration.value
            return MigrateTo(user.dc_id, token.migration)
        token.used = True
        if user.verifier is not None:
            self._pending_password[ref] = user.user_id
            self.on_change()
            raise RpcFailure(*PASSWORD_NEEDED)
        return self._authorize(ref, user)

    def _authorize(self, ref: KeyRef, user: User) -> Authorized:
        self._authorized[ref] = user.user_id
        self._pending_password.pop(ref, None)
        self._challenges.pop(ref, None)
        self.logins += 1
        self.on_change()
        return Authorized(user)

    def _prune(self, now: float) -> None:
        # Tokens are inserted in (roughly) expiry order: drop from the front.
        while self._tokens:
            value, token = next(iter(self._tokens.items()))
            if token.expires + _TOKEN_GRACE_S > now:
                break
            del self._tokens[value]
            if token.exporter is not None and self._latest.get(token.exporter) == value:
                del self._latest[token.exporter]

    # --- 2FA ------------------------------------------------------------------------------

    def password_info(self, ref: KeyRef) -> PasswordInfo:
        """``account.getPassword``: a fresh single-use challenge (older ones become invalid)."""
        user_id = self._pending_password.get(ref, self._authorized.get(ref))
        if user_id is None:
            raise RpcFailure(*UNREGISTERED)
        user = self.users[user_id]
        if user.verifier is None:
            return PasswordInfo(user, None)
        challenge = new_challenge(user.verifier, self._random)
        self._challenges[ref] = (challenge, user_id)
        return PasswordInfo(user, challenge)

    def check_password(self, ref: KeyRef, *, srp_id: int, a: bytes, m1: bytes) -> Authorized:
        """``auth.checkPassword``: the challenge is used up whatever the outcome."""
        if ref not in self._pending_password:
            raise RpcFailure(*UNREGISTERED)
        entry = self._challenges.pop(ref, None)
        if entry is None or entry[0].srp_id != srp_id:
            raise RpcFailure(400, "SRP_ID_INVALID")
        challenge, user_id = entry
        user = self.users[user_id]
        if user.verifier is None or not verify(user.verifier, challenge, a, m1):
            raise RpcFailure(400, "PASSWORD_HASH_INVALID")
        return self._authorize(ref, user)

    # --- sessions -------------------------------------------------------------------------

    def log_out(self, ref: KeyRef) -> None:
        """``auth.logOut``: forget this key's authorization."""
        if self._authorized.pop(ref, None) is None:
            raise RpcFailure(*UNREGISTERED)
        self.on_change()

    def revoke(self, user_id: int) -> int:
        """Invalidate every authorization of the user; returns how many there were."""
        refs = [ref for ref, uid in self._authorized.items() if uid == user_id]
        for ref in refs:
            del self._authorized[ref]
        for ref in [ref for ref, uid in self._pending_password.items() if uid == user_id]:
            del self._pending_password[ref]
            self._challenges.pop(ref, None)
        self.on_change()
        return len(refs)

    # --- persistence ----------------------------------------------------------------------

    def logins_by_key(self) -> tuple[dict[KeyRef, int], dict[KeyRef, int]]:
        """Copies of who each auth key is logged in as, and which wait for their 2FA password."""
        return dict(self._authorized), dict(self._pending_password)

    def restore(
        self, users: Sequence[User], authorized: dict[KeyRef, int], pending: dict[KeyRef, int]
    ) -> None:
        """Take back accounts and authorizations saved by an earlier simulator."""
        self.users.update({user.user_id: user for user in users})
        self._authorized.update(authorized)
        self._pending_password.update(pending)

    # --- scripted failures ----------------------------------------------------------------

    def script(self, method: str, failure: RpcFailure, times: int) -> None:
        """The next ``times`` calls of ``method`` answer ``failure`` (after earlier scripts)."""
        if times < 1:
            raise SimulatorError("times must be at least 1")
        self._scripted.setdefault(method, deque()).extend([failure] * times)

    def take_scripted(self, method: str) -> RpcFailure | None:
        """The failure scripted for this call of ``method``, if any (consumed)."""
        queue = self._scripted.get(method)
        if not queue:
            return None
        failure = queue.popleft()
        if not queue:
            del self._scripted[method]
        return failure
