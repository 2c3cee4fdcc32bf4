"""The live attempt of a login actor: one Telegram client, a scan watcher and the QR loop.

:class:`Login` runs as a task of the actor's task group for as long as one attempt is live. It
holds the attempt's Telegram client, exports and refreshes tokens, follows the result switch
(success, migration, 2FA), waits out flood waits, checks submitted passwords and stops at the
deadline. Every state change goes through ``actor.apply`` (the pure machine + the log).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.lowlevel

from actors.telegram import (
    ExportResult,
    FloodWaitError,
    LoginMigrate,
    LoginSuccess,
    LoginToken,
    PasswordInvalidError,
    PasswordNeeded,
    SessionRevokedError,
    TelegramClientPort,
    TelegramConfigError,
    TelegramError,
    TelegramUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
)
from actors.vault import session_fingerprint
from events import Authorized

from ._inputs import (
    ConfigRefused,
    DeadlineReached,
    Decision,
    FloodWait,
    Observation,
    Password,
    PasswordNeededSeen,
    PasswordWrong,
    ScanSeen,
    SessionLost,
    SessionRevoked,
    Succeeded,
    TelegramDown,
    TokenExported,
    TokenRefused,
)
from ._state import (
    refresh_at,
    wakeup_at,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._actor import Envelope, _Actor

__all__ = ["Login", "TimedClient"]

_log = logging.getLogger("tgqr.actor")
_T = TypeVar("_T")
_MAX_REEXPORTS = 3
_CLOSE_TIMEOUT_S = 10.0


class _GaveUpError(Exception):
    """Internal: a flood wait ended the attempt (the machine stored ``LoginFailed``)."""


class _Pending:
    """A ``password`` command waiting for its first event."""

    __slots__ = ("envelope", "sent")

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self.sent = False

    def after(self, actor: _Actor, decision: Decision) -> None:
        if not self.sent and decision.events:
            self.sent = True
            actor.answer(self.envelope, Decision())

    def fail(self, actor: _Actor, code: str, message: str) -> None:
        if not self.sent:
            self.sent = True
            actor.answer(self.envelope, Decision(error=code, message=message))


class Login:
    """The driver of attempt ``attempt``; ``run`` is its task, ``done`` is set when it ends."""

    __slots__ = (
        "_actor",
        "_nap",
        "_passwords",
        "_scan_seen",
        "_scope",
        "_watch",
        "attempt",
        "done",
    )

    def __init__(self, actor: _Actor, attempt: int) -> None:
        self._actor = actor
        self.attempt = attempt
        self.done = anyio.Event()
        self._scope = anyio.CancelScope()
        self._watch = anyio.CancelScope()
        self._nap: anyio.CancelScope | None = None
        self._scan_seen = False
        self._passwords: deque[Envelope] = deque()

    # --- called by the actor's loop ----------------------------------------------------------

    async def run(self) -> None:
        actor = self._actor
        try:
            with self._scope:
                await self._attempt()
        finally:
            self._watch.cancel()
            while self._passwords:
                actor.answer(
                    self._passwords.popleft(),
                    Decision(error="wrong_state", message="the attempt has ended"),
                )
            actor.client_ended(self)
            self.done.set()
        await actor.wake()

    async def stop(self) -> None:
        """Cancel the attempt and wait until its client is closed."""
        self._scope.cancel()
        await self.done.wait()

    def submit(self, envelope: Envelope) -> None:
        """Queue a ``password`` command (it is answered after its first event)."""
        self._passwords.append(envelope)
        self._wake()

    @staticmethod
    async def drop_pre_auth(actor: _Actor) -> None:
        """Forget a half-finished 2FA session of an attempt that did not authorize."""
        with anyio.CancelScope(shield=True):
            entry = await actor.deps.vault.get(actor.tenant)
            if entry is not None and entry.stage == "pre_auth":
                await actor.deps.vault.delete(actor.tenant)

    # --- the attempt -------------------------------------------------------------------------

    def _live(self) -> bool:
        state = self._actor.state
        return state.attempt == self.attempt and state.live

    def _wake(self) -> None:
        if self._nap is not None:
            self._nap.cancel()

    async def _attempt(self) -> None:
        actor = self._actor
        session = None
        try:
            if actor.state.status == "password_required":
                entry = await actor.deps.vault.get(actor.tenant)
                if entry is None or entry.stage != "pre_auth":
                    await actor.apply(SessionLost(), attempt=self.attempt)
                    return
                session = entry.session
            async with actor.client(session) as client:
                actor.spawn(self._watcher, client)
                try:
                    await self._drive(client)
                finally:
                    self._watch.cancel()
        except _GaveUpError:
            pass
        except TelegramError as exc:
            _log.info(
                "telegram error %s tenant=%s attempt=%d",
                type(exc).__name__,
                actor.tenant,
                self.attempt,
            )
            await actor.apply(_observation_of(exc), attempt=self.attempt)
        finally:
            # Cancelled while still live (shutdown, crash): keep it so a restart can resume.
            if not self._live() and actor.state.status != "authorized":
                await self.drop_pre_auth(actor)

    async def _watcher(self, client: TelegramClientPort) -> None:
        """Report every ``updateLoginToken`` for the client's whole life (early scans too)."""
        actor = self._actor
        with self._watch:
            try:
                while True:
                    await client.wait_scanned()
                    await actor.apply(ScanSeen(), attempt=self.attempt)
                    self._scan_seen = True
                    self._wake()
            except TelegramError:
                return  # the driver sees the same failure on its next call

    async def _drive(self, client: TelegramClientPort) -> None:
        actor = self._actor
        policy = actor.deps.policy
        if actor.state.status != "password_required":
            await self._export(client)
        while self._live():
            if not self._scan_seen and not self._passwords:
                when = wakeup_at(actor.state, policy)
                if when is not None:
                    await self._nap_until(when)
                if not self._live():
                    return
            if self._passwords:
                await self._check(client, self._passwords.popleft())
                continue
            state, now = actor.state, actor.deps.clock()
            if state.deadline is not None and now >= state.deadline:
                await actor.apply(DeadlineReached(), attempt=self.attempt)
                return
            if self._scan_seen:
                self._scan_seen = False
                await self._export(client)
                continue
            due = refresh_at(state, policy)
            if due is not None and now >= due:
                await self._export(client)

    async def _nap_until(self, when: datetime) -> None:
        actor = self._actor
        delay = (when - actor.deps.clock()).total_seconds()
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
            return
        self._nap = anyio.CancelScope()
        with self._nap:
            await actor.deps.sleep(delay)
        self._nap = None

    async def _call(
        self,
        call: Callable[[], Awaitable[_T]],
        method: str,
        pending: _Pending | None = None,
        trace: str | None = None,
    ) -> _T:
        """``call()``, waiting out the flood waits the machine accepts.

        Raises:
            _GaveUpError: the machine gave up (``FloodWaited(retry_at=None)``, ``LoginFailed``).
        """
        actor = self._actor
        while True:
            try:
                return await call()
            except FloodWaitError as exc:
                flood = FloodWait(exc.seconds, exc.method or method, actor.deps.random())
                decision = await actor.apply(flood, attempt=self.attempt, trace=trace)
                if pending is not None:
                    pending.after(actor, decision)
                retry_at = actor.state.retry_at
                if not self._live() or retry_at is None:
                    raise _GaveUpError from None
                delay = (retry_at - actor.deps.clock()).total_seconds()
                if delay > 0:
                    await actor.deps.sleep(delay)

    async def _export(self, client: TelegramClientPort, reexports: int = 0) -> None:
        result = await self._call(client.export_token, "auth.exportLoginToken")
        await self._result(client, result, reexports)

    async def _result(
        self, client: TelegramClientPort, result: ExportResult, reexports: int
    ) -> None:
        actor = self._actor
        match result:
            case LoginToken():
                exported = TokenExported(result.url, result.expires_at, result.dc_id)
                await actor.apply(exported, attempt=self.attempt)
            case LoginSuccess():
                await self._succeed(client, result)
            case PasswordNeeded():
                await self._password_needed(client)
            case LoginMigrate():
                _log.info(
                    "migrating to dc=%d tenant=%s attempt=%d",
                    result.dc_id,
                    actor.tenant,
                    self.attempt,
                )
                dc_id, token = result.dc_id, result.token
                try:
                    imported = await self._call(
                        lambda: client.import_token(dc_id, token), "auth.importLoginToken"
                    )
                except TokenExpiredError:
                    if reexports >= _MAX_REEXPORTS:
                        raise
                    await self._export(client, reexports + 1)
                    return
                if isinstance(imported, LoginMigrate):
                    raise TokenInvalidError("the import asked for another migration")
                await self._result(client, imported, reexports)

    async def _password_needed(self, client: TelegramClientPort) -> None:
        actor = self._actor
        hint = await self._call(client.password_hint, "account.getPassword")
        # Saved before the event, so that a restarted actor can finish the 2FA.
        await actor.deps.vault.put(actor.tenant, client.session_string(), stage="pre_auth")
        await actor.apply(PasswordNeededSeen(hint), attempt=self.attempt)

    async def _check(self, client: TelegramClientPort, envelope: Envelope) -> None:
        actor = self._actor
        pending = _Pending(envelope)
        command = envelope.command
        assert isinstance(command, Password)  # noqa: S101 (only passwords are queued)
        password = command.password
        try:
            success = await self._call(
                lambda: client.check_password(password),
                "auth.checkPassword",
                pending,
                envelope.trace,
            )
        except PasswordInvalidError:
            decision = await actor.apply(
                PasswordWrong(), attempt=self.attempt, trace=envelope.trace
            )
            pending.after(actor, decision)
        except TelegramUnavailableError:
            pending.fail(actor, "unavailable", "Telegram is unreachable; try again")
        else:
            await self._succeed(client, success, pending, envelope.trace)
        finally:
            pending.fail(actor, "wrong_state", "the attempt has ended")

    async def _succeed(
        self,
        client: TelegramClientPort,
        success: LoginSuccess,
        pending: _Pending | None = None,
        trace: str | None = None,
    ) -> None:
        actor = self._actor
        session = client.session_string()

        async def before(decision: Decision) -> None:
            if isinstance(decision.events[0], Authorized):
                # The session is stored before the event that announces it.
                await actor.deps.vault.put(actor.tenant, session, stage="authorized")
                return
            # Ownership mismatch: log the wrong account out again and keep nothing.
            try:
                await client.log_out()
            except TelegramError as exc:
                _log.warning(
                    "log out after ownership mismatch failed (%s) tenant=%s attempt=%d",
                    type(exc).__name__,
                    actor.tenant,
                    self.attempt,
                )
            await actor.deps.vault.delete(actor.tenant)

        observed = Succeeded(success.user_id, success.dc_id, session_fingerprint(session))
        decision = await actor.apply(observed, attempt=self.attempt, trace=trace, before=before)
        if pending is not None:
            pending.after(actor, decision)


def _observation_of(exc: TelegramError) -> Observation:
    match exc:
        case TelegramConfigError():
            return ConfigRefused()
        case TokenInvalidError() | TokenExpiredError():
            return TokenRefused()
        case SessionRevokedError():
            return SessionRevoked()
    return TelegramDown()


class TimedClient:
    """``telegram.open_client`` whose exit is shielded, bounded and timed (``session_cleanup``)."""

    __slots__ = ("_actor", "_cm", "_session")

    def __init__(self, actor: _Actor, session: str | None) -> None:
        self._actor = actor
        self._session = session
        self._cm: AbstractAsyncContextManager[TelegramClientPort] | None = None

    async def __aenter__(self) -> TelegramClientPort:
        self._cm = self._actor.deps.telegram.open_client(self._actor.tenant, self._session)
        return await self._cm.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        actor = self._actor
        assert self._cm is not None  # noqa: S101
        started = actor.deps.clock()
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            await self._cm.__aexit__(exc_type, exc, tb)
        seconds = (actor.deps.clock() - started).total_seconds()
        if actor.deps.telemetry is not None:
            actor.deps.telemetry.session_cleanup(actor.tenant, seconds)
        _log.debug("client closed tenant=%s", actor.tenant)
