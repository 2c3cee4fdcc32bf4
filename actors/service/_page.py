"""The end user's page as a child process of ``tgqr up`` (one by default; ``--http off``: none).

The service binds the page's address itself (so the port is known, and kept across restarts
of the child), issues the links (the ``link`` command) with the link key, and starts
``tgqr page`` on the bound socket as a separate process and NATS role (``page``): whatever
reaches the HTTP port costs that process only, and it can do on NATS no more than the role
allows. The child gets:

- the listening socket, the key pipe and the ready pipe as inherited file descriptors;
- a minimal environment (:func:`page_environment`: no ``TGQR_*`` secret, no credentials);
- the chain and link keys, when they come from the environment, through the key pipe (read
  once, then closed), otherwise it reads the 0600 key files of the data directory itself; the
  bot token (``TGQR_BOT_TOKEN``, for the Mini App check) the same way; ``TGQR_BOT_TOKEN_FILE``,
  ``TGQR_BOT_ID`` and ``TGQR_INITDATA_MAX_AGE_S`` in its environment;
- its NATS credentials from ``<data>/creds/page.json`` (made by the embedded server's first
  start), or the file named by ``TGQR_PAGE_NATS_CREDS``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Self
from urllib.parse import urlsplit, urlunsplit

import anyio
from anyio.abc import Process, TaskStatus

from actors.gateway.page import (
    BOT_ID_ENV,
    BOT_TOKEN_ENV,
    BOT_TOKEN_FILE_ENV,
    DEFAULT_LINK_TTL_S,
    INITDATA_MAX_AGE_ENV,
    LINK_KEY_ENV,
    HttpAddressError,
    LinkKeyError,
    LinkSigner,
    bind_http,
    load_link_key,
    url_of,
)

from ._config import CHAIN_KEY_ENV, ConfigError, ServiceConfig
from ._nats import NATS_URL_FILE

__all__ = ["PAGE_CREDS_ENV", "PageProcess", "open_page", "page_environment"]

log = logging.getLogger("tgqr.service")

PAGE_CREDS_ENV: Final = "TGQR_PAGE_NATS_CREDS"
"""A NATS ``.creds`` file for the page's role on an external server (a path, not a secret)."""
READY: Final = b"ready\n"
_READY_WAIT_S: Final = 60.0
_STOP_WAIT_S: Final = 6.0
_KEPT: Final = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "PYTHONPATH")
_KEPT_TGQR: Final = (
    "TGQR_LOG_LEVEL",
    "TGQR_LOG_FORMAT",
    BOT_TOKEN_FILE_ENV,  # a path (the child reads the token itself), not the token
    BOT_ID_ENV,
    INITDATA_MAX_AGE_ENV,
)


