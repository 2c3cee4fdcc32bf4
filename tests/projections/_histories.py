"""Builders of plausible login histories for the projection tests and the Hypothesis strategy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from events import (
    ActorRestarted,
    Authorized,
    Event,
    Expired,
    FloodWaited,
    LoggedOut,
    LoginCancelled,
    LoginFailed,
    LoginStarted,
    MemoryEventLog,
    PasswordRejected,
    PasswordRequired,
    QrIssued,
    QuarantineLifted,
    Scanned,
    SessionLeased,
    SessionReleased,
    StoredMessage,
    encode_event,
    event_subject,
)
from events.chain import Head

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
OUTCOMES = ("authorized", "password", "expired", "failed", "crashed", "cancelled", "live")


@dataclass(frozen=True)
class Script:
    """One attempt: how it ends and what happens on the way (gaps in seconds)."""

    outcome: str
    qrs: int = 1
    floods: int = 0
    restarts: int = 0
    gap: int = 7
    logout: bool = False


def attempt_events(tenant: str, attempt: int, start: datetime, script: Script) -> list[Event]:
    """The events of one attempt starting at ``start``, one every ``script.gap`` seconds."""
    clock = iter(start + timedelta(seconds=script.gap * i) for i in range(1000))
    env: dict[str, Any] = {"tenant": tenant, "attempt": attempt}
    out: list[Event] = [
        LoginStarted(**env, at=next(clock), deadline=start + timedelta(seconds=600))
    ]
    for i in range(script.qrs):
        at = next(clock)
        out.append(
            QrIssued(
                **env,
                at=at,
                url=f"tg://login?token={tenant}{attempt}x{i}AAAAAAAAAAAAAAAA",
                expires_at=at + timedelta(seconds=30),
                dc_id=2,
            )
        )
    for _ in range(script.floods):
        at = next(clock)
        out.append(
            FloodWaited(
                **env,
                at=at,
                seconds=3,
                method="ExportLoginToken",
                retry_at=at + timedelta(seconds=4),
            )
        )
    for n in range(script.restarts):
        out.append(ActorRestarted(**env, at=next(clock), restart=n + 1, delay_s=0.5, error="x"))
    match script.outcome:
        case "authorized" | "password":
            out.append(Scanned(**env, at=next(clock)))
            if script.outcome == "password":
                out.append(PasswordRequired(**env, at=next(clock), hint="pet"))
                out.append(PasswordRejected(**env, at=next(clock), tries_left=4))
            out.append(
                Authorized(
                    **env, at=next(clock), user_id=1000 + attempt, dc_id=2, session_fingerprint="f"
                )
            )
            if script.logout:
                out.append(LoggedOut(**env, at=next(clock), reason="command"))
        case "expired":
            out.append(Expired(**env, at=next(clock)))
        case "failed":
            out.append(LoginFailed(**env, at=next(clock), reason="flood_wait"))
        case "crashed":
            out.append(LoginFailed(**env, at=next(clock), reason="crashed"))
        case "cancelled":
            out.append(LoginCancelled(**env, at=next(clock)))
        case _:
            pass
    return out


def tenant_events(tenant: str, scripts: Sequence[Script], start: datetime = T0) -> list[Event]:
    """Consecutive attempts 1..n of one tenant."""
    out: list[Event] = []
    at = start
    for number, script in enumerate(scripts, start=1):
        events = attempt_events(tenant, number, at, script)
        out += events
        at = events[-1].at + timedelta(seconds=13)
    return out


def interleave(per_tenant: Sequence[list[Event]], order: Sequence[int]) -> list[Event]:
    """Merge the tenants' lists keeping each one's order; ``order`` picks the next tenant."""
    queues = [list(reversed(events)) for events in per_tenant]
    out: list[Event] = []
    picks = iter(order)
    while any(queues):
        live = [q for q in queues if q]
        choice = next(picks, 0) % len(live)
        out.append(live[choice].pop())
    return out


def as_stored(events: Sequence[Event], *, first_seq: int = 1) -> list[StoredMessage]:
    """Stored messages without a log (MACs are irrelevant to the projections)."""
    return [
        StoredMessage(
            first_seq + i,
            event_subject(event.tenant),
            encode_event(event),
            "",
            int(event.at.timestamp() * 1e9),
        )
        for i, event in enumerate(events)
    ]


async def fill(log: MemoryEventLog, events: Sequence[Event]) -> None:
    """Append ``events`` one by one in the given order (a chained, verifiable log)."""
    heads: dict[str, Head] = {}
    for event in events:
        head = heads.get(event.tenant) or await log.head(event.tenant)
        heads[event.tenant] = await log.append(event.tenant, [event], head)


scripts = st.builds(
    Script,
    outcome=st.sampled_from(OUTCOMES),
    qrs=st.integers(1, 3),
    floods=st.integers(0, 2),
    restarts=st.integers(0, 2),
    gap=st.integers(1, 40),
    logout=st.booleans(),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """A few tenants' plausible histories, interleaved in a random stream order."""
    count = draw(st.integers(1, 4))
    per_tenant = [
        tenant_events(
            f"t{i}",
            draw(st.lists(scripts, min_size=1, max_size=3)),
            T0 + timedelta(seconds=draw(st.integers(0, 200))),
        )
        for i in range(count)
    ]
    order = draw(st.lists(st.integers(0, 3), max_size=200))
    return interleave(per_tenant, order)


