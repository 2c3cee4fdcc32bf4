"""The API methods the simulated DCs implement: TL request in, serialized TL result out.

Wrappers (``invokeWithLayer``, ``initConnection``, ``invokeWithoutUpdates``,
``invokeAfterMsg(s)``) are unwrapped first; then a scripted failure (``flood_next`` /
``fail_next``) for the inner method wins; then the handler runs against :class:`SimState`.
Every refusal is an :class:`RpcFailure`, sent back as ``rpc_error``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

from telethon.tl import functions, types

from ._devices import DeviceBook
from ._errors import RpcFailure
from ._mtproto import KeyRecord
from ._srp import P_BYTES, G
from ._state import Authorized, KeyRef, LoginResult, MigrateTo, SimState, TokenIssued, User

__all__ = ["RpcHandler", "method_name", "update_login_token"]

_VECTOR: Final = 0x1CB5C415
_BOOL_TRUE: Final = 0x997275B5
_BOOL_FALSE: Final = 0xBC799737
_WRAPPERS: Final = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
    functions.InvokeAfterMsgsRequest,
)


def method_name(request: Any) -> str:
    """The TL name of a Telethon request object, e.g. ``auth.exportLoginToken``."""
    name = type(request).__name__.removesuffix("Request")
    name = name[:1].lower() + name[1:]
    namespace = type(request).__module__.rpartition(".")[2]
    return name if namespace == "functions" else f"{namespace}.{name}"


def serialize(result: Any) -> bytes:
    """TL bytes of a result: a TL object, a ``Vector`` of objects, or a ``Bool``."""
    if isinstance(result, bool):
        return struct.pack("<I", _BOOL_TRUE if result else _BOOL_FALSE)
    if isinstance(result, list):
        return struct.pack("<Ii", _VECTOR, len(result)) + b"".join(bytes(x) for x in result)
    return bytes(result)


def update_login_token(date: int) -> bytes:
    """``updateShort(update=updateLoginToken, date)``: what the phone's scan pushes."""
    return bytes(types.UpdateShort(types.UpdateLoginToken(), date))


def _tl_user(user: User, *, is_self: bool) -> Any:
    return types.User(
        id=user.user_id,
        is_self=is_self or None,
        access_hash=user.access_hash,
        first_name=user.first_name,
    )


