"""The shipped Prometheus rules: valid, every alert unit-tested, and only our metric names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from actors.metrics import Exposition
from actors.telemetry import Telemetry

from ._tools import RULES_DIR, tool

RULES = RULES_DIR / "tgqr.rules.yml"
TESTS = RULES_DIR / "tgqr.rules.test.yml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own arguments
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_checks_the_rules() -> None:
    """``promtool check rules`` accepts the file."""
    result = run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """``promtool test rules``: each alert fires on its made-up series and stays quiet below."""
    result = run("test", "rules", str(TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    """No alert ships without a unit test that expects it to fire."""
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.MULTILINE))
    # A case expecting alerts has a list under exp_alerts (not "exp_alerts: []").
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- ", TESTS.read_text()))
    assert len(alerts) >= 11
    assert alerts == fired


def exported_names() -> set[str]:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    exposition = Exposition(reader, process=False)
    t = Telemetry(meters, exposition=exposition)
    t.watch(projector_lag=lambda: 0, live_actors=lambda: 0, owned_partitions=lambda: 0)
    t.watch_dcs(lambda: [(2, True)])
    t.backup("ok")
    t.floodwait("a", 1, "m")
    t.rate_limit_hit("a", "start")
    t.login_failed("a", "crashed")
    t.session_cleanup("a", 1.0)
    t.session_lease("a", "granted")
    t.requests_refused("query", "busy")
    t.nats_error("other")
    body = exposition.render()[0].decode()
    meters.shutdown()
    return {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line[:1] != "#"}


def test_rules_use_only_names_tgqr_exports() -> None:
    """Every series name in the rules is one tgqr serves (a renamed metric breaks this test,
    not the operator's alerts in silence)."""
    text = "\n".join(
        line.split("#")[0] for line in RULES.read_text().splitlines() if "summary:" not in line
    )
    used = set(re.findall(r"\b(?:auth|telethon|tgqr)_[a-z_]+\b", text))
    assert used
    assert used <= exported_names()


def test_missing_promtool_fails_with_how_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without Debian's prometheus the rules tests fail (never skip) saying how to install it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y prometheus"):
        tool("promtool")
