"""How log lines look: ``TGQR_LOG_FORMAT=text`` (the default) or ``json``.

``json`` writes one JSON object per line (``ts``, ``level``, ``logger``, ``message``, and
``exc`` with the traceback when there is one), for log shippers that parse lines. The
message is the same text the plain format shows, so it never holds more than it does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

__all__ = ["LOG_FORMAT_ENV", "JsonFormatter", "LogFormatError", "log_formatter"]

LOG_FORMAT_ENV: Final = "TGQR_LOG_FORMAT"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormatError(ValueError):
    """Raised for a ``TGQR_LOG_FORMAT`` that is neither ``text`` nor ``json``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_formatter(env: Mapping[str, str]) -> logging.Formatter:
    """The formatter ``TGQR_LOG_FORMAT`` asks for.

    Raises:
        LogFormatError: the variable is set to something else than ``text`` or ``json``.
    """
    name = env.get(LOG_FORMAT_ENV, "").strip().lower() or "text"
    if name == "json":
        return JsonFormatter()
    if name == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise LogFormatError(f"{LOG_FORMAT_ENV} must be text or json (it is {name!r})")
