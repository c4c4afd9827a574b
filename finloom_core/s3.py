"""Where lakes and backups go: a local folder or an S3 prefix, behind one small interface.

``open_store("s3://bucket/prefix")`` talks to S3 (or any S3 API: MinIO, moto, Ceph) with
boto3, configured by the standard AWS settings only: ``AWS_ENDPOINT_URL`` (unset: AWS),
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or any credential source boto3 knows:
profiles, instance roles) and ``AWS_DEFAULT_REGION``. Anything else is a local folder.

Keys are ``/``-separated paths relative to the store's root. Every failure (a missing
bucket, refused credentials, an unreachable endpoint, a missing object) is a one-line
:class:`BackupError` naming the location, never a botocore traceback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from finloom_core.errors import BackupError, first_line

S3_SCHEME = "s3://"
# S3's answers to credentials it does not accept (HEAD requests get the bare status)
_REFUSED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
)


class Store(Protocol):
    """A folder of objects: local or S3."""

    url: str

    def check(self) -> None:
        """Fail in one line if the location cannot be used (missing bucket, bad credentials)."""

    def list_keys(self, prefix: str = "") -> dict[str, int]:
        """Every key under ``prefix`` (relative to the root) -> its size in bytes."""

    def put_file(self, local: Path, key: str) -> None: ...

    def get_file(self, key: str, local: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def delete(self, keys: list[str]) -> None: ...


def is_s3(url: str) -> bool:
    return url.strip().lower().startswith(S3_SCHEME)


def open_store(url: str) -> Store:
    """``s3://bucket[/prefix]`` -> an S3 store; anything else -> a local folder."""
    if is_s3(url):
        bucket, _, prefix = url.strip()[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise BackupError(f"{url!r}: expected s3://bucket[/prefix]")
        return S3Store(bucket, prefix.strip("/"))
    return LocalStore(Path(url).expanduser())


class LocalStore:
    """A local folder; every object is written to a temporary name then renamed, so a
    reader never sees half an object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise BackupError(f"{self.url}: refusing key {key!r}")
        return self.root.joinpath(*parts)

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise BackupError(f"{self.url} exists and is not a folder")

    def list_keys(self, prefix: str = "") -> dict[str, int]:
        if not self.root.is_dir():
            return {}
        found: dict[str, int] = {}
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".finloom-tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found[key] = path.stat().st_size
        return found

    def put_file(self, local: Path, key: str) -> None:
        target = self._path(key)
        with self._atomic(target) as tmp:
            shutil.copyfile(local, tmp)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        with self._atomic(target) as tmp:
            tmp.write_bytes(data)

    def get_file(self, key: str, local: Path) -> None:
        source = self._path(key)
        try:
            shutil.copyfile(source, local)
        except OSError as exc:
            raise BackupError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise BackupError(f"{self.url}: cannot read {key}: {exc.strerror or exc}") from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            for parent in path.parents:  # drop folders left empty, never the root
                if parent == self.root or not parent.is_relative_to(self.root):
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break

    @contextmanager
    def _atomic(self, target: Path) -> Iterator[Path]:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".finloom-tmp-", dir=target.parent)
            os.close(fd)
        except OSError as exc:
            raise BackupError(f"{self.url}: cannot write: {exc.strerror or exc}") from None
        tmp = Path(name)
        try:
            yield tmp
            os.replace(tmp, target)
        except OSError as exc:
            raise BackupError(f"{self.url}: cannot write {target.name}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)


class S3Store:
    """``s3://bucket/prefix`` through boto3 (standard AWS settings from the environment)."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"{S3_SCHEME}{bucket}/{prefix}".rstrip("/")
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            )
            try:
                self._client = boto3.client("s3", config=config)
            except Exception as exc:  # bad region or endpoint setting
                raise BackupError(f"{self.url}: S3 client: {first_line(exc)}") from None
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, exc: Exception, action: str) -> BackupError:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return BackupError(
                f"{self.url}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or a profile)"
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            message = error.get("Message") or ""
            if code in ("NoSuchBucket", "404") and action == "check":
                return BackupError(f"{self.url}: bucket {self.bucket!r} does not exist")
            if code in _REFUSED:
                return BackupError(
                    f"{self.url}: {action}: access refused ({code}): check the AWS credentials"
                    " (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and their rights on the bucket"
                )
            return BackupError(f"{self.url}: {action}: {code} {message}".rstrip())
        return BackupError(f"{self.url}: {action}: {first_line(exc)}")

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._fail(exc, "check") from None

    def list_keys(self, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        start = len(self._key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"][start:]] = int(item["Size"])
        except Exception as exc:
            raise self._fail(exc, "list") from None
        return found

    def put_file(self, local: Path, key: str) -> None:
        try:
            self.client.upload_file(str(local), self.bucket, self._key(key))
        except Exception as exc:
            raise self._fail(exc, f"upload {key}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail(exc, f"upload {key}") from None

    def get_file(self, key: str, local: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(local))
        except Exception as exc:
            raise self._fail(exc, f"download {key}") from None

    def get_bytes(self, key: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            return bytes(body.read())
        except Exception as exc:
            raise self._fail(exc, f"download {key}") from None

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
            chunk = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})
            except Exception as exc:
                raise self._fail(exc, "delete") from None
