"""Which jobs are finished. Each job folder's record.json is the truth; ledger.jsonl is an append-only index
of published records so that resuming a large run reads one file instead of one per job."""

from __future__ import annotations

import json
import os
from pathlib import Path

from semfi_batch.media.frames import write_bytes_atomic
from semfi_batch.run.layout import RunLayout

RECORD_NAME = "record.json"


class JobLedger:
    """Finished-job records of one output root, as of `load()`."""

    def __init__(self, layout: RunLayout):
        self.layout = layout
        self._published: dict[str, int] = {}  # pair_id -> inode of jobs/<pair_id>
        self._index: dict[str, dict] = {}  # pair_id -> last ledger entry

    def load(self) -> JobLedger:
        """Scan jobs/ (one directory listing) and read the ledger."""
        with os.scandir(self.layout.jobs) as entries:
            self._published = {e.name: e.inode() for e in entries if e.is_dir(follow_symlinks=False)}
        self._index = {}
        if self.layout.ledger.exists():
            with open(self.layout.ledger, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill
                    if isinstance(entry, dict) and "pair_id" in entry:
                        self._index[entry["pair_id"]] = entry
        return self

    def record(self, pair_id: str, key: str) -> dict | None:
        """The published record of `pair_id` if it was made with `key`, else None."""
        ino = self._published.get(pair_id)
        if ino is None:
            return None
        entry = self._index.get(pair_id)
        if entry is not None and entry.get("key") == key and entry.get("_ino") == ino:
            return entry["record"]
        record = read_record(self.layout.jobs / pair_id)
        if record is not None and record.get("key") == key:
            return record
        return None

    def append(self, record: dict, job_dir: Path) -> None:
        """Index a record just published in `job_dir` (one write call: atomic for O_APPEND)."""
        entry = {"pair_id": record["pair_id"], "key": record["key"], "_ino": os.stat(job_dir).st_ino}
        entry["record"] = record
        line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
        fd = os.open(self.layout.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        self._published[record["pair_id"]] = entry["_ino"]
        self._index[record["pair_id"]] = entry


def read_record(job_dir: Path) -> dict | None:
    """The record.json of a job folder, or None when missing or unreadable."""
    try:
        with open(job_dir / RECORD_NAME, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def write_record(job_dir: Path, record: dict) -> None:
    """Write record.json atomically: the last file of a job, its completion marker."""
    data = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
    write_bytes_atomic(job_dir / RECORD_NAME, data)
