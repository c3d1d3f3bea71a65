"""The API's cache folder: each version's serving files, fetched from the lake once per host.

The worker processes of a host share it. A lock file orders them: one fetches a version while the
others wait, then every worker maps the same files, so the kernel keeps one copy of their pages.
A version is fetched into a folder of its own, named by the "latest" pointer that announced it (the
version, its rows, size and time): a version rewritten in place, as a right-to-erasure request does
(shared/curated/erasure.py), comes with another row count and is fetched again, never served
from the copy cached before; every folder cached before it is deleted then, since any may hold what
was erased. Each file is checked against the SHA-256 and size on its object's
head, and only a complete, checked folder takes its name, so a failed or corrupt fetch leaves
nothing behind. Before a fetch, the cache deletes all but the ``versions`` - 1 most recently
loaded, so with the one coming it never holds more than ``versions`` (a worker still mapping a
deleted file keeps reading it: the kernel frees it when the last mapping goes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from services.api.serving.index import CorruptServingFile
from shared.lake import CuratedVersion
from shared.serving_format import NAMES, VERSION_NAME, serving_key

CHUNK = 4 << 20
INCOMING = ".incoming-"  # a fetch in progress (or a crashed one's leftovers)


class MissingServingFiles(LookupError):
    pass


def _append(f, digest, chunk: bytes) -> None:
    f.write(chunk)
    digest.update(chunk)


class ServingCache:
    def __init__(self, root: Path, versions: int):
        self.root = root
        self.versions = versions

    def folder(self, pointer: CuratedVersion) -> Path:
        if not VERSION_NAME.match(pointer.version):
            raise CorruptServingFile(f"{pointer.version!r} is not a version name")
        identity = hashlib.sha1(json.dumps([pointer.rows, pointer.size_bytes, pointer.published_at]).encode())
        return self.root / f"{pointer.version}@{identity.hexdigest()[:12]}"

    def entries(self) -> list[Path]:
        """The versions held, most recently loaded first."""
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Held by one worker process of the host at a time (it blocks a thread, never the event loop)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    async def fetch(self, s3, bucket: str, pointer: CuratedVersion) -> Path:
        """The version's folder; downloaded and checked unless it is there already. Call it holding the lock."""
        folder = self.folder(pointer)
        if folder.is_dir():
            return folder
        held = self.entries()
        if any(p.name.split("@")[0] == pointer.version for p in held):
            # The version was rewritten in place: an erasure, which rewrites every kept version holding the
            # buyer. No copy cached before it may stay on disk; a rollback fetches its version again.
            stale = held
        else:
            stale = held[self.versions - 1 :]  # room first: with the new one, never more than kept
        for entry in stale:
            shutil.rmtree(entry, ignore_errors=True)
        version = pointer.version
        incoming = self.root / f"{INCOMING}{folder.name}"
        shutil.rmtree(incoming, ignore_errors=True)  # whoever left it is gone: we hold the lock
        incoming.mkdir()
        try:
            for name in NAMES:
                await self._download(s3, bucket, serving_key(version, name), incoming / f"{name}.arrow")
            incoming.rename(folder)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        return folder

    async def _download(self, s3, bucket: str, key: str, path: Path) -> None:
        try:
            response = await s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            raise MissingServingFiles(
                f"{key} is not in the lake: a version published before serving files existed; "
                "`reviews curated rollback --to VERSION` builds them"
            ) from None
        expected = response.get("Metadata", {})
        if "sha256" not in expected or "size" not in expected:
            raise CorruptServingFile(f"{key} carries no checksum: not written by the publisher")
        digest = hashlib.sha256()
        body = response["Body"]
        try:
            with path.open("wb") as f:
                async for chunk in body.iter_chunks(CHUNK):
                    await anyio.to_thread.run_sync(_append, f, digest, chunk)  # hashing and disk off the loop
                size = f.tell()
        finally:
            body.close()
        if size != int(expected["size"]) or digest.hexdigest() != expected["sha256"]:
            raise CorruptServingFile(
                f"{key}: {size} bytes whose SHA-256 differs from the one published "
                f"({expected['size']} bytes): corrupt or truncated"
            )

    def loaded(self, pointer: CuratedVersion) -> None:
        """Mark a version as just loaded: the last one a fetch deletes to make room."""
        os.utime(self.folder(pointer))

    def forget(self, pointer: CuratedVersion) -> None:
        """Drop a cached version that failed to open: the next load fetches it again."""
        shutil.rmtree(self.folder(pointer), ignore_errors=True)
