"""What counts as done, written once.

A job is done when jobs/<pair_id>/record.json says so for the job's key AND every output the record lists
(frames, keyframes, preview, each with its size and SHA-256) is present and matches. record.json is written
last, inside the attempt's own folder, and the folder is published by one rename: it is the completion marker
(as datatrove's are), and the truth.

ledger.jsonl is only an index, so that resuming 100,000 jobs reads one file instead of 100,000 folders. Each
line carries a fingerprint of the job folder it was written for (inode, mtime and ctime of the folder and of
frames/): deleting, adding or replacing any output changes it, and the entry is then ignored and the folder's
record verified by content instead (and indexed again). Cut or corrupt lines are skipped with one notice.
`deep=True` (--retry-failed, splice, merge) verifies every done job by content, catching a file rewritten in
place as well."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path

from semfi_batch.atomic_write import write_atomic
from semfi_batch.run.identity import folder_fingerprint
from semfi_batch.run.inputs import file_sha256
from semfi_batch.run.layout import RunLayout, append_line
from semfi_batch.run.notices import notice

RECORD_NAME = "record.json"
LEDGER_VERSION = "2"


def output_entries(folder: Path, written: dict[Path, str] | None = None) -> dict[str, dict]:
    """Every file of a staged job folder but its record: relative path -> size and SHA-256. `written`: the
    SHA-256 of files this process just wrote from bytes in memory (not read back); the others are read."""
    written = written or {}
    entries = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != RECORD_NAME:
            digest = written.get(path) or file_sha256(path)
            entries[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": digest}
    return entries


def verify_outputs(job_dir: Path, record: dict, *, hashes: bool = True) -> str | None:
    """None when every output the record lists is present with its size (and content, with `hashes`), and a done
    job has exactly its frames; else what is wrong, in a few words. Without `hashes`, an output changed after
    the record was written (modified later than the record) is hashed all the same: a frame painted over in
    place at its own size kept its size, and the page counted it done."""
    outputs = record.get("outputs")
    try:
        written = os.stat(job_dir / RECORD_NAME).st_mtime_ns
    except OSError:
        written = None
    if not isinstance(outputs, dict):
        return "its record lists no outputs (written by an older version)"
    if record.get("status") == "done":
        listed = sum(name.startswith("frames/") for name in outputs)
        if listed != record.get("frames") or listed != record.get("gap_frames", listed):
            return f"its record lists {listed} frames for {record.get('gap_frames')} wanted"
        try:
            present = len(os.listdir(job_dir / "frames")) if listed else 0
        except OSError:
            present = 0
        if present != listed:
            return f"frames/ holds {present} files, its record lists {listed}"
    for name, meta in outputs.items():
        path = job_dir / name
        try:
            st = os.lstat(path)
        except OSError:
            return f"{name} is missing"
        if not stat.S_ISREG(st.st_mode):
            return f"{name} is not a plain file"
        if not isinstance(meta, dict) or st.st_size != meta.get("size"):
            return (
                f"{name} has {st.st_size} bytes, its record says {meta.get('size') if isinstance(meta, dict) else '?'}"
            )
        if hashes or written is None or st.st_mtime_ns > written:
            try:
                digest = file_sha256(path)
            except OSError:
                return f"{name} cannot be read"
            if digest != meta.get("sha256"):
                return f"{name} was altered (its content differs from the record)"
    return None


def check_job_folder(job_dir: Path, key: str | None = None, *, hashes: bool = True) -> tuple[dict | None, str | None]:
    """(record, None) when `job_dir` holds a record (made with `key`, when given) whose outputs all match;
    (None, why) otherwise. A failed record has no outputs to check."""
    record = read_record(job_dir)
    if record is None:
        return None, "no readable record.json"
    if key is not None and record.get("key") != key:
        return None, "made from other inputs or settings (its key differs)"
    if record.get("status") not in ("done", "failed"):
        return None, f"its record has status {record.get('status')!r}"
    if record.get("status") == "done" and (why := verify_outputs(job_dir, record, hashes=hashes)) is not None:
        return None, why
    return record, None


class JobLedger:
    """Finished-job records of one output root, as of `load()`.

    ledger.jsonl lines: `2 TAB pair_id TAB key TAB status TAB fingerprint TAB record-json`. A resume scan splits
    each line on its first five tabs and parses a record's JSON only when the record itself is asked for."""

    def __init__(self, layout: RunLayout, *, deep: bool = False):
        self.layout = layout
        self.deep = deep  # verify every done job by content, not only by its folder's fingerprint
        self._published: set[str] = set()
        self._index: dict[str, tuple[str, str, str, str]] = {}  # pair_id -> (key, status, fingerprint, json)
        self.rerun: list[tuple[str, str]] = []  # (pair_id, why) of done jobs that no longer verify
        self._jobs = str(layout.jobs)
        self._fresh: set[str] = set()  # pair_ids whose fingerprint matched in this scan (not stat'ed twice)

    def load(self) -> JobLedger:
        """Scan jobs/ (one directory listing) and read the ledger, skipping damaged lines with one notice."""
        with os.scandir(self.layout.jobs) as entries:
            self._published = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
        self._index = {}
        self._fresh = set()
        try:
            data = self.layout.ledger.read_bytes() if not self.layout.ledger.is_symlink() else b""
        except OSError:
            data = b""
        damaged = 0
        text = data.decode("utf-8", errors="replace")  # one decode for the whole file: a resume reads 100,000 lines
        lines = text.split("\n")
        index = self._index
        for line in lines[:-1]:  # the part after the last newline is a line cut short
            parts = line.split("\t", 5)
            if len(parts) == 6 and parts[0] == LEDGER_VERSION and parts[3] in ("done", "failed"):
                index[parts[1]] = (parts[2], parts[3], parts[4], parts[5])
            elif len(parts) == 5 and not parts[0].startswith(LEDGER_VERSION):
                continue  # a version-1 line: its job's record is verified by content instead
            else:
                damaged += bool(line.strip())
        damaged += bool(lines[-1])
        if damaged:
            notice(f"{self.layout.ledger}: {damaged} damaged line(s) skipped (cut by a kill or a full disk); "
                   "the index is rebuilt from the job records")  # fmt: skip
            # Rewritten without them (one entry per job), so the next run starts clean. A line another run
            # appends meanwhile may be lost: the ledger is an index, and the record it pointed to stays.
            kept = "".join(
                f"{LEDGER_VERSION}\t{p}\t{k}\t{st}\t{fp}\t{blob}\n" for p, (k, st, fp, blob) in index.items()
            )
            with contextlib.suppress(Exception):
                write_atomic(self.layout.ledger, kept.encode())
        return self

    def _fingerprint(self, pair_id: str) -> str | None:
        return folder_fingerprint(f"{self._jobs}/{pair_id}")

    def status(self, pair_id: str, key: str) -> str | None:
        """'done' or 'failed' when `pair_id` is published with `key` (done: with every output intact), else None."""
        if pair_id not in self._published:
            return None
        entry = self._index.get(pair_id)
        if (
            entry is not None and entry[0] == key and not (self.deep and entry[1] == "done")
            and entry[2] == self._fingerprint(pair_id)
        ):  # fmt: skip
            self._fresh.add(pair_id)
            return entry[1]
        record = self._verified(pair_id, key)
        return None if record is None else record["status"]

    def record(self, pair_id: str, key: str) -> dict | None:
        """The published record of `pair_id` if it was made with `key` and (when done) its outputs are intact."""
        if pair_id not in self._published:
            return None
        entry = self._index.get(pair_id)
        if entry is not None and entry[0] == key and (pair_id in self._fresh or entry[2] == self._fingerprint(pair_id)):
            try:
                return json.loads(entry[3])
            except json.JSONDecodeError:
                pass
        return self._verified(pair_id, key)

    def _verified(self, pair_id: str, key: str) -> dict | None:
        job_dir = self.layout.jobs / pair_id
        raw = read_record(job_dir)
        if raw is None or raw.get("key") != key:
            return None
        record, why = check_job_folder(job_dir, key)
        if record is None:
            self.rerun.append((pair_id, why or "damaged"))
            return None
        entry = self._index.get(pair_id)
        if entry is None or entry[0] != key or entry[2] != folder_fingerprint(job_dir):
            self.append(record, job_dir)  # the index agrees with the record again
        return record

    def append(self, record: dict, job_dir: Path) -> None:
        """Index a record just published in `job_dir` (one write call: atomic for O_APPEND). The record is the
        truth: a line that cannot be written only costs a slower resume."""
        fingerprint = folder_fingerprint(job_dir) or "-"
        blob = json.dumps(record, separators=(",", ":"), default=str)
        pair_id = record["pair_id"]
        line = f"{LEDGER_VERSION}\t{pair_id}\t{record['key']}\t{record['status']}\t{fingerprint}\t{blob}\n"
        try:
            append_line(self.layout.ledger, line.encode())
        except OSError as exc:
            notice(f"{self.layout.ledger}: cannot index {pair_id} ({exc.strerror}); its record.json stands")
            return
        self._published.add(pair_id)
        self._index[pair_id] = (record["key"], record["status"], fingerprint, blob)


# What a reviewer sees of a job besides its frames: where they go.
_PLACEMENT = ("source", "start_image", "end_image", "start_frame", "end_frame", "mode", "gap_frames")


def outputs_digest(record: dict | None) -> str | None:
    """A digest of what a finished job delivered, as its record lists it: every output file's SHA-256 and
    where the frames go (source, keys, range, mode): what a reviewer's decision is about. The same frames
    made with other settings (a seed a backend does not use) digest the same. None without a done record."""
    if not record or record.get("status") != "done" or not isinstance(record.get("outputs"), dict):
        return None
    listed = {"outputs": record["outputs"], "placement": [record.get(name) for name in _PLACEMENT]}
    return hashlib.sha256(json.dumps(listed, sort_keys=True, default=str).encode()).hexdigest()


def read_record(job_dir: Path) -> dict | None:
    """The record.json of a job folder, or None when missing or unreadable."""
    try:
        with open(job_dir / RECORD_NAME, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(job_dir: Path, record: dict) -> None:
    """Write record.json atomically: the last file of a job, its completion marker."""
    data = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
    write_atomic(job_dir / RECORD_NAME, data)
