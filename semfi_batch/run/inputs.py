"""Input files by content: the SHA-256 of every keyframe image and source video a job reads, cached by
(device, inode, size, mtime, ctime) so that a resume of 100,000 rows hashes nothing it hashed before. A file
rewritten in place keeps neither its ctime nor, in practice, its inode and mtime together: it is hashed again.

The cache lives in the output root (.input-hashes.jsonl); damaged lines are skipped."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from semfi_batch.atomic_write import write_atomic
from semfi_batch.run.identity import StatIdentity, stat_identity
from semfi_batch.run.notices import notice

CACHE_NAME = ".input-hashes.jsonl"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class InputHashes:
    """Content hashes of input files, cached by stat identity."""

    def __init__(self, cache: Path | None = None):
        self.cache = cache
        self._known: dict[str, tuple[StatIdentity, str]] = {}
        self._dirty = False
        if cache is not None:
            self._load(cache)

    def identity(self, path: Path) -> tuple[StatIdentity | None, str]:
        """(stat identity, sha256) of `path`; ("missing", ...) when it cannot be read."""
        key = str(path)
        ident = stat_identity(path)
        if ident is None:
            return None, "missing"
        known = self._known.get(key)
        if known is not None and known[0] == ident:
            return ident, known[1]
        try:
            digest = file_sha256(path)
        except OSError:
            return None, "missing"
        self._known[key] = (ident, digest)
        self._dirty = True
        return ident, digest

    def save(self, cache: Path | None = None) -> None:
        """Write the cache (when something new was hashed) atomically; a cache that cannot be written only
        costs hashing again next time."""
        target = cache or self.cache
        if target is None or not self._dirty:
            return
        lines = [json.dumps({"path": p, "id": list(i), "sha256": d}) for p, (i, d) in self._known.items()]
        with contextlib.suppress(Exception):
            write_atomic(target, ("\n".join(lines) + "\n").encode())
            self._dirty = False

    def _load(self, cache: Path) -> None:
        if cache.is_symlink() or not cache.is_file():
            return
        damaged = 0
        with contextlib.suppress(OSError), open(cache, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                    self._known[entry["path"]] = (tuple(int(x) for x in entry["id"]), str(entry["sha256"]))
                except (ValueError, KeyError, TypeError):
                    damaged += 1
        if damaged:
            notice(f"{cache}: {damaged} damaged line(s) skipped (a cache: those files are hashed again)")
