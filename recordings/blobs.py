"""Content-addressed blob storage on a local (or shared) filesystem.

A blob is durable before :meth:`BlobStore.put` returns: written to a temporary file,
fsynced, renamed into place, and the directory fsynced, so a crash right after an API
answer cannot lose evidence. Keys are ``<kind>/<yyyy>/<mm>/<sha256>.<suffix>``; the
SHA-256 is returned for the caller to store beside the row that references the blob.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

_KEY = re.compile(r"^[a-z0-9_-]+/\d{4}/\d{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?$")


class BlobError(Exception):
    """A blob key is malformed or the blob is missing."""


@dataclass(frozen=True, slots=True)
class BlobRef:
    key: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "sha256": self.sha256, "size": self.size}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise BlobError(f"malformed blob key {key!r}")
        return self.root / key

    def _put_sync(self, data: bytes, suffix: str, kind: str) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        now = dt.datetime.now(dt.UTC)
        key = f"{kind}/{now:%Y}/{now:%m}/{digest}{suffix}"
        target = self.path(key)
        if target.exists():
            return BlobRef(key, digest, len(data))  # same content already durable
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return BlobRef(key, digest, len(data))

    async def put(self, data: bytes, *, suffix: str = "", kind: str = "blob") -> BlobRef:
        if suffix and not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
            raise BlobError(f"malformed suffix {suffix!r}")
        return await asyncio.to_thread(self._put_sync, data, suffix, kind)

    async def put_file(self, source: Path, *, suffix: str = "", kind: str = "blob") -> BlobRef:
        """Move a finished file (e.g. a recording) into the store under its hash."""

        def move() -> BlobRef:
            digest = hashlib.sha256()
            with open(source, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                os.fsync(fh.fileno())
            now = dt.datetime.now(dt.UTC)
            key = f"{kind}/{now:%Y}/{now:%m}/{digest.hexdigest()}{suffix}"
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            size = source.stat().st_size
            os.replace(source, target)
            _fsync_dir(target.parent)
            return BlobRef(key, digest.hexdigest(), size)

        return await asyncio.to_thread(move)

    async def read(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise BlobError(f"blob {key} is missing") from None

    async def check(self, key: str, sha256: str) -> str | None:
        """``None`` if the blob is there with that hash, else what is wrong."""

        def digest() -> str | None:
            try:
                path = self.path(key)
            except BlobError as exc:
                return str(exc)
            if not path.exists():
                return "missing"
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            return None if h.hexdigest() == sha256 else "content changed (sha256 mismatch)"

        return await asyncio.to_thread(digest)

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True
