"""The simulator's errors: one public error for callers, one internal carrier of RPC errors."""

from __future__ import annotations

__all__ = ["RpcFailure", "SimulatorError"]


class SimulatorError(Exception):
    """Raised by the simulator's control methods when a request cannot be honoured: an
    unknown, expired or already used login token passed to ``scan``, an unknown DC id, or an
    address asked for while the simulator is not running. The message never holds a secret."""


class RpcFailure(Exception):  # noqa: N818 - it is a reply, not a bug: an rpc_error to send back
    """Raised inside the simulator by a method handler to answer ``rpc_error`` with
    ``code`` and ``message`` (Telegram's error codes, e.g. 401 SESSION_PASSWORD_NEEDED).
    Never escapes the simulator."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
