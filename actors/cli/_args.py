"""The command line's parser and argument types: a usage mistake is one line that names the
option and its limits in plain words (``--ttl must be an integer from 1 to 600``), exit 2."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

from events import InvalidTenantError, validate_tenant

from ._connection import EXIT_USAGE

__all__ = ["CliParser", "int_in", "iso_time", "tenant_arg"]

_PREFIX = re.compile(r"^argument (\S+?): (?=must be )")


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (``tgqr: ...``), exit 2;
    its subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        message = _PREFIX.sub(r"\1 ", message)
        print(f"tgqr: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argument type: an integer from ``low`` to ``high`` (None: no upper limit)."""
    words = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"must be an integer {words} (not {value!r})")
        return number

    return parse


def tenant_arg(value: str) -> str:
    """An argument type: a tenant id (``^[A-Za-z0-9_-]{1,64}$``)."""
    try:
        return validate_tenant(value)
    except InvalidTenantError:
        raise argparse.ArgumentTypeError(
            f"must be 1 to 64 characters: letters, digits, _ and - only (not {value[:80]!r})"
        ) from None


def iso_time(value: str) -> datetime:
    """An argument type: an ISO 8601 time, local when it names no zone."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an ISO time (not {value!r})") from None
    return parsed if parsed.tzinfo else parsed.astimezone()
