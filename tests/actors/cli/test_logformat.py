"""``TGQR_LOG_FORMAT``: plain lines by default, one JSON object per line with ``json``."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from actors.cli._logformat import JsonFormatter, LogFormatError, log_formatter
from actors.service import page_environment

from ._children import one_line, tgqr


def emit(formatter: logging.Formatter, message: str, *args: object, exc: bool = False) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger("tgqr.test.logformat")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc:
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception(message, *args)
        else:
            logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_json_is_one_object_per_line() -> None:
    """A message with newlines and a traceback still make exactly one line of JSON."""
    text = emit(
        log_formatter({"TGQR_LOG_FORMAT": "json"}), "tenant=%s\nsecond line", "acme", exc=True
    )
    lines = text.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == {"ts", "level", "logger", "message", "exc"}
    assert record["level"] == "ERROR"
    assert record["logger"] == "tgqr.test.logformat"
    assert record["message"] == "tenant=acme\nsecond line"
    assert "RuntimeError: boom" in record["exc"]
    assert record["ts"].endswith("+00:00")


def test_text_is_the_default() -> None:
    """Unset or ``text``: the plain ``time LEVEL logger: message`` line."""
    for env in ({}, {"TGQR_LOG_FORMAT": "text"}, {"TGQR_LOG_FORMAT": " "}):
        formatter = log_formatter(env)
        assert not isinstance(formatter, JsonFormatter)
        assert emit(formatter, "hello").rstrip().endswith("WARNING tgqr.test.logformat: hello")


def test_anything_else_is_refused() -> None:
    with pytest.raises(LogFormatError, match="TGQR_LOG_FORMAT must be text or json"):
        log_formatter({"TGQR_LOG_FORMAT": "xml"})


def test_the_page_process_keeps_the_format() -> None:
    """``tgqr up`` hands the log format to the page process it starts."""
    assert page_environment({"TGQR_LOG_FORMAT": "json"})["TGQR_LOG_FORMAT"] == "json"


@pytest.mark.slow
def test_a_bad_format_is_one_line_naming_the_setting() -> None:
    line = one_line(tgqr("status", TGQR_LOG_FORMAT="xml"))
    assert line == "tgqr: TGQR_LOG_FORMAT must be text or json (it is 'xml')"


@pytest.mark.slow
def test_json_lines_from_a_real_command(tmp_path: Path) -> None:
    """A command's log lines on stderr are JSON objects; its own one-line failure stays plain."""
    result = tgqr(
        "up", "--nats", "nats://127.0.0.1:1", "--data", str(tmp_path), "--metrics", "off",
        TGQR_LOG_FORMAT="json", TGQR_LOG_LEVEL="DEBUG",
    )  # fmt: skip
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("tgqr: cannot reach NATS")
    logged = [json.loads(line) for line in lines[:-1] if line.strip()]
    assert logged, result.stderr
    assert all({"ts", "level", "logger", "message"} <= set(record) for record in logged)