def page_environment(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The page process's environment: locale, paths, the log level and the Mini App check's
    non-secret settings, nothing else (no key, no credential, no ``TGQR_*`` secret, no cloud or
    telemetry settings)."""
    kept = {name: env[name] for name in (*_KEPT, *_KEPT_TGQR) if name in env}
    kept.setdefault("PATH", os.defpath)
    return kept


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (the service's credentials stay with the service)."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


class PageProcess:
    """The page's bound socket and the ``tgqr page`` child serving it (see the module).

    :meth:`run` starts the child and reports started once it serves; cancelling it stops the
    child (SIGTERM, then SIGKILL after a few seconds). Close it (or leave its ``with``) to stop
    listening.
    """

    def __init__(
        self,
        sock: socket.socket,
        signer: LinkSigner,
        command: list[str],
        keys: Mapping[str, str],
        env: Mapping[str, str],
    ) -> None:
        self._sock = sock
        self._signer = signer
        self._command = command
        self._keys = dict(keys)
        self._env = dict(env)
        self.url = url_of(sock)
        """Where the page listens, e.g. ``http://127.0.0.1:8080`` (the actual port)."""
        self.pid: int | None = None
        """The running child's process id (None before it starts)."""

    def __repr__(self) -> str:
        return f"PageProcess(url={self.url!r}, pid={self.pid})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening (after :meth:`run` has returned)."""
        self._sock.close()

    @property
    def public_url(self) -> str:
        """The base of the links (``TGQR_PUBLIC_URL``, else :attr:`url`)."""
        return self._signer.base_url

    def links(
        self, tenant: str, ttl_s: int = DEFAULT_LINK_TTL_S, lang: str = ""
    ) -> dict[str, object]:
        """A new link to ``tenant``'s page (in ``lang`` when neither Telegram nor the browser
        names a language): the ``link`` command's reply fields."""
        return self._signer.issue(tenant, ttl_s, lang).to_json()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the page process until cancelled; blocks until it serves, then until it ends.

        Raises:
            RuntimeError: the process exited (before serving, or later: the caller restarts it).
        """
        keys_read, keys_write = os.pipe()
        ready_read, ready_write = os.pipe()
        # The lifeline: this process holds its write end for the child's life, so the child
        # reads EOF and stops when this process ends in any way (a SIGKILL included), instead
        # of living on with the HTTP socket.
        life_read, life_write = os.pipe()
        try:
            # Written before the child starts: the pipe's buffer holds these few hundred bytes.
            os.write(keys_write, json.dumps(self._keys).encode())
            os.close(keys_write)
            keys_write = -1
            fds = (self._sock.fileno(), keys_read, ready_write, life_read)
            command = [
                *self._command,
                "--listen-fd", str(fds[0]), "--keys-fd", str(keys_read),
                "--ready-fd", str(ready_write), "--parent-fd", str(life_read),
            ]  # fmt: skip
            process = await anyio.open_process(
                command,
                stdin=None,
                stdout=None,
                stderr=None,
                env=self._env,
                pass_fds=fds,
                start_new_session=True,  # a terminal's Ctrl-C reaches the service, which stops it
            )
        except BaseException:
            os.close(life_write)
            raise
        finally:
            for fd in (keys_read, ready_write, keys_write, life_read):
                if fd >= 0:
                    os.close(fd)
        self.pid = process.pid
        try:
            await self._until_ready(process, ready_read)
            task_status.started()
            code = await process.wait()
            raise RuntimeError(f"the page process exited with status {code}")
        finally:
            os.close(ready_read)
            with anyio.CancelScope(shield=True):
                await _stop(process)
            os.close(life_write)
            self.pid = None

    async def _until_ready(self, process: Process, ready_read: int) -> None:
        os.set_blocking(ready_read, False)
        got = b""
        with anyio.fail_after(_READY_WAIT_S):
            while not got.endswith(READY):
                await anyio.wait_readable(ready_read)
                chunk = os.read(ready_read, 64)
                if not chunk:  # the child closed it without serving: it exited
                    code = await process.wait()
                    raise RuntimeError(f"the page process did not start (status {code})")
                got += chunk
        log.info("end user's page on %s (process %d, role page)", self.url, process.pid)


async def _stop(process: Process) -> None:
    """SIGTERM, then SIGKILL if it is still running after a few seconds; waits for it."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    with anyio.move_on_after(_STOP_WAIT_S):
        await process.wait()
        return
    log.warning("the page process did not stop in time: killed")
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()


def _nats_urls(config: ServiceConfig) -> list[str]:
    if config.nats_urls is not None:
        return [_without_userinfo(url) for url in config.nats_urls]
    text = (config.data_dir / NATS_URL_FILE).read_text(encoding="utf-8")
    return [url for url in text.split() if url]


def open_page(config: ServiceConfig, env: Mapping[str, str] = os.environ) -> PageProcess:
    """The page's socket, bound to ``config.http`` now, and how to start its process; close it
    (or enter it) to stop listening. Call it once NATS is up (the embedded server's URL file
    is written).

    Blocks briefly on the file system (the link key). Raises:
        ConfigError: the address cannot be listened on, or the link key is unusable.
    """
    try:
        link_key = load_link_key(config.data_dir, env)
        sock = bind_http(config.http or "")
    except (HttpAddressError, LinkKeyError) as exc:
        raise ConfigError(str(exc)) from None
    url = url_of(sock)
    signer = LinkSigner(link_key, config.public_url or url, _utcnow)
    command = [
        sys.executable, "-m", "actors.cli", "page",
        "--data", str(config.data_dir.resolve()),
        "--nats", ",".join(_nats_urls(config)),
    ]  # fmt: skip
    if config.public_url:
        command += ["--public-url", config.public_url]
    creds = env.get(PAGE_CREDS_ENV)
    if creds:
        command += ["--creds", creds]
    secret_names = (CHAIN_KEY_ENV, LINK_KEY_ENV, BOT_TOKEN_ENV)
    keys = {name: env[name] for name in secret_names if env.get(name)}
    return PageProcess(sock, signer, command, keys, page_environment(env))


def _utcnow() -> datetime:
    return datetime.now(UTC)
