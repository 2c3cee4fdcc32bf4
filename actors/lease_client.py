"""Lease a tenant's Telegram session from tgqr, for apps: ``async with lease_session(...)``.

Needs only ``nats-py`` and ``cryptography`` (importing this module runs nothing else of tgqr
but :mod:`actors.hpke`)::

    async with lease_session(nc, "alice", holder="parser-1") as lease:
        client = TelegramClient(
            StringSession(lease.session), api_id, api_hash, proxy=lease.proxy, **lease.device
        )
        ...

``lease.device``: the device the user saw log in (connect as it). ``lease.proxy``: the
tenant's proxy (None: none); for an MTProxy ``(host, port, secret)``, with
``connection=ConnectionTcpMTProxyRandomizedIntermediate`` (``...Intermediate`` unless the secret
starts with ``dd``). A session ended from the phone: ``await lease.release(revoked=True)``.

It makes a fresh HPKE key pair, asks ``tgqr.session.<tenant>.lease``, opens the sealed session
and proof (renew and release must show it: only this holder can extend or end the lease),
renews in the background (a task owned by the block) and releases on exit. A failed renewal
marks the lease lost: ``lease.session`` then raises :class:`LeaseLostError`. The session and
the proof live only in this object, never in a log line or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import nats.errors
from nats.aio.client import Client

from .hpke import DEFAULT_SUITE, KeyPair, SealedOpenError, lease_info, proof_info, proxy_info

__all__ = [
    "LeaseError",
    "LeaseLostError",
    "LeaseProofInvalidError",
    "LeaseUnavailableError",
    "LeasedError",
    "NotAuthorizedError",
    "SessionLease",
    "lease_session",
]

_log = logging.getLogger("tgqr.lease_client")
_RETRY_S = 1.0
_DEVICE_FIELDS = ("device_model", "system_version", "app_version", "lang_code", "system_lang_code")


_Proxy = dict[str, Any] | tuple[str, int, str]  # Telethon's proxy=


def _telethon_proxy(url: str) -> _Proxy:
    """Telethon's ``proxy=``: a dict for ``socks5://[user:pass@]host:port`` or ``http://...``,
    ``(host, port, secret)`` for ``mtproxy://SECRET@host:port``."""
    parts = urlsplit(url)
    if parts.scheme == "mtproxy":
        return (parts.hostname or "", parts.port or 0, parts.username or "")
    proxy = {"proxy_type": parts.scheme, "addr": parts.hostname, "port": parts.port, "rdns": True}
    if parts.username:
        proxy.update(username=unquote(parts.username), password=unquote(parts.password or ""))
    return proxy


def _device(reply: dict[str, Any]) -> dict[str, str]:
    given: dict[str, Any] = reply.get("device") or {}  # a tgqr from before devices: {}
    return {name: given[name] for name in _DEVICE_FIELDS if isinstance(given.get(name), str)}


