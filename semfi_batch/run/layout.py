"""Where a run keeps its files, and the guarantee that every path it writes lies inside the output root."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from semfi_batch.errors import OutputPathError
from semfi_batch.manifest import pair_id_problem


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run's output root:

    jobs/<pair_id>/      finished jobs (frames/, clip.mp4, start.png, end.png, record.json)
    work/<pair_id>-<k>/  jobs in progress (k: first 16 hex digits of the job key), survives a kill
    trash/               job folders being replaced (removed right after)
    ledger.jsonl         append-only index of finished jobs (a cache; record.json files are the truth)
    metrics.parquet      one row per pair
    """

    root: Path

    @classmethod
    def create(cls, root: Path) -> RunLayout:
        """Make the output root (and its sub-folders), refusing roots that are files."""
        root = Path(root).expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise OutputPathError(f"output root {root} exists and is not a folder")
        layout = cls(root)
        for sub in ("jobs", "work", "trash"):
            path = root / sub
            path.mkdir(parents=True, exist_ok=True)
            layout.confine(path)
        return layout

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    def job_dir(self, pair_id: str) -> Path:
        return self.confine(self.jobs / _checked(pair_id))

    def work_dir(self, pair_id: str, key: str) -> Path:
        return self.confine(self.root / "work" / f"{_checked(pair_id)}-{key[:16]}")

    def confine(self, path: Path) -> Path:
        """Return `path` if it resolves (symlinks followed) inside the output root, else OutputPathError."""
        root = self.root.resolve()
        resolved = Path(path).resolve()
        if resolved != root and root not in resolved.parents:
            raise OutputPathError(f"{path} resolves to {resolved}, outside the output root {root}")
        return Path(path)

    def publish(self, staged: Path, pair_id: str) -> Path:
        """Move a finished job folder into jobs/<pair_id> atomically, replacing an older one.

        A kill between the two renames leaves no jobs/<pair_id>, so the job simply runs again."""
        target = self.job_dir(pair_id)
        if target.exists():
            trash = self.confine(self.root / "trash" / f"{pair_id}-{uuid.uuid4().hex[:8]}")
            os.rename(target, trash)
            os.rename(staged, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(staged, target)
        _fsync_dir(self.jobs)
        return target

    def empty_trash(self) -> None:
        """Remove leftovers of replacements interrupted by a kill."""
        for child in (self.root / "trash").iterdir():
            shutil.rmtree(child, ignore_errors=True)


def _checked(pair_id: str) -> str:
    if (why := pair_id_problem(pair_id)) is not None:
        raise OutputPathError(f"pair_id {pair_id!r} {why}")
    return pair_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
