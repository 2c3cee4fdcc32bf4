"""Backups in S3 (or anything speaking its API: SeaweedFS, MinIO, Ceph) through boto3.

boto3 is synchronous: every call runs in a worker thread. Credentials, region and endpoint come
from the standard variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``), else from boto3's own chain (profile, instance role). The bucket must
exist: creating one is the operator's decision (its region, its policies).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import anyio
import boto3
import botocore.config
import botocore.exceptions

from ._errors import BackupNotFoundError, BackupTargetError
from ._targets import check_name

__all__ = ["S3Target"]

_FAILURES = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Target:
    """Objects under ``prefix/`` in an S3 bucket."""

    def __init__(self, bucket: str, prefix: str, *, env: Mapping[str, str] = os.environ) -> None:
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        self._client: Any = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
            region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        ).client(
            "s3",
            endpoint_url=self._endpoint,
            config=botocore.config.Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def __repr__(self) -> str:
        return f"S3Target({self.describe()!r})"

    def describe(self) -> str:
        where = f" at {self._endpoint}" if self._endpoint else ""
        return f"s3://{self._bucket}/{self._prefix}{where}"

    def _fail(self, what: str, exc: Exception) -> BackupTargetError:
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        else:
            detail = type(exc).__name__
        return BackupTargetError(f"S3 {what} in {self.describe()} failed ({detail})")

    async def put(self, name: str, data: bytes) -> None:
        key = self._prefix + check_name(name)
        try:
            await anyio.to_thread.run_sync(
                lambda: self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
            )
        except _FAILURES as exc:
            raise self._fail(f"write of {name}", exc) from None

    async def get(self, name: str) -> bytes:
        key = self._prefix + check_name(name)

        def read() -> bytes:
            body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        try:
            return await anyio.to_thread.run_sync(read)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise BackupNotFoundError(f"{self.describe()} holds no {name}") from None
            raise self._fail(f"read of {name}", exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail(f"read of {name}", exc) from None

    async def names(self) -> list[str]:
        def listing() -> list[str]:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            )
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
            return [key[len(self._prefix) :] for key in keys if "/" not in key[len(self._prefix) :]]

        try:
            return await anyio.to_thread.run_sync(listing)
        except _FAILURES as exc:
            raise self._fail("listing", exc) from None

    async def delete(self, name: str) -> None:
        key = self._prefix + check_name(name)
        try:
            await anyio.to_thread.run_sync(
                lambda: self._client.delete_object(Bucket=self._bucket, Key=key)
            )
        except _FAILURES as exc:
            raise self._fail(f"deletion of {name}", exc) from None
