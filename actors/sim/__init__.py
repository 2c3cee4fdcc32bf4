"""A fake Telegram data centre for tests, ``make demo`` and ``tgqr up`` without credentials.

:class:`Simulator` speaks MTProto 2.0 over loopback TCP (auth-key exchange, encrypted
messages, salts, acks, containers) and implements the QR-login API (``auth.exportLoginToken``,
``auth.importLoginToken``, DC migration, 2FA with SRP, ``auth.logOut``), so an unmodified
Telethon client logs in against it. Point a client at it::

    sim.register_with_telethon()
    session = StringSession()
    session.set_dc(sim.home_dc, *sim.dc_address(sim.home_dc))
"""

from __future__ import annotations

from ._control import (
    DEVICES_SUBJECT,
    INFO_SUBJECT,
    SCAN_SUBJECT,
    TERMINATE_SUBJECT,
    serve_sim_control,
)
from ._devices import SeenDevice
from ._errors import SimulatorError
from ._shared import SharedSimulator, find_shared_simulator, serve_shared_simulator
from ._simulator import SimStatistics, Simulator

__all__ = [
    "DEVICES_SUBJECT",
    "INFO_SUBJECT",
    "SCAN_SUBJECT",
    "TERMINATE_SUBJECT",
    "SeenDevice",
    "SharedSimulator",
    "SimStatistics",
    "Simulator",
    "SimulatorError",
    "find_shared_simulator",
    "serve_shared_simulator",
    "serve_sim_control",
]
