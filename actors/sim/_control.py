"""``tgqr.sim.scan``: the simulator's phone, reachable over NATS (simulator mode only).

Body ``{"tenant": str?, "url": str?, "user_id": int, "password": str?, "dc_id": int?}``: the
phone of ``user_id`` scans ``url``, or the tenant's current QR (found by folding its events).
"""

from __future__ import annotations

import logging
from typing import Annotated, Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client

from actors.gateway import error_reply
from actors.login import LoginState, fold
from events import (
    EventLog,
    InvalidTenantError,
    ReplyGuard,
    TenantQuarantinedError,
    validate_tenant,
)

from ._errors import SimulatorError
from ._simulator import Simulator

__all__ = ["SCAN_SUBJECT", "serve_sim_control"]

log = logging.getLogger("tgqr.sim")

SCAN_SUBJECT: Final = "tgqr.sim.scan"
_LIVE: Final = frozenset({"pending", "scanned"})


class _ScanBody(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[int, msgspec.Meta(gt=0)]
    tenant: str | None = None
    url: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None
    dc_id: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None

    def __repr__(self) -> str:  # never the password, nor the login token in the url
        def hidden(value: str | None) -> str:
            return "None" if value is None else "<hidden>"

        return (
            f"_ScanBody(user_id={self.user_id}, tenant={self.tenant!r}, url={hidden(self.url)}, "
            f"password={hidden(self.password)}, dc_id={self.dc_id})"
        )


_decoder: Final = msgspec.json.Decoder(_ScanBody)
_encoder: Final = msgspec.json.Encoder()


async def _scan(sim: Simulator, event_log: EventLog, data: bytes) -> bytes:
    try:
        body = _decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        return error_reply("invalid_request", f"bad scan body: {exc}")
    url = body.url
    if body.tenant is not None:
        try:
            validate_tenant(body.tenant)
        except InvalidTenantError as exc:
            return error_reply("invalid_tenant", str(exc))
        try:
            records = await event_log.read_tenant(body.tenant)
        except TenantQuarantinedError as exc:
            return error_reply("tenant_quarantined", str(exc))
        state = fold(LoginState(tenant=body.tenant), (r.event for r in records))
        if state.status not in _LIVE or state.qr_url is None:
            return error_reply(
                "wrong_state", f"{body.tenant} shows no QR code (it is {state.status})"
            )
        url = url or state.qr_url
    if url is None:
        return error_reply("invalid_request", "give a tenant or a url")
    try:
        sim.scan(user_id=body.user_id, url=url, password=body.password, dc_id=body.dc_id)
    except SimulatorError as exc:
        return error_reply("wrong_state", str(exc))
    log.info("phone of user %d scanned %s", body.user_id, body.tenant or "a url")
    return _encoder.encode({"ok": True, "tenant": body.tenant, "user_id": body.user_id})


async def serve_sim_control(
    nc: Client,
    sim: Simulator,
    event_log: EventLog,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``tgqr.sim.scan`` requests until cancelled (only those with an inbox reply)."""
    guard = ReplyGuard()
    sub = await nc.subscribe(SCAN_SUBJECT, pending_msgs_limit=1024)
    try:
        task_status.started()
        async for msg in sub.messages:
            if not guard.allows(msg.subject, msg.reply):
                continue
            try:
                reply = await _scan(sim, event_log, msg.data)
            except Exception as exc:
                reply = error_reply("unavailable", f"scan failed: {type(exc).__name__}")
            await nc.publish(msg.reply, reply)
    finally:
        with anyio.CancelScope(shield=True):
            await sub.unsubscribe()
