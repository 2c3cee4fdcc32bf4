"""What ``pip install .`` (not editable) gives: a wheel of exactly our three packages plus
``nats.conf``, whose ``tgqr demo`` and ``tgqr up`` work with the checkout off ``sys.path``.

For speed (~15 s in all, most of it the demo) the wheel is installed ``--no-deps`` into a fresh
venv whose dependencies come from this project's venv through a ``.pth`` line. That line only
adds the directory: the editable install's own ``.pth`` there is not processed, so our packages
come from the wheel alone. The nats-server binary, which a full install puts into the venv's
``bin``, is linked there from this venv. What this does not check is that the dependency list
in ``pyproject.toml`` is complete: the project venv has the test extras too.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"actors", "events", "projections"}
# What a checkout holds besides the source; none of it belongs in a build.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    cwd: Path  # an empty directory, far from the checkout
    env: dict[str, str]

    def tgqr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own console script
            [str(self.venv / "bin" / "tgqr"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - pip, venv and the installed interpreter
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """Our environment without anything that would put the checkout on sys.path or
    configure the service (a TGQR_API_ID would make `up` dial the real Telegram)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "TGQR_", "OTEL_")) and key != "VIRTUAL_ENV"
    }
    return env | {"TGQR_HTTP": "127.0.0.1:0"}  # any free port: 8080 may be taken


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources, and a
    # stale build/lib in the checkout would put deleted modules into the wheel.
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    wheels = base / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, source)
    (wheel,) = wheels.glob("tgqr-*.whl")

    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel,
    )  # fmt: skip
    site_packages = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    # Only after the install: pip would otherwise see the editable tgqr through this line.
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site_packages / "tgqr_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    (venv / "bin" / "nats-server").symlink_to(Path(sys.executable).parent / "nats-server")

    cwd = base / "elsewhere"
    cwd.mkdir()
    return Installed(wheel, venv, site_packages, cwd, _clean_env())


def test_wheel_holds_our_packages_and_nats_conf(installed: Installed) -> None:
    """The wheel has actors, events and projections (with nats.conf), and no benchmarks or tests."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == PACKAGES
    assert "actors/service/nats.conf" in names
    conf = installed.site_packages / "actors" / "service" / "nats.conf"
    assert conf.read_text() == (ROOT / "actors" / "service" / "nats.conf").read_text()


def test_installed_packages_come_from_the_wheel(installed: Installed) -> None:
    """In the venv our packages load from its site-packages, the checkout is not on
    sys.path, and `benchmarks` is not importable."""
    probe = """if True:
        import importlib.util, json, sys
        import actors.cli, actors.service._natsserver as ns, events, projections
        print(json.dumps({
            "path": sys.path,
            "files": [m.__file__ for m in (actors.cli, ns, events, projections)],
            "conf": str(ns.REPO_CONF), "conf_exists": ns.REPO_CONF.is_file(),
            "benchmarks": importlib.util.find_spec("benchmarks") is not None,
            "tests": importlib.util.find_spec("tests") is not None,
        }))
    """
    python = installed.venv / "bin" / "python"
    found = json.loads(_run(python, "-c", probe, cwd=installed.cwd, env=installed.env))
    site = installed.site_packages.resolve()
    assert all(Path(f).resolve().is_relative_to(site) for f in found["files"]), found["files"]
    assert Path(found["conf"]).resolve().is_relative_to(site)
    assert found["conf_exists"]
    assert str(ROOT) not in [str(Path(p).resolve()) for p in found["path"] if p], found["path"]
    assert not found["benchmarks"], "benchmarks is importable from the installed venv"
    assert not found["tests"], "tests is importable from the installed venv"


def test_demo_runs_from_the_wheel(installed: Installed) -> None:
    """`tgqr demo` from the installed console script, in another directory, exits 0."""
    done = installed.tgqr("demo", "--data", str(installed.cwd / "demo-data"))
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "demo finished" in done.stdout, done.stdout


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_up_serves_and_stops_on_ctrl_c(installed: Installed) -> None:
    """`tgqr up` serves (`tgqr status` answers) and Ctrl-C stops it with exit 0. Ctrl-C in a
    terminal sends SIGINT to the whole foreground process group, child processes included."""
    data = installed.cwd / "up-data"
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [str(installed.venv / "bin" / "tgqr"), "up", "--data", str(data)],
        cwd=installed.cwd,
        env=installed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a shell job gets
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        lines = _lines(proc.stdout)
        while not (seen and seen[-1].startswith("tgqr up:")):
            line = lines.get(timeout=30)
            assert line is not None, "tgqr up exited before it was ready:\n" + "".join(seen)
            seen.append(line)
        status = installed.tgqr("status", "--data", str(data), timeout=30)
        assert status.returncode == 0, f"{status.stdout}\n{status.stderr}"
        assert "no tenants" in status.stdout

        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
        while (line := lines.get(timeout=5)) is not None:
            seen.append(line)
        output = "".join(seen)
        assert code == 0, f"exit {code} after Ctrl-C:\n{output}"
        assert "stopped" in output, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