class LeaseError(Exception):
    """Base class: tgqr refused a lease request (``code`` is the reply's error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NotAuthorizedError(LeaseError):
    """Raised by :func:`lease_session` when the tenant has no authorized session."""


class LeasedError(LeaseError):
    """Raised by :func:`lease_session` while another lease runs (``holder``, ``expires_at``);
    also when this holder asks again while its own lease runs."""

    def __init__(self, code: str, message: str, holder: str, expires_at: datetime | None) -> None:
        super().__init__(code, message)
        self.holder = holder
        self.expires_at = expires_at


class LeaseLostError(LeaseError):
    """Raised by :attr:`SessionLease.session` (and renew/release) once the lease has ended:
    expired without renewal, released, or superseded. Stop using the session."""


class LeaseProofInvalidError(LeaseLostError):
    """Raised by renew (and release) when tgqr refuses this lease's proof
    (``lease_proof_invalid``): this object cannot keep the lease, so it counts as lost."""


class LeaseUnavailableError(LeaseError):
    """Raised when tgqr does not answer (no responders, timeout, or a connection not allowed
    to publish ``tgqr.session.>``) or answers ``unavailable``."""


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _raise_for(reply: dict[str, Any]) -> None:
    if reply.get("ok"):
        return
    error = reply.get("error") or {}
    code, message = str(error.get("code", "error")), str(error.get("message", ""))
    if code == "leased":
        raise LeasedError(
            code, message, str(error.get("holder", "")), _time(error.get("expires_at"))
        )
    raise _ERRORS.get(code, LeaseError)(code, message)


_ERRORS: dict[str, type[LeaseError]] = {
    "not_authorized": NotAuthorizedError,
    "lease_proof_invalid": LeaseProofInvalidError,
    "lease_lost": LeaseLostError,
    "unavailable": LeaseUnavailableError,
}


async def _request(
    nc: Client, subject: str, body: dict[str, Any], timeout_s: float, tries: int = 2
) -> dict[str, Any]:
    """One request, retried on timeout under the same ``Nats-Msg-Id`` (the service answers a
    repeat it still remembers with the first reply)."""
    headers = {"Nats-Msg-Id": uuid.uuid4().hex}
    data = json.dumps(body).encode()
    for attempt in range(tries):
        try:
            msg = await nc.request(subject, data, timeout=timeout_s, headers=headers)
        except nats.errors.NoRespondersError:
            raise LeaseUnavailableError("unavailable", f"no tgqr serves {subject}") from None
        except nats.errors.TimeoutError:
            if attempt + 1 < tries:
                continue
            raise LeaseUnavailableError(
                "unavailable",
                f"no answer on {subject} within {timeout_s:.0f}s (is this connection allowed "
                "to publish tgqr.session.>?)",
            ) from None
        reply: dict[str, Any] = json.loads(msg.data)
        return reply
    raise AssertionError("unreachable")  # pragma: no cover


class SessionLease:
    """A held lease: the session and what tgqr said about it. ``session`` raises once lost."""

    def __init__(
        self,
        nc: Client,
        tenant: str,
        holder: str,
        reply: dict[str, Any],
        session: str,
        *,
        proof: bytes | None,
        proxy: str | None = None,
    ) -> None:
        self._nc = nc
        self.tenant = tenant
        self.holder = holder
        self.lease_id: str = reply["lease_id"]
        self.fence: int = int(reply["fence"])
        self.expires_at: datetime = datetime.fromisoformat(reply["expires_at"])
        self.user_id: int = int(reply["user_id"])
        self.dc_id: int = int(reply["dc_id"])
        self.suite: str = reply["suite"]
        self.device: dict[str, str] = _device(reply)  # see the module's docstring
        self.proxy: _Proxy | None = _telethon_proxy(proxy) if proxy else None
        self._session = session
        self._proof = proof  # None: a tgqr from before proofs
        self._lost: str | None = None
        self._released = False

    def __repr__(self) -> str:  # never the session
        state = "lost" if self._lost else "released" if self._released else "held"
        return (
            f"SessionLease(tenant={self.tenant!r}, holder={self.holder!r}, "
            f"fence={self.fence}, expires_at={self.expires_at.isoformat()}, {state})"
        )

    @property
    def lost(self) -> bool:
        """Whether the lease has ended (the session must not be used any more)."""
        return self._lost is not None or self._released

    @property
    def session(self) -> str:
        """The Telethon ``StringSession`` string.

        Raises:
            LeaseLostError: the lease has ended (expired, released or superseded).
        """
        if self.lost:
            raise LeaseLostError("lease_lost", self._lost or "the lease was released")
        return self._session

    def _mark_lost(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
            self._session = ""
            self._proof = None
            _log.warning("lease of %s (fence %d) lost: %s", self.tenant, self.fence, why)

    async def renew(self, *, ttl_s: int | None = None, timeout_s: float = 10.0) -> None:
        """Extend the lease now (the background task does this by itself).

        Raises:
            LeaseLostError: the lease has ended (it is marked lost).
            LeaseError, LeaseUnavailableError: tgqr refused or did not answer (not lost yet).
        """
        if self.lost:
            raise LeaseLostError("lease_lost", self._lost or "the lease was released")
        body = self._body()
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        reply = await _request(self._nc, f"tgqr.session.{self.tenant}.renew", body, timeout_s)
        try:
            _raise_for(reply)
        except LeaseLostError as exc:
            self._mark_lost(exc.message)
            raise
        self.expires_at = datetime.fromisoformat(reply["expires_at"])

    async def release(self, *, revoked: bool = False, timeout_s: float = 10.0) -> None:
        """End the lease now; ``revoked``: the session is dead or compromised, and tgqr logs
        the tenant out (``LoggedOut(revoked)``). Releasing an ended lease does nothing.

        Raises:
            LeaseError, LeaseUnavailableError: tgqr refused (other than ``lease_lost``) or did
            not answer; the lease then ends at ``expires_at`` at the latest.
        """
        if self.lost:
            return
        body = {**self._body(), "revoked": revoked}
        reply = await _request(self._nc, f"tgqr.session.{self.tenant}.release", body, timeout_s)
        self._released = True
        self._session = ""
        self._proof = None
        with contextlib.suppress(LeaseLostError):
            _raise_for(reply)

    def _body(self) -> dict[str, Any]:
        """What renew and release send: the lease id and its proof."""
        body: dict[str, Any] = {"lease_id": self.lease_id}
        if self._proof is not None:
            body["proof"] = base64.b64encode(self._proof).decode()
        return body

    async def _keep_renewing(self, every_s: float) -> None:
        """Renew every ``every_s``; transient failures retry soon until the lease runs out."""
        delay = every_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.renew()
                delay = every_s
            except LeaseLostError:
                return
            except (LeaseError, OSError, nats.errors.Error) as exc:
                if datetime.now(UTC) >= self.expires_at:
                    self._mark_lost(f"not renewed before {self.expires_at.isoformat()} ({exc})")
                    return
                delay = _RETRY_S


@asynccontextmanager
async def lease_session(
    nc: Client,
    tenant: str,
    *,
    holder: str,
    ttl_s: int = 300,
    suite: str = DEFAULT_SUITE,
    renew_every_s: float | None = None,
    revoke_on_exit: bool = False,
    timeout_s: float = 10.0,
) -> AsyncIterator[SessionLease]:
    """Hold ``tenant``'s session for the block as ``holder``; renewed every ``renew_every_s``
    (default ``ttl_s / 3``) and released on exit (``revoke_on_exit``: released as revoked,
    which logs the tenant out). Blocks while asking (at most about ``2 * timeout_s``).

    Raises:
        NotAuthorizedError: the tenant has no authorized session.
        LeasedError: another lease runs (``holder``, ``expires_at``).
        LeaseUnavailableError: tgqr did not answer.
        LeaseError: any other refusal (``invalid_request``, ``rate_limited``, ...).
    """
    keys = KeyPair.generate(suite)
    body = {
        "holder": holder,
        "public_key": base64.b64encode(keys.public_key).decode(),
        "suite": suite,
        "ttl_s": ttl_s,
    }
    reply = await _request(nc, f"tgqr.session.{tenant}.lease", body, timeout_s)
    _raise_for(reply)
    lease_id, fence = reply["lease_id"], int(reply["fence"])

    def opened(field: str, info: bytes) -> bytes | None:  # None: a tgqr without that field
        sealed = reply.get(field)
        return None if sealed is None else keys.open(base64.b64decode(sealed, validate=True), info)

    try:
        session = (opened("sealed", lease_info(tenant, lease_id, fence)) or b"").decode()
        proof = opened("proof_sealed", proof_info(tenant, lease_id, fence))
        proxy = opened("proxy_sealed", proxy_info(tenant, lease_id, fence))
    except (SealedOpenError, ValueError):
        raise LeaseError("invalid_reply", "the sealed session or proof does not open") from None
    url = None if proxy is None else proxy.decode()
    lease = SessionLease(nc, tenant, holder, reply, session, proof=proof, proxy=url)
    del session, proof, proxy, url
    renewing = asyncio.get_running_loop().create_task(
        lease._keep_renewing(renew_every_s or ttl_s / 3),
        name=f"tgqr-lease-renew:{tenant}",
    )
    try:
        yield lease
    finally:
        renewing.cancel()
        await asyncio.wait([renewing])  # never swallows our own cancellation
        if not renewing.cancelled() and (failure := renewing.exception()) is not None:
            _log.error("renewing %s failed: %r", tenant, failure)
        try:
            await lease.release(revoked=revoke_on_exit, timeout_s=timeout_s)
        except (LeaseError, OSError, nats.errors.Error) as exc:
            _log.warning("release of %s (fence %d) failed: %s", tenant, lease.fence, exc)
