"""The demo's last flow: the end user's page. A signed link (the ``link`` command), the page
over plain HTTP (opening it starts nothing; its "Get a code" button does), the phone's scan,
and the page's outcome.

Run from a terminal, the demo prints the link and waits (two minutes at most, Enter skips) for
a person to open it and scan with ``tgqr sim scan``; otherwise it plays that person itself.
"""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import anyio

from events import Event

__all__ = ["page_flow"]

_WAIT_S = 120


class _Client(Protocol):
    async def command(self, tenant: str, verb: str, **body: Any) -> dict[str, Any]: ...

    async def expect(self, tenant: str, kind: str, within_s: float = 30) -> Event: ...

    async def scan(self, tenant: str, user_id: int, **extra: Any) -> None: ...


def _get(url: str) -> str:
    """GET the page (blocking); error pages carry a state too."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - our own http link
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode(errors="replace"))


def _state_of(url: str) -> str:
    """The page's ``<body data-state>``."""
    found = re.search(r'<body data-state="([a-z_]+)"', _get(url))
    return found.group(1) if found else "?"


def _press_start(url: str) -> None:
    """Press the page's "Get a code" button as a browser would (its form, its CSRF token)."""
    found = re.search(r'name="csrf" value="([^"]+)"', _get(url))
    if found is None:
        raise RuntimeError("the page shows no button")
    form = urllib.parse.urlencode({"csrf": found.group(1)}).encode()
    request = urllib.request.Request(  # noqa: S310 - our own http link
        f"{url}/start", data=form, headers={"sec-fetch-site": "same-origin"}
    )
    with urllib.request.urlopen(request, timeout=20):  # noqa: S310 - our own http link
        pass


async def _person(c: _Client) -> None:
    """Until ivan logs in, Enter is pressed, or the wait is over."""
    async with anyio.create_task_group() as tg:

        async def authorized() -> None:
            await c.expect("ivan", "Authorized", within_s=_WAIT_S)
            tg.cancel_scope.cancel()

        async def enter() -> None:
            await anyio.wait_readable(sys.stdin)
            sys.stdin.readline()
            tg.cancel_scope.cancel()

        tg.start_soon(authorized)
        tg.start_soon(enter)


async def page_flow(c: _Client, data_dir: Path, *, interactive: bool) -> None:
    """Show the page of tenant ``ivan``; with nobody at the terminal, check it works.

    Raises:
        DemoFailedError (from the client): a command or the scan was refused.
        TimeoutError: an expected event did not come.
    """
    print("\n== the end user's page (ivan): a signed link; its button starts the login")
    url = (await c.command("ivan", "link"))["url"]
    print(f"  {url}")
    if interactive:
        print(
            '  open it in a browser, press "Get a code", then let the phone scan it from another\n'
            "  terminal:\n"
            f"    tgqr sim scan --data {data_dir} --tenant ivan --user 1010\n"
            f"  (waiting up to {_WAIT_S // 60} minutes for ivan to log in; Enter skips)"
        )
        try:
            await _person(c)
        except TimeoutError:
            print("  nobody logged in; going on")
        print(f"  the page says: {await anyio.to_thread.run_sync(_state_of, url)}")
        return
    print(f"  GET the page -> data-state={await anyio.to_thread.run_sync(_state_of, url)}")
    await anyio.to_thread.run_sync(_press_start, url)
    await c.expect("ivan", "QrIssued")  # the page follows the log: the QR is there now
    print(f'  press "Get a code" -> data-state={await anyio.to_thread.run_sync(_state_of, url)}')
    await c.scan("ivan", 1010)
    await c.expect("ivan", "Authorized")
    print(f"  GET the page -> data-state={await anyio.to_thread.run_sync(_state_of, url)}")
