"""Reading a 2FA password: without echo from a terminal, else one line of standard input.

On a terminal, a pipe or a socket the read waits in the event loop (no worker thread), so
Ctrl-C, or the login ending elsewhere, cancels it at once like any other wait, and the
terminal's echo is restored on every path. ``tgqr`` then reports the interrupt in one line
(see :func:`actors.cli._main.main`).
"""

from __future__ import annotations

import getpass
import os
import signal
import stat
import sys
import termios

import anyio

from ._connection import CliError

__all__ = ["read_password", "read_password_sync"]

_MAX = 4096


def _from_stdin() -> str:
    line = sys.stdin.readline()
    if not line:
        raise CliError("no password on standard input")
    return line.rstrip("\n")


async def _line_of(fd: int) -> str:
    """The next line of a non-terminal ``fd``, read a byte at a time (the next prompt's line
    stays in the pipe); waits in the event loop where it can (pipes, sockets).

    Raises:
        CliError: the input ended before a line.
    """
    waits = stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode)
    line = b""
    while not line.endswith(b"\n") and len(line) < _MAX:
        if waits:
            await anyio.wait_readable(fd)
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    if not line:
        raise CliError("no password on standard input")
    return line.decode(errors="replace").rstrip("\r\n")


async def read_password(prompt: str) -> str:
    """The password typed at ``prompt`` (no echo), or the next line of a non-terminal stdin.
    Blocks until a line is complete; cancellable at any point (Ctrl-C).

    Raises:
        CliError: standard input ended before a line.
    """
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        return await _line_of(fd)
    saved = termios.tcgetattr(fd)
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    typed = b""
    try:
        while not typed.endswith(b"\n") and len(typed) < _MAX:
            await anyio.wait_readable(fd)
            chunk = os.read(fd, _MAX)
            if not chunk:
                break
            typed += chunk
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        sys.stderr.write("\n")
        sys.stderr.flush()
    if not typed.endswith(b"\n"):
        raise CliError("no password typed")
    return typed.decode(errors="replace").rstrip("\r\n")


def read_password_sync(prompt: str) -> str:
    """Like :func:`read_password`, for synchronous callers in the main thread: Ctrl-C raises
    ``KeyboardInterrupt`` at once (the event loop's handler would only cancel, after the read).

    Raises:
        CliError: standard input ended before a line.
    """
    if not sys.stdin.isatty():
        return _from_stdin()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return getpass.getpass(prompt)
    finally:
        signal.signal(signal.SIGINT, previous)
