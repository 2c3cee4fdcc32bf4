"""The page as its own process (``tgqr page``) against a running service and a real
nats-server, attacked over real sockets: slow requests are cut by its read deadlines, 1,200
idle connections under a 1,024 soft open-files limit leave it serving, connections per client
address are capped, and ``tgqr up`` runs it as a child with a minimal environment and the role
``page``.

Nothing sleeps: each wait is for an answer or an end of file, bounded by a timeout well above
the deadline the server under test was started with.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process, SocketStream
from cryptography.fernet import Fernet

from actors.gateway.page import LinkSigner, load_link_key
from actors.service import NatsServer

from .conftest import Env, open_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WAIT_S = 30
FLOOD = 1200
PER_ADDRESS = 50


@asynccontextmanager
async def page_process(
    env: Env, nats_url: str, *flags: str, soft_files: int | None = None
) -> AsyncIterator[tuple[Process, str]]:
    """``tgqr page`` on a free port (its soft open-files limit lowered to ``soft_files``
    first, as systemd's default would); yields the process and its URL."""
    load_link_key(env.data_dir)  # the service makes it when it serves a page itself
    command = [sys.executable, "-m", "actors.cli", "page", "--nats", nats_url,
               "--data", str(env.data_dir), "--http", "127.0.0.1:0", *flags]  # fmt: skip
    if soft_files is not None:
        lower = (
            "import os, resource, sys; "
            "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft_files}, hard)); "
            "os.execv(sys.executable, sys.argv[1:])"
        )
        command = [sys.executable, "-c", lower, *command]
    process = await anyio.open_process(command, stdout=-1, stderr=None)
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(WAIT_S):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        found = re.search(r"serving on (http://\S+)", line.decode())
        assert found, line
        yield process, found.group(1)
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.fail_after(WAIT_S):
            await process.wait()


def signer(env: Env, base: str) -> LinkSigner:
    return LinkSigner(load_link_key(env.data_dir), base, lambda: datetime.now(UTC))


async def http(
    base: str, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """One request on a fresh connection from 127.0.0.1: status, headers, body."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}", "connection: close",
             f"content-length: {len(body)}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with anyio.fail_after(WAIT_S):
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(request)
            raw = b""
            try:
                while True:
                    raw += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, text = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    found = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in found.items()}, text.decode()


async def closed_by_server(stream: SocketStream) -> bytes:
    """What the server sends before it closes ``stream`` (waits for the close)."""
    got = b""
    try:
        while True:
            got += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return got


async def press_start(base: str, path: str, state: str) -> None:
    """The person's way: GET the page (it starts nothing: ``state`` stays), press the button."""
    status, _, html = await http(base, "GET", path)
    assert status == 200
    assert f'data-state="{state}"' in html
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    status, headers, _ = await http(
        base,
        "POST",
        f"{path}/start",
        body=f"csrf={found.group(1)}".encode(),
        headers={"content-type": "application/x-www-form-urlencoded",
                 "sec-fetch-site": "same-origin"},
    )  # fmt: skip
    assert status == 303, headers


async def start_through_the_page(env: Env, base: str, tenant: str) -> None:
    await press_start(base, "/l/" + signer(env, base).issue(tenant, 60).token, "idle")
    types = [e["type"] for e in await env.events(tenant)]
    assert types[:1] == ["LoginStarted"], types


async def test_slow_requests_are_cut(tmp_path: Path, nats_server: NatsServer) -> None:
    """A connection that sends nothing, one whose headers never end, and one whose body never
    ends are each closed by the server after its deadline (0.5 s here, 5 s and 10 s by
    default); a request that arrives in time is served on the same server."""
    async with (
        open_env(tmp_path, nats_server, browser=False, http=None) as env,
        page_process(env, nats_server.url, "--header-timeout", "0.5", "--body-timeout", "0.5") as (
            _,
            base,
        ),
    ):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        slow = {
            "silent": b"",
            "headers": b"GET / HTTP/1.1\r\nhost: x\r\nx-never: ",
            "body": (
                f"POST /l/{signer(env, base).issue('alice', 60).token}/start HTTP/1.1\r\n"
                "host: x\r\ncontent-type: application/x-www-form-urlencoded\r\n"
                "content-length: 100\r\n\r\ncsrf="
            ).encode(),
        }
        began = time.monotonic()
        async with AsyncExitStack() as stack:
            streams = {}
            for name, sent in slow.items():
                stream = await stack.enter_async_context(await anyio.connect_tcp(host, int(port)))
                if sent:
                    await stream.send(sent)
                streams[name] = stream
            status, _, _ = await http(base, "GET", "/")  # served meanwhile
            assert status == 200
            with anyio.fail_after(WAIT_S):
                for stream in streams.values():
                    assert await closed_by_server(stream) == b""
        assert time.monotonic() - began >= 0.5  # the deadline, not a refusal


async def test_a_flood_of_idle_connections_leaves_the_page_serving(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The attack of the issue: 1,200 connections that never finish their headers, against a
    process whose soft open-files limit is 1,024 (systemd's default). The page raises it to the
    hard limit at start, so it holds them all and still serves the page and its button, and
    the service answers commands meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    async with (
        open_env(tmp_path, nats_server, browser=False, http=None) as env,
        page_process(env, nats_server.url, "--header-timeout", "60", soft_files=1024) as (
            process,
            base,
        ),
        AsyncExitStack() as stack,
    ):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        flood = []
        for n in range(FLOOD):
            source = f"127.0.0.{2 + n // PER_ADDRESS}"  # under the per-address cap (64)
            stream = await stack.enter_async_context(
                await anyio.connect_tcp(host, int(port), local_host=source)
            )
            await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n")
            flood.append(stream)
        await start_through_the_page(env, base, "alice")
        reply = await env.request("tgqr.cmd.bob.start", {})
        assert reply["ok"], reply
        # Served after the whole flood was accepted (one queue, in order): it holds them all.
        held = len(list(Path(f"/proc/{process.pid}/fd").iterdir()))
        assert held > FLOOD, held


async def test_connections_per_client_address_are_capped(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """One address gets at most ``--max-per-client`` connections: the next gets a bare 503 and
    is closed; another address is served meanwhile."""
    async with (
        open_env(tmp_path, nats_server, browser=False, http=None) as env,
        page_process(env, nats_server.url, "--max-per-client", "8") as (_, base),
        AsyncExitStack() as stack,
    ):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        for _ in range(8):
            await stack.enter_async_context(
                await anyio.connect_tcp(host, int(port), local_host="127.0.0.9")
            )
        async with await anyio.connect_tcp(host, int(port), local_host="127.0.0.9") as ninth:
            with anyio.fail_after(WAIT_S):
                answer = await closed_by_server(ninth)
        assert answer.startswith(b"HTTP/1.1 503 ")
        status, _, _ = await http(base, "GET", "/")
        assert status == 200


async def test_tgqr_up_runs_the_page_as_a_child_of_its_own(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tgqr up``'s page is another process: no ``TGQR_*`` secret in its environment, the link
    key (from the service's environment here) reaches it through a pipe, not its command line,
    and the button starts a login through NATS."""
    link_key = "ab" * 32
    monkeypatch.setenv("TGQR_LINK_KEY", link_key)
    monkeypatch.setenv("TGQR_VAULT_KEYS", Fernet.generate_key().decode())
    async with open_env(tmp_path, nats_server, browser=False) as env:
        page = env.service.page
        assert page is not None
        assert page.pid is not None
        assert page.pid != os.getpid()
        environ = Path(f"/proc/{page.pid}/environ").read_bytes().split(b"\0")
        assert [v for v in environ if v.startswith(b"TGQR_")] == []
        assert link_key.encode() not in Path(f"/proc/{page.pid}/cmdline").read_bytes()
        await start_through_the_page(env, page.url, "carol")  # links signed with that key


async def test_the_page_keeps_the_ownership_check(tmp_path: Path, nats_server: NatsServer) -> None:
    """The attack of the issue: an app starts erin expecting user 1001; the attempt expires;
    the link's page starts a new one, and user 4242 scans it. The page's attempt keeps the
    expectation, so 4242 does not become erin's account."""
    async with open_env(tmp_path, nats_server, browser=False) as env:
        page = env.service.page
        assert page is not None
        reply = await env.request("tgqr.cmd.erin.start", {"expected_user_id": 1001, "ttl_s": 1})
        assert reply["ok"], reply
        await env.wait_for("erin", "Expired")
        link = await env.link("erin")
        live = await env.nc.subscribe("tgqr.evt.erin")
        await press_start(page.url, link.removeprefix(page.public_url), "expired")
        started = [e for e in await env.events("erin") if e["type"] == "LoginStarted"]
        assert [(e["attempt"], e["expected_user_id"]) for e in started] == [(1, 1001), (2, 1001)]
        with anyio.fail_after(WAIT_S):
            async for msg in live.messages:  # the new attempt's code, ready to scan
                event = json.loads(msg.data)
                if (event["type"], event["attempt"]) == ("QrIssued", 2):
                    break
        await live.unsubscribe()
        scan = await env.request("tgqr.sim.scan", {"tenant": "erin", "user_id": 4242})
        assert scan["ok"], scan
        failed = await env.wait_for("erin", "LoginFailed")
        assert failed["reason"] == "ownership_mismatch"
        assert "Authorized" not in [e["type"] for e in await env.events("erin")]