class RpcHandler:
    """Dispatches decrypted API calls of one simulator to :class:`SimState`."""

    def __init__(
        self,
        state: SimState,
        *,
        clock: Callable[[], float],
        dc_options: Callable[[], Sequence[tuple[int, str, int]]],
        devices: DeviceBook | None = None,
    ) -> None:
        self._state = state
        self.devices = devices or DeviceBook()
        self._clock = clock
        self._dc_options = dc_options
        self._handlers: dict[int, Callable[[KeyRef, Any], Any]] = {
            functions.help.GetConfigRequest.CONSTRUCTOR_ID: self._get_config,
            functions.help.GetNearestDcRequest.CONSTRUCTOR_ID: self._get_nearest_dc,
            functions.updates.GetStateRequest.CONSTRUCTOR_ID: self._get_state,
            functions.updates.GetDifferenceRequest.CONSTRUCTOR_ID: self._get_difference,
            functions.users.GetUsersRequest.CONSTRUCTOR_ID: self._get_users,
            functions.auth.ExportLoginTokenRequest.CONSTRUCTOR_ID: self._export_login_token,
            functions.auth.ImportLoginTokenRequest.CONSTRUCTOR_ID: self._import_login_token,
            functions.account.GetPasswordRequest.CONSTRUCTOR_ID: self._get_password,
            functions.auth.CheckPasswordRequest.CONSTRUCTOR_ID: self._check_password,
            functions.auth.LogOutRequest.CONSTRUCTOR_ID: self._log_out,
        }
        self.calls = 0

    def call(self, key: KeyRecord, dc_id: int, request: Any, *, peer: str = "?") -> bytes:
        """Run one API call with ``key`` on ``dc_id`` from the client at ``peer``; returns the
        serialized result. An ``initConnection`` is noted in :attr:`devices`.

        Raises RpcFailure for every error answer (scripted, refused or unsupported).
        """
        self.calls += 1
        while isinstance(request, _WRAPPERS):
            if isinstance(request, functions.InvokeWithLayerRequest):
                key.layer = request.layer
            elif isinstance(request, functions.InitConnectionRequest):
                self.devices.note((dc_id, key.key_id), request, peer)
            request = request.query
        name = method_name(request)
        failure = self._state.take_scripted(name)
        if failure is not None:
            raise failure
        handler = self._handlers.get(getattr(request, "CONSTRUCTOR_ID", 0))
        if handler is None:
            raise RpcFailure(400, "METHOD_NOT_SUPPORTED")
        return serialize(handler((dc_id, key.key_id), request))

    def _now(self) -> int:
        return int(self._clock())

    def _get_config(self, ref: KeyRef, _request: Any) -> Any:
        now = self._now()
        options = [
            types.DcOption(id=dc, ip_address=host, port=port, ipv6=(":" in host) or None)
            for dc, host, port in self._dc_options()
        ]
        return types.Config(
            date=now,
            expires=now + 3600,
            test_mode=False,
            this_dc=ref[0],
            dc_options=options,
            dc_txt_domain_name="sim.invalid",
            chat_size_max=200,
            megagroup_size_max=200_000,
            forwarded_count_max=100,
            online_update_period_ms=210_000,
            offline_blur_timeout_ms=5_000,
            offline_idle_timeout_ms=30_000,
            online_cloud_timeout_ms=300_000,
            notify_cloud_delay_ms=30_000,
            notify_default_delay_ms=1_500,
            push_chat_period_ms=60_000,
            push_chat_limit=2,
            edit_time_limit=172_800,
            revoke_time_limit=2_147_483_647,
            revoke_pm_time_limit=2_147_483_647,
            rating_e_decay=2_419_200,
            stickers_recent_limit=200,
            channels_read_media_period=604_800,
            call_receive_timeout_ms=20_000,
            call_ring_timeout_ms=90_000,
            call_connect_timeout_ms=30_000,
            call_packet_timeout_ms=10_000,
            me_url_prefix="https://t.me/",
            caption_length_max=1024,
            message_length_max=4096,
            webfile_dc_id=self._state.dc_ids[0],
        )

    def _get_nearest_dc(self, ref: KeyRef, _request: Any) -> Any:
        return types.NearestDc(country="ZZ", this_dc=ref[0], nearest_dc=ref[0])

    def _get_state(self, ref: KeyRef, _request: Any) -> Any:
        self._state.require_user(ref)
        return types.updates.State(pts=1, qts=0, date=self._now(), seq=1, unread_count=0)

    def _get_difference(self, ref: KeyRef, _request: Any) -> Any:
        self._state.require_user(ref)
        return types.updates.DifferenceEmpty(date=self._now(), seq=1)

    def _get_users(self, ref: KeyRef, request: Any) -> list[Any]:
        found: list[Any] = []
        for wanted in request.id:
            if isinstance(wanted, types.InputUserSelf):
                found.append(_tl_user(self._state.require_user(ref), is_self=True))
                continue
            user = self._state.users.get(getattr(wanted, "user_id", 0))
            me = self._state.user_of(ref)
            if user is None:
                found.append(types.UserEmpty(id=getattr(wanted, "user_id", 0)))
            else:
                found.append(_tl_user(user, is_self=me is not None and me.user_id == user.user_id))
        return found

    def _login_token(self, result: LoginResult) -> Any:
        match result:
            case TokenIssued(token=token, expires=expires):
                return types.auth.LoginToken(expires=expires, token=token)
            case MigrateTo(dc_id=dc_id, token=token):
                return types.auth.LoginTokenMigrateTo(dc_id=dc_id, token=token)
            case Authorized(user=user):
                return types.auth.LoginTokenSuccess(self._authorization(user))

    @staticmethod
    def _authorization(user: User) -> Any:
        return types.auth.Authorization(user=_tl_user(user, is_self=True))

    def _export_login_token(self, ref: KeyRef, request: Any) -> Any:
        if request.api_id <= 0 or not request.api_hash:
            raise RpcFailure(400, "API_ID_INVALID")
        result = self._state.export_token(
            ref, now=self._clock(), except_ids=list(request.except_ids)
        )
        return self._login_token(result)

    def _import_login_token(self, ref: KeyRef, request: Any) -> Any:
        return self._login_token(self._state.import_token(ref, request.token, now=self._clock()))

    def _get_password(self, ref: KeyRef, _request: Any) -> Any:
        info = self._state.password_info(ref)
        new_algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=b"\x00" * 8, salt2=b"\x00" * 16, g=G, p=P_BYTES
        )
        extra = {
            "new_algo": new_algo,
            "new_secure_algo": types.SecurePasswordKdfAlgoSHA512(salt=b"\x00" * 8),
            "secure_random": bytes(32),
        }
        verifier, challenge = info.user.verifier, info.challenge
        if verifier is None or challenge is None:
            return types.account.Password(has_password=False, **extra)
        algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=verifier.salt1, salt2=verifier.salt2, g=G, p=P_BYTES
        )
        return types.account.Password(
            has_password=True,
            current_algo=algo,
            srp_B=challenge.srp_b,
            srp_id=challenge.srp_id,
            hint=info.user.hint or None,
            **extra,
        )

    def _check_password(self, ref: KeyRef, request: Any) -> Any:
        check = request.password
        if not isinstance(check, types.InputCheckPasswordSRP):
            raise RpcFailure(400, "PASSWORD_HASH_INVALID")
        authorized = self._state.check_password(ref, srp_id=check.srp_id, a=check.A, m1=check.M1)
        return self._authorization(authorized.user)

    def _log_out(self, ref: KeyRef, _request: Any) -> Any:
        self._state.log_out(ref)
        return types.auth.LoggedOut()
