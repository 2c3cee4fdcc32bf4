"""The phone's Settings → Devices: each authorization as its client last named itself.

Every connection's ``initConnection`` (Telethon wraps its first request in one) tells the DC
the client's device model, system, app version and languages; :class:`DeviceBook` keeps the
latest of each auth key with the address it came from (a proxy's, when there is one). The
phone lists the authorizations of its user (:func:`devices_of`) and ends one
(:func:`terminate`): the key's next call answers ``401 AUTH_KEY_UNREGISTERED``, as Telegram's
does. Pure and synchronous; what the book holds lives in memory only (a client names itself
again on its next connection).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from ._errors import RpcFailure, SimulatorError
from ._state import KeyRef, SimState

__all__ = ["DeviceBook", "SeenDevice", "device_id", "devices_of", "terminate"]

_FIELD_MAX: Final = 128  # Telegram cuts what clients send; so does the simulator


@dataclass(frozen=True, slots=True)
class SeenDevice:
    """One authorization as the phone lists it (the ``tgqr sim devices --json`` items)."""

    id: str
    device_model: str
    system_version: str
    app_version: str
    lang_code: str
    system_lang_code: str
    peer: str

    def as_json(self) -> dict[str, str]:
        """The item of ``tgqr.sim.devices``' reply."""
        return {
            "id": self.id,
            "device_model": self.device_model,
            "system_version": self.system_version,
            "app_version": self.app_version,
            "lang_code": self.lang_code,
            "peer": self.peer,
        }


def device_id(ref: KeyRef) -> str:
    """A short, stable id of an authorization (never the auth key id itself)."""
    return hashlib.sha256(f"tgqr-sim-device|{ref[0]}|{ref[1]}".encode()).hexdigest()[:12]


def _text(request: Any, name: str) -> str:
    return str(getattr(request, name, "") or "")[:_FIELD_MAX]


class DeviceBook:
    """The latest ``initConnection`` of each auth key, and where it came from."""

    def __init__(self) -> None:
        self._seen: dict[KeyRef, SeenDevice] = {}

    def note(self, ref: KeyRef, init_connection: Any, peer: str) -> None:
        """Record an ``initConnection`` request that ``peer`` sent with the key ``ref``."""
        self._seen[ref] = SeenDevice(
            id=device_id(ref),
            device_model=_text(init_connection, "device_model"),
            system_version=_text(init_connection, "system_version"),
            app_version=_text(init_connection, "app_version"),
            lang_code=_text(init_connection, "lang_code"),
            system_lang_code=_text(init_connection, "system_lang_code"),
            peer=peer,
        )

    def seen(self, ref: KeyRef) -> SeenDevice:
        """What ``ref`` last said (empty fields if it never said anything since we started)."""
        return self._seen.get(ref) or SeenDevice(device_id(ref), "", "", "", "", "", "")


def devices_of(state: SimState, book: DeviceBook, user_id: int) -> list[SeenDevice]:
    """The authorizations of ``user_id``, sorted by id. Raises SimulatorError for an unknown
    user."""
    if user_id not in state.users:
        raise SimulatorError(f"no user {user_id} in the simulator")
    authorized, _ = state.logins_by_key()
    found = [book.seen(ref) for ref, uid in authorized.items() if uid == user_id]
    return sorted(found, key=lambda device: device.id)


def terminate(state: SimState, user_id: int, device: str) -> KeyRef:
    """End the authorization ``device`` of ``user_id``, as the phone's "Terminate session";
    returns its key. Raises SimulatorError when the user has no such device."""
    authorized, _ = state.logins_by_key()
    for ref, uid in authorized.items():
        if uid == user_id and device_id(ref) == device:
            try:
                state.log_out(ref)
            except RpcFailure:  # pragma: no cover - listed as authorized just above
                break
            return ref
    raise SimulatorError(f"user {user_id} has no device {device[:40]!r}")
