"""Debian's Prometheus binaries for the tests: found on PATH, or a failure saying how to get them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
HOW_TO = "{name} not found: install Debian's prometheus package (apt-get install -y prometheus, as root; `make test` does)"


def tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; fails the test (never skips) without it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(HOW_TO.format(name=name), pytrace=False)
    return path
