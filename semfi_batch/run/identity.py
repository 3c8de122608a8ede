"""What a file or a job folder is, by os.stat alone: the identities that say whether it is the one seen
before (the input-hash cache, the ledger's fingerprints, the finished stamp); and a file's content digest
remembered per identity in the user's cache (model weights, hashed once per machine). Nothing here imports
more than the standard library, so a resume can check them before it loads anything else."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

StatIdentity = tuple[int, int, int, int, int]

# The content digests of files hashed on this machine, by absolute path: {"path": {"id": [...], "sha256": ...}}.
CONTENT_DIGESTS_NAME = "content-digests.json"
_known_digests: dict[str, tuple[StatIdentity, str]] = {}  # this process's, so a file is looked up once
_digests_lock = threading.Lock()


def stat_identity(path: Path | str) -> StatIdentity | None:
    """(device, inode, size, mtime_ns, ctime_ns) of a file, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def folder_fingerprint(job_dir: Path | str) -> str | None:
    """Inode, mtime and ctime of a job folder and its frames/: any output deleted, added or renamed over
    changes it. (String paths: a resume scan calls this once per finished job.)"""
    try:
        top = os.stat(job_dir)
    except OSError:
        return None
    try:
        frames = os.stat(f"{job_dir}/frames")
        inner = f"{frames.st_ino}.{frames.st_mtime_ns}.{frames.st_ctime_ns}"
    except OSError:
        inner = "-"
    return f"{top.st_ino}.{top.st_mtime_ns}.{top.st_ctime_ns}.{inner}"


def user_cache_dir() -> Path:
    """semfi-batch's folder in the user's cache: $XDG_CACHE_HOME/semfi-batch, else ~/.cache/semfi-batch."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "semfi-batch"


def content_digest(path: Path | str) -> str | None:
    """SHA-256 of a file's bytes, computed once per version of the file (its stat identity) on this machine and
    kept in the user's cache (CONTENT_DIGESTS_NAME), so 30 GB of model weights are read once, not per run; a
    notice says when a file is hashed. None when the file cannot be read. A cache that cannot be read or
    written only costs hashing again."""
    from semfi_batch.atomic_write import write_atomic  # here: a resume's stamp check imports this module
    from semfi_batch.run.notices import notice

    path = Path(path).absolute()
    ident = stat_identity(path)
    if ident is None:
        return None
    key = str(path)
    with _digests_lock:
        known = _known_digests.get(key)
        if known is not None and known[0] == ident:
            return known[1]
        cache = user_cache_dir() / CONTENT_DIGESTS_NAME
        entry = _read_digests(cache).get(key)
        if isinstance(entry, dict) and entry.get("id") == list(ident) and isinstance(entry.get("sha256"), str):
            digest = entry["sha256"]
        else:
            notice(f"hashing {path} ({ident[2] / 1e9:.2f} GB) once for this machine (kept in {cache})")
            try:
                with open(path, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
            except OSError:
                return None
            if stat_identity(path) != ident:  # changed while read: this digest is of no one version
                return None
            digests = _read_digests(cache)  # again: another process may have added its own meanwhile
            digests[key] = {"id": list(ident), "sha256": digest}
            with contextlib.suppress(Exception):
                cache.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(cache, json.dumps(digests, indent=1, sort_keys=True).encode())
        _known_digests[key] = (ident, digest)
        return digest


def _read_digests(cache: Path) -> dict:
    try:
        found = json.loads(cache.read_bytes())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
