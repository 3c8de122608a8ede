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
    """Finished-job records of one output root, as of `load()`.

    ledger.jsonl lines are `pair_id TAB key TAB inode TAB status TAB record-json`: a resume scan splits each
    line on its first four tabs and parses a record's JSON only when the record itself is asked for. An
    entry counts only while jobs/<pair_id> is the very folder it was written for (same inode), so a folder
    replaced after the entry was written is read from its own record.json."""

    def __init__(self, layout: RunLayout):
        self.layout = layout
        self._published: dict[str, int] = {}  # pair_id -> inode of jobs/<pair_id>
        self._index: dict[str, tuple[str, int, str, str]] = {}  # pair_id -> (key, inode, status, record json)

    def load(self) -> JobLedger:
        """Scan jobs/ (one directory listing) and read the ledger."""
        with os.scandir(self.layout.jobs) as entries:
            self._published = {e.name: e.inode() for e in entries if e.is_dir(follow_symlinks=False)}
        self._index = {}
        if self.layout.ledger.exists():
            with open(self.layout.ledger, encoding="utf-8") as fh:
                for line in fh:
                    parts = line.split("\t", 4)
                    if len(parts) == 5 and line.endswith("\n"):  # else: cut short by a kill
                        pair_id, key, ino, status, record = parts
                        self._index[pair_id] = (key, int(ino), status, record)
        return self

    def status(self, pair_id: str, key: str) -> str | None:
        """'done' or 'failed' when `pair_id` is published with `key`, else None."""
        entry = self._entry(pair_id, key)
        if entry is not None:
            return entry[2]
        record = self._from_folder(pair_id, key)
        return None if record is None else record.get("status")

    def record(self, pair_id: str, key: str) -> dict | None:
        """The published record of `pair_id` if it was made with `key`, else None."""
        entry = self._entry(pair_id, key)
        if entry is not None:
            try:
                return json.loads(entry[3])
            except json.JSONDecodeError:
                pass
        return self._from_folder(pair_id, key)

    def _entry(self, pair_id: str, key: str) -> tuple | None:
        ino = self._published.get(pair_id)
        entry = self._index.get(pair_id)
        if ino is not None and entry is not None and entry[0] == key and entry[1] == ino:
            return entry
        return None

    def _from_folder(self, pair_id: str, key: str) -> dict | None:
        if pair_id not in self._published:
            return None
        record = read_record(self.layout.jobs / pair_id)
        return record if record is not None and record.get("key") == key else None

    def append(self, record: dict, job_dir: Path) -> None:
        """Index a record just published in `job_dir` (one write call: atomic for O_APPEND)."""
        ino = os.stat(job_dir).st_ino
        blob = json.dumps(record, separators=(",", ":"), default=str)
        line = f"{record['pair_id']}\t{record['key']}\t{ino}\t{record['status']}\t{blob}\n".encode()
        fd = os.open(self.layout.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        self._published[record["pair_id"]] = ino
        self._index[record["pair_id"]] = (record["key"], ino, record["status"], blob)


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
