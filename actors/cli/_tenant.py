"""``tgqr tenant repair TENANT``: show a quarantined tenant's bad messages and, confirmed,
release it.

Releasing writes one ``QuarantineLifted`` event, sealed with the chain key, that names the bad
sequences; they stay in the log, and the audit keeps showing them as released. So the command
needs the chain key (never created here) and the right to append to the event log.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime

from actors.service import CHAIN_KEY_ENV, QuarantineChangedError, lift_quarantine
from events import (
    ConcurrencyConflictError,
    QuarantineLifted,
    TenantLog,
    TenantQuarantinedError,
    verify_tail,
)
from events.audit import key_mismatch_text
from events.jetstream import JetStreamEventLog

from ._admin import chain_key, where_keys_are
from ._connection import EXIT_FAIL, EXIT_OK, CliError, connected

__all__ = ["cmd_tenant_repair"]


def _confirm(prompt: str) -> bool:
    """Ask on the terminal (or read one line of stdin): only ``y`` or ``yes`` confirms.

    Blocks the (idle) event loop on purpose, with Python's own SIGINT handler in place:
    Ctrl-C then raises ``KeyboardInterrupt`` at once, where the loop's handler would only
    cancel after the line was read.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(prompt, end="", flush=True)
        answer = sys.stdin.readline()
    finally:
        signal.signal(signal.SIGINT, previous)
    if not sys.stdin.isatty():
        print()
    return answer.strip().lower() in {"y", "yes"}


def _show(log: TenantLog) -> None:
    print(f"{log.tenant} is quarantined: {len(log.bad)} stored message(s) do not verify")
    for bad in log.bad:
        print(f"  sequence {bad.seq}: {bad.reason}")
    if log.released:
        print(f"  (and {len(log.released)} released earlier)")
    print(
        "Releasing leaves them in the log (the audit keeps showing them) and appends a "
        "QuarantineLifted event naming them; the tenant then takes commands again."
    )


async def cmd_tenant_repair(args: argparse.Namespace) -> int:
    """``tenant repair TENANT [--yes] [--note TEXT]``.

    Says so and exits 0 when the tenant is not quarantined. The prompt runs with no NATS
    connection open (it may wait for long); the release then happens only if the bad messages
    are still exactly the ones shown.

    Raises:
        CliError: no chain key, not confirmed, or the log changed meanwhile.
    """
    key, source = chain_key(args)
    async with connected(args) as nc:
        log = JetStreamEventLog(nc.jetstream(), key)
        # A wrong key would take every event for a bad one, and its release would be one more.
        if (tail := await verify_tail(log, key)).key_mismatch:
            raise CliError(f"{key_mismatch_text(tail, source)}: {where_keys_are(CHAIN_KEY_ENV)}")
        before = await log.load_tenant(args.tenant)
    if not before.quarantined:
        released = (
            f" ({len(before.released)} message(s) released earlier)" if before.released else ""
        )
        print(f"{args.tenant} is not quarantined: nothing to do{released}")
        return EXIT_OK
    _show(before)
    if not args.yes and not _confirm(f"release {args.tenant}? [y/N] "):
        raise CliError(f"{args.tenant} not released (answer y, or pass --yes)")
    async with connected(args) as nc:
        log = JetStreamEventLog(nc.jetstream(), key)
        try:
            after = await lift_quarantine(
                log,
                args.tenant,
                clock=lambda: datetime.now(UTC),
                note=args.note or "",
                sequences=[bad.seq for bad in before.bad],
            )
        except QuarantineChangedError as exc:
            raise CliError(f"{exc}: nothing released, run it again") from None
        except (ConcurrencyConflictError, TenantQuarantinedError):
            raise CliError(
                f"the log of {args.tenant} changed while releasing it: nothing released, "
                "run it again"
            ) from None
    lift = next(r.seq for r in reversed(after.records) if isinstance(r.event, QuarantineLifted))
    print(
        f"released {args.tenant}: sequence(s) {', '.join(str(b.seq) for b in before.bad)} "
        f"by QuarantineLifted at sequence {lift}"
    )
    if after.quarantined:  # a bad message arrived right after the release
        later = ", ".join(str(b.seq) for b in after.bad)
        print(f"{args.tenant} is quarantined again by sequence(s) {later}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK
