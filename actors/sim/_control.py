"""``tgqr.sim.scan``, ``tgqr.sim.devices``, ``tgqr.sim.terminate``: the simulator's phone,
reachable over NATS (simulator mode only); ``tgqr.sim.info``: where its DCs listen.

- scan ``{"tenant": str?, "url": str?, "user_id": int, "password": str?, "dc_id": int?}``: the
  phone of ``user_id`` scans ``url``, or the tenant's current QR (found by folding its events).
- devices ``{"user_id": int}``: ``{"ok": true, "user_id", "devices": [{"id", "device_model",
  "system_version", "app_version", "lang_code", "peer"}]}``, the phone's Settings → Devices.
- terminate ``{"user_id": int, "device": str}``: the phone ends that session.
- info ``{}``: ``{"ok": true, "dcs": [{"id": int, "host": str, "port": int}, ...],
  "public_key": str}``, the home DC first, and the RSA public key (PEM) the DCs sign the key
  exchange with (made per simulator process): what ``tgqr up --sim shared`` needs to point its
  Telegram clients at them.
"""

from __future__ import annotations

import logging
from typing import Annotated, Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from actors.gateway import error_reply
from actors.login import LoginState, fold
from events import (
    EventLog,
    InvalidTenantError,
    ReplyGuard,
    TenantQuarantinedError,
    is_service_chain,
    plain_decode_error,
    validate_tenant,
)

from ._errors import SimulatorError
from ._simulator import Simulator

__all__ = [
    "DEVICES_SUBJECT",
    "INFO_SUBJECT",
    "SCAN_SUBJECT",
    "TERMINATE_SUBJECT",
    "serve_sim_control",
]

log = logging.getLogger("tgqr.sim")

SCAN_SUBJECT: Final = "tgqr.sim.scan"
DEVICES_SUBJECT: Final = "tgqr.sim.devices"
TERMINATE_SUBJECT: Final = "tgqr.sim.terminate"
INFO_SUBJECT: Final = "tgqr.sim.info"
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


class _DevicesBody(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[int, msgspec.Meta(gt=0)]


class _TerminateBody(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[int, msgspec.Meta(gt=0)]
    device: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


_decoder: Final = msgspec.json.Decoder(_ScanBody)
_devices_decoder: Final = msgspec.json.Decoder(_DevicesBody)
_terminate_decoder: Final = msgspec.json.Decoder(_TerminateBody)
_encoder: Final = msgspec.json.Encoder()


def _devices(sim: Simulator, data: bytes) -> bytes:
    try:
        body = _devices_decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        return error_reply("invalid_request", plain_decode_error(exc, _DevicesBody))
    try:
        devices = sim.devices(body.user_id)
    except SimulatorError as exc:
        return error_reply("wrong_state", str(exc))
    items = [device.as_json() for device in devices]
    return _encoder.encode({"ok": True, "user_id": body.user_id, "devices": items})


def _terminate(sim: Simulator, data: bytes) -> bytes:
    try:
        body = _terminate_decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        return error_reply("invalid_request", plain_decode_error(exc, _TerminateBody))
    try:
        sim.terminate(body.user_id, body.device)
    except SimulatorError as exc:
        return error_reply("wrong_state", str(exc))
    return _encoder.encode({"ok": True, "user_id": body.user_id, "device": body.device})


def _info(sim: Simulator) -> bytes:
    dcs = [{"id": dc, "host": host, "port": port} for dc, host, port in sim.dcs()]
    return _encoder.encode({"ok": True, "dcs": dcs, "public_key": sim.public_key_pem})


async def _scan(sim: Simulator, event_log: EventLog, data: bytes) -> bytes:
    try:
        body = _decoder.decode(data.strip() or b"{}")
    except msgspec.DecodeError as exc:
        return error_reply("invalid_request", plain_decode_error(exc, _ScanBody))
    url = body.url
    if body.tenant is not None:
        try:
            validate_tenant(body.tenant)
        except InvalidTenantError as exc:
            return error_reply("invalid_tenant", str(exc))
        if is_service_chain(body.tenant):
            return error_reply("invalid_tenant", "tenant ids starting with _ are reserved")
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
    """Answer the phone's requests until cancelled (only those with an inbox reply)."""
    guard = ReplyGuard()
    subs = [
        await nc.subscribe(subject, pending_msgs_limit=1024)
        for subject in (SCAN_SUBJECT, DEVICES_SUBJECT, TERMINATE_SUBJECT, INFO_SUBJECT)
    ]

    async def answer(sub: Subscription) -> None:
        async for msg in sub.messages:
            if not guard.allows(msg.subject, msg.reply):
                continue
            try:
                if msg.subject == INFO_SUBJECT:
                    reply = _info(sim)
                elif msg.subject == DEVICES_SUBJECT:
                    reply = _devices(sim, msg.data)
                elif msg.subject == TERMINATE_SUBJECT:
                    reply = _terminate(sim, msg.data)
                else:
                    reply = await _scan(sim, event_log, msg.data)
            except Exception as exc:
                reply = error_reply("unavailable", f"the phone failed: {type(exc).__name__}")
            await nc.publish(msg.reply, reply)

    try:
        async with anyio.create_task_group() as tg:
            for sub in subs:
                tg.start_soon(answer, sub)
            task_status.started()
    finally:
        with anyio.CancelScope(shield=True):
            for sub in subs:
                await sub.unsubscribe()
