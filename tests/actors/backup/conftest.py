"""The backup tests' S3 server: one SeaweedFS for the whole run (it starts in about 4 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._seaweed import S3Server, seaweedfs

BUCKET = "tgqr-backups"


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 (SeaweedFS on loopback) with the bucket ``tgqr-backups``."""
    with seaweedfs(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server
