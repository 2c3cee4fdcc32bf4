"""The page tells the end user how the login will appear in Telegram's Settings → Devices."""

from __future__ import annotations

import msgspec

from actors.gateway.page import PageView
from actors.gateway.page._render import render_page
from actors.login import evolve
from events import DeviceInfo

from ._fakes import T0, qr, started


def _pending(device: DeviceInfo | None) -> PageView:
    login = evolve(
        PageView.empty("acme").login, msgspec.structs.replace(started("acme"), device=device)
    )
    return PageView(evolve(login, qr("acme")))


def _page(view: PageView) -> str:
    return render_page(view, token="tok", csrf="c", now=T0, notice="")


def test_the_pending_page_names_the_device() -> None:
    html = _page(_pending(DeviceInfo(model="Acme Parser", system="Linux")))
    assert "will appear as «Acme Parser, Linux» in <b>Settings → Devices</b>" in html


def test_the_device_name_is_escaped() -> None:
    html = _page(_pending(DeviceInfo(model="<b>x</b>", system="Linux")))
    assert "<b>x</b>," not in html
    assert "&lt;b&gt;x&lt;/b&gt;, Linux" in html


def test_a_login_stored_before_devices_names_none() -> None:
    assert 'data-field="device"' not in _page(_pending(None))
