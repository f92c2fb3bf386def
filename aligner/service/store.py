"""Object stores for recordings: a local folder (``file:///path``) or an S3-compatible bucket
(``s3://bucket/prefix``), behind one small interface.

Keys are relative, ``/``-separated paths (``call_1a2b/call.json``). A :class:`FileStore` maps a
key to a file under its root (today's recordings folder, same layout); an :class:`S3Store` to an
object under its prefix. Both write each object whole and atomically, can write an object only
if it does not exist yet (``once=True``: a render that runs twice writes its outputs once), list
keys under a prefix and the "folders" (call ids) at the top.

S3 settings come from the usual AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``) or ``endpoint=`` (``--store-endpoint``);
boto3 is only needed for ``s3://`` (the ``cluster`` extra). The calls block: run them in threads
from an event loop.

>>> import tempfile
>>> store = open_store("file://" + tempfile.mkdtemp())
>>> store.put("call_1/call.json", b"{}"), store.put("call_1/call.json", b"{}", once=True)
(True, False)
>>> store.list("call_1/"), store.folders()
(['call_1/call.json'], ['call_1'])
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import AlignerError
from ..timeline import write_atomic

__all__ = ["FileStore", "NotInStore", "ObjectStore", "S3Store", "StoreError", "open_store"]

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


class StoreError(AlignerError):
    """The store cannot be reached or refused an operation (``key``: the object, if any)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class NotInStore(StoreError):
    """No object under ``key``."""


class ObjectStore(ABC):
    """Whole objects under relative keys. ``url`` names the store (``file://...``, ``s3://...``)."""

    url: str

    @abstractmethod
    def put(self, key: str, data: bytes, *, once: bool = False) -> bool:
        """Write ``data`` under ``key`` (atomically); with ``once``, only if ``key`` is absent.

        Returns:
            False if ``once`` and the object already existed (nothing written), else True.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object under ``key``.

        Raises:
            NotInStore: there is none.
        """

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (sorted)."""

    @abstractmethod
    def folders(self) -> list[str]:
        """The first path components of every key (the call ids), sorted."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None:
        """Remove ``keys`` (absent ones are ignored)."""

    def get_or_none(self, key: str) -> bytes | None:
        """The object under ``key``, or None when there is none."""
        try:
            return self.get(key)
        except NotInStore:
            return None


def _check(key: str) -> str:
    if not _KEY_RE.match(key) or len(key) > 900:
        raise StoreError(f"invalid store key {key[:80]!r}", key)
    return key


class FileStore(ObjectStore):
    """A folder: ``key`` is the file ``root/key``; writes are atomic (temp file, fsync, rename).

    Args:
        root: the folder (created).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def path(self, key: str) -> Path:
        """The file of ``key`` (exists or not)."""
        return self.root / _check(key)

    def put(self, key: str, data: bytes, *, once: bool = False) -> bool:
        path = self.path(key)
        try:
            if not once:
                write_atomic(path, data)
                return True
            tmp = write_atomic(path.with_name(f".{path.name}.{os.getpid()}.once"), data)
            try:
                os.link(tmp, path)  # fails if the object exists: written once, atomically
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            return True
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}", key) from exc

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotInStore(f"no {key} in {self.url}", key) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} in {self.url}: {exc}", key) from exc

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        out = []
        try:
            for folder, dirs, files in os.walk(base):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = Path(folder).relative_to(self.root).as_posix()
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix) and not name.startswith("."):
                        out.append(key)
        except OSError as exc:
            raise StoreError(f"cannot list {self.url}: {exc}") from exc
        return sorted(out)

    def folders(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root)
                          if e.is_dir(follow_symlinks=False) and _KEY_RE.match(e.name))
        except OSError as exc:
            raise StoreError(f"cannot list {self.url}: {exc}") from exc

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)


class S3Store(ObjectStore):
    """A bucket of an S3-compatible service, objects under ``prefix``.

    Args:
        bucket: the bucket (it must exist).
        prefix: key prefix inside it ("" or ending without a slash).
        endpoint: the service's URL (None: AWS, or ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise StoreError("s3:// stores need boto3: pip install 'aligner[cluster]'") from exc
        self.bucket = bucket
        self.endpoint = endpoint
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # fail fast (the callers retry on their own schedule: uploads stay on disk meanwhile)
        config = Config(connect_timeout=3, read_timeout=20, max_pool_connections=32,
                        retries={"max_attempts": 2, "mode": "standard"},
                        s3={"addressing_style": "path"} if endpoint else None)
        self._client = boto3.session.Session().client("s3", endpoint_url=endpoint or None,
                                                      config=config)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (BotoCoreError, ClientError)

    def _fail(self, what: str, key: str | None, exc: Exception) -> StoreError:
        return StoreError(f"cannot {what} {key or ''} in {self.url}: {exc}", key)

    def put(self, key: str, data: bytes, *, once: bool = False) -> bool:
        extra = {"IfNoneMatch": "*"} if once else {}
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.prefix + _check(key), Body=data,
                                    **extra)
        except self._errors as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if once and code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self._fail("write", key, exc) from exc
        return True

    def get(self, key: str) -> bytes:
        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=self.prefix + _check(key))
            return obj["Body"].read()
        except self._errors as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise NotInStore(f"no {key} in {self.url}", key) from None
            raise self._fail("read", key, exc) from exc

    def _pages(self, **kwargs):
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            yield from paginator.paginate(Bucket=self.bucket, **kwargs)
        except self._errors as exc:
            raise self._fail("list", kwargs.get("Prefix"), exc) from exc

    def list(self, prefix: str) -> list[str]:
        n = len(self.prefix)
        return sorted(obj["Key"][n:] for page in self._pages(Prefix=self.prefix + prefix)
                      for obj in page.get("Contents", ()))

    def folders(self) -> list[str]:
        n = len(self.prefix)
        return sorted(p["Prefix"][n:].rstrip("/")
                      for page in self._pages(Prefix=self.prefix, Delimiter="/")
                      for p in page.get("CommonPrefixes", ()))

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            objects = [{"Key": self.prefix + _check(k)} for k in keys[i:i + 1000]]
            try:
                self._client.delete_objects(Bucket=self.bucket,
                                            Delete={"Objects": objects, "Quiet": True})
            except self._errors as exc:
                raise self._fail("delete", keys[i], exc) from exc


def open_store(url: str, endpoint: str | None = None) -> ObjectStore:
    """The store named by ``url``: ``file:///path`` (or a plain path) or ``s3://bucket/prefix``.

    Raises:
        StoreError: an unknown scheme or a malformed URL.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file:// store URLs name a local path, got {url!r}")
        return FileStore(unquote(parsed.path) if parsed.scheme else url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"s3:// store URLs need a bucket: s3://BUCKET/PREFIX, got {url!r}")
        return S3Store(parsed.netloc, parsed.path, endpoint)
    raise StoreError(f"unknown store {url!r}: use file:///path or s3://bucket/prefix")
