"""The long-running parts of the service besides the actors: restarts, the session validator.

``keep_running`` restarts a part that fails after it started, with backoff; ``validate_sessions``
asks every tenant with a stored session, paced, to check it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors.login import CommandReply, Envelope, Mail, Validate
from actors.supervision import (
    BackoffPolicy,
    MailboxFullError,
    RestartTracker,
    StoppedError,
    TenantSupervisor,
)
from actors.vault import SessionVault

__all__ = ["keep_running", "validate_sessions"]

log = logging.getLogger("tgqr.service")


class _Once:
    """Forwards only the first ``started`` to the real task status (restarts are silent)."""

    def __init__(self, status: TaskStatus[Any]) -> None:
        self._status = status
        self.done = False

    def started(self, value: object = None) -> None:
        if not self.done:
            self.done = True
            self._status.started(value)


async def keep_running(
    name: str,
    part: Callable[..., Awaitable[None]],
    random_source: Callable[[], float],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``part(task_status=...)``; restart it with backoff when it fails after starting."""
    tracker = RestartTracker(BackoffPolicy(give_up=False), random_source)
    once = _Once(task_status)
    while True:
        tracker.on_started(time.monotonic())
        try:
            await part(task_status=once)
            return
        except Exception as exc:
            if not once.done:
                raise
            decision = tracker.on_crash(time.monotonic())
            log.exception(
                "%s failed (%s), restarting in %.1fs", name, type(exc).__name__, decision.delay_s
            )
            await anyio.sleep(decision.delay_s)


async def validate_sessions(
    supervisor: TenantSupervisor[Mail],
    vault: SessionVault,
    every_s: float,
    *,
    owns: Callable[[str], bool] = lambda _tenant: True,
    concurrency: int = 4,
    reply_timeout_s: float = 60.0,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Every ``every_s``, ask each tenant with a stored session to check it (``get_me``).

    Paced: at most ``concurrency`` checks run at once, each waited for, so a cycle never
    floods Telegram or the mailboxes. Nothing is decrypted here: the actor decides (a tenant
    that is not authorized, or whose session is leased, answers without touching Telegram).
    One busy tenant is skipped this round; the cycle goes on.
    """
    task_status.started()
    limiter = anyio.CapacityLimiter(concurrency)

    async def check(tenant: str) -> None:
        answered = anyio.Event()

        def done(_: CommandReply) -> None:
            answered.set()

        async with limiter:
            try:
                supervisor.submit(tenant, Envelope(Validate(), done))
            except (MailboxFullError, StoppedError):
                log.info("tenant=%s busy: validation skipped this round", tenant)
                return
            with anyio.move_on_after(reply_timeout_s):
                await answered.wait()

    while True:
        await anyio.sleep(every_s)
        async with anyio.create_task_group() as tg:
            for tenant in await vault.tenants():
                if not owns(tenant):
                    continue  # another instance checks it
                await limiter.acquire()  # pace the submissions too
                limiter.release()
                tg.start_soon(check, tenant)