_ANY_TENANT = st.sampled_from(["t0", "t1"])


@st.composite
def _any_event(draw: st.DrawFn, at: datetime) -> Event:
    env: dict[str, Any] = {
        "tenant": draw(_ANY_TENANT),
        "attempt": draw(st.integers(1, 3)),
        "at": at,
    }
    later = at + timedelta(seconds=30)
    makers: list[Any] = [
        lambda: LoginStarted(**env, deadline=later,
                             proxy=draw(st.sampled_from(["", "socks5://h:1080 #ab12cd34ef56"]))),
        lambda: QrIssued(**env, url=f"tg://login?token={at.second}", expires_at=later,
                         dc_id=draw(st.integers(1, 5))),
        lambda: Scanned(**env),
        lambda: PasswordRequired(**env),
        lambda: PasswordRejected(**env, tries_left=1),
        lambda: Authorized(**env, user_id=draw(st.integers(1, 9)), dc_id=2,
                           session_fingerprint="f"),
        lambda: Expired(**env),
        lambda: LoginFailed(**env, reason=draw(st.sampled_from(["crashed", "flood_wait"]))),
        lambda: LoginCancelled(**env),
        lambda: LoggedOut(**env, reason="command"),
        lambda: FloodWaited(**env, seconds=draw(st.integers(1, 60)), method="m"),
        lambda: ActorRestarted(**env, restart=1, delay_s=0.5, error="x"),
        lambda: QuarantineLifted(**env, sequences=(draw(st.integers(1, 9)),)),
        lambda: SessionLeased(**env, holder="app", lease_id="l1", fence=draw(st.integers(1, 9)),
                              expires_at=later),
        lambda: SessionReleased(**env, lease_id="l1", reason="released"),
    ]  # fmt: skip
    made: Event = draw(st.sampled_from(makers))()
    return made


@st.composite
def arbitrary_histories(draw: st.DrawFn, min_size: int = 1) -> list[Event]:
    """Any events in any order (two tenants, three attempts): the rules' corner cases, such
    as a QR during 2FA, a second ending, an attempt without a start, time going backwards.
    At least ``min_size`` events (Hypothesis prefers short lists), at most 60."""
    seconds = draw(st.lists(st.integers(0, 600), min_size=min_size, max_size=60))
    return [draw(_any_event(T0 + timedelta(seconds=s, microseconds=7))) for s in seconds]
