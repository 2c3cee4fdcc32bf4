"""CLI tables of the query replies."""

from __future__ import annotations

from projections import render_metrics, render_status
from projections.metrics import empty_figures


def test_status_table_has_a_row_per_tenant() -> None:
    """Each tenant is one line; missing values show as '-'; QR urls are left out."""
    items = [
        {"tenant": "acme", "state": "authorized", "attempt": 2, "user_id": 7,
         "updated_at": "2025-01-01T12:00:07.5Z", "qr_url": None,
         "proxy": "socks5://127.0.0.1:1080 #ab12cd34ef56"},
        {"tenant": "beta", "state": "pending", "attempt": 1, "user_id": None,
         "qr_url": "tg://login?token=SECRETISH", "qr_expires_at": "2025-01-01T12:00:37Z"},
    ]  # fmt: skip
    lines = render_status(items).splitlines()
    assert lines[0].split()[:3] == ["TENANT", "STATE", "ATTEMPT"]
    assert lines[1].split()[:4] == ["acme", "authorized", "2", "7"]
    assert "2025-01-01 12:00:07" in lines[1]
    assert lines[0].split()[-1] == "PROXY"
    assert lines[1].endswith("socks5://127.0.0.1:1080 #ab12cd34ef56")
    assert lines[2].endswith("-")
    assert "SECRETISH" not in "\n".join(lines)
    assert render_status([]) == "no tenants"


def test_metrics_table_has_a_column_per_tenant() -> None:
    """Rates show as percentages, missing quantiles as '-'."""
    figures = empty_figures() | {"started": 4, "authorized": 3, "success_rate": 0.75}
    reply = {"ok": True, "window_s": 60, "global": figures, "tenants": {"acme": figures}}
    text = render_metrics(reply)
    lines = text.splitlines()
    assert lines[0].split() == ["window", "60", "s", "ALL", "acme"]
    assert "success rate" in text
    assert "75.0%" in text
    assert any(line.startswith("scan p50 (s)") and line.split()[-1] == "-" for line in lines)
