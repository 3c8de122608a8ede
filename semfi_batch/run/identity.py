"""What a file or a job folder is, by os.stat alone: the identities that say whether it is the one seen
before (the input-hash cache, the ledger's fingerprints, the finished stamp). Nothing here imports more than
the standard library, so a resume can check them before it loads anything else."""

from __future__ import annotations

import os
from pathlib import Path

StatIdentity = tuple[int, int, int, int, int]


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
