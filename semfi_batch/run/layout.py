"""Where a run keeps its files, the guarantee that every path it writes lies inside the output root and is
never a symlink written through, the appends and fsyncs of run files (whole files: atomic_write), and the
removal of temporary files that a kill left."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from semfi_batch.atomic_write import remove_path
from semfi_batch.errors import OutputPathError
from semfi_batch.manifest import pair_id_problem
from semfi_batch.media.keyframe_cache import KEYFRAME_FOLDER
from semfi_batch.run.finished import STAMP
from semfi_batch.run.notices import notice

# Files and folders of the root that runs, splice and report write: none may be a symlink.
RUN_FILES = ("ledger.jsonl", "events.jsonl", "run.json", "manifest.parquet", "metrics.parquet", "report.html",
             ".input-hashes.jsonl", ".report-quality.json", STAMP)  # fmt: skip
_SUBFOLDERS = ("jobs", "work", "trash", "leases")  # made by RunLayout.create in every output root
# The engine's own state: no other command writes inside these.
STATE_FOLDERS = (*_SUBFOLDERS, "cache")
RUN_FOLDERS = (*STATE_FOLDERS, "spliced", "review")
KEY_FOLDER = "cache/keys"
# Folders inside cache/ that runs write (and clean of dead temporary files): no symlink either.
CACHE_FOLDERS = (KEY_FOLDER, KEYFRAME_FOLDER)
# Temporary names: ".<target>.tmp<pid>..." (atomic_write) or ".<lease>.renew-..." / ".stale-".
_TEMP = re.compile(r"^\..+\.(?:tmp-?(\d+)|renew-|stale-)")


def check_outside_state(path: Path, run_dir: Path) -> None:
    """Raise OutputPathError where `path` (an output a command was told to write: a clip, a page, a folder)
    lies inside one of the run's STATE_FOLDERS, by any name: a file put into a finished job's folder makes it
    no longer match its record, so splice would leave the job out."""
    inside = Path(path).expanduser().resolve()
    for folder in STATE_FOLDERS:
        if inside.is_relative_to((Path(run_dir) / folder).expanduser().resolve()):
            raise OutputPathError(f"output {path} is inside the run's {folder}/ folder; write it elsewhere")


def _run_entry(name: str) -> bool:
    """Whether a root entry is a run's own: one of its files or folders, or one of its files being written."""
    return name in RUN_FILES or name in RUN_FOLDERS or any(name.startswith(f".{own}.tmp") for own in RUN_FILES)


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run's output root:

    jobs/<pair_id>/                 finished jobs (frames/, clip.mp4, start.png, end.png, record.json)
    work/<pair_id>/<k>/<attempt>/   one attempt at a job (k: first 16 hex digits of its key); published by a
                                    rename to jobs/<pair_id> while the attempt still holds the job's lease
    work/<pair_id>/<k>/backend/     the backend's own state (step checkpoints), shared by attempts
    leases/<pair_id>.lease          who works on a job, until when
    cache/keyframes/, cache/keys/   video keyframes read once; PNG keys copied once (start.png and end.png
                                    of the jobs are hard links to them)
    trash/                          job folders being replaced (removed right after)
    ledger.jsonl                    an index of published records (rebuilt from record.json files)
    """

    root: Path

    @classmethod
    def create(cls, root: Path) -> RunLayout:
        """Make the output root (and its sub-folders), refusing roots that are files and symlinked run files."""
        root = Path(root).expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise OutputPathError(f"output root {root} exists and is not a folder")
        layout = cls(root)
        if root.is_dir() and not (root / "run.json").exists():
            # A root no run has claimed yet: only a run's own files may be there (another run's being made,
            # .run.json.tmp123 included). Leftover cleaning would otherwise remove the user's own files
            # (work/, trash/, .name.tmp123.ext).
            theirs = sorted(entry.name for entry in root.iterdir() if not _run_entry(entry.name))
            if theirs:
                raise OutputPathError(
                    f"output root {root} already holds files that are not a run's ({', '.join(theirs[:3])}"
                    f"{', ...' if len(theirs) > 3 else ''}): give a new or empty folder"
                )
        root.mkdir(parents=True, exist_ok=True)
        layout.check_no_symlinks()
        for sub in _SUBFOLDERS:
            path = root / sub
            path.mkdir(exist_ok=True)
            layout.confine(path)
        return layout

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def key_store(self) -> Path:
        """cache/keys: PNG keyframe images as the jobs used them, by SHA-256 (run/kept_keys.py)."""
        return self.root / KEY_FOLDER

    def job_dir(self, pair_id: str) -> Path:
        return self.confine(self.jobs / _checked(pair_id))

    def job_work(self, pair_id: str, key: str) -> Path:
        """work/<pair_id>/<k>: every attempt at this job (and its backend state) lives below."""
        return self.confine(self.root / "work" / _checked(pair_id) / key[:16])

    def attempt_dir(self, pair_id: str, key: str, token: str) -> Path:
        """The folder of one attempt (its lease token names it); what it holds is published as one rename."""
        return self.job_work(pair_id, key) / f"attempt-{token[:16]}"

    def check_no_symlinks(self) -> None:
        """Refuse (exit 2) when a run file or folder of the root is a symlink: it would be written through."""
        for name in (*RUN_FILES, *RUN_FOLDERS, *CACHE_FOLDERS):
            path = self.root / name
            if path.is_symlink():
                target = path.resolve()
                root = self.root.resolve()
                where = "" if target == root or root in target.parents else f", outside the output root {root}"
                raise OutputPathError(
                    f"{path} is a symlink (to {os.readlink(path)}{where}); run files are never written through "
                    f"a symlink: remove it or choose another --out"
                )

    def confine(self, path: Path) -> Path:
        """Return `path` if it resolves (symlinks followed) inside the output root, else OutputPathError."""
        root = self.root.resolve()
        resolved = Path(path).resolve()
        if resolved != root and root not in resolved.parents:
            raise OutputPathError(f"{path} resolves to {resolved}, outside the output root {root}")
        return Path(path)

    def end_cut_lines(self) -> None:
        """A kill or a full disk can cut the last line of ledger.jsonl or events.jsonl: end it, so that the next
        line appended is not glued to it (readers skip the cut line)."""
        for path in (self.ledger, self.events):
            try:
                with open(path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    cut = fh.read(1) != b"\n"
            except OSError:
                continue
            if cut:
                with contextlib.suppress(OSError):
                    append_line(path, b"\n")

    def remove_leftovers(self, attempt_is_live: Callable[[str, str], bool], ttl_s: float) -> None:
        """Remove what killed processes left: trash/, temporary files whose writer is gone, and attempt folders
        whose lease is gone. `attempt_is_live(pair_id, folder name)` asks the job's lease, after the folder
        was seen (a live attempt creates its lease before its folder)."""
        removed = 0
        for child in (self.root / "trash").iterdir():
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
        for folder in (self.root, self.leases, self.key_store, self.root / KEYFRAME_FOLDER):
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    if _dead_temp(entry, ttl_s):
                        remove_path(Path(entry.path))
                        removed += 1
        work = self.root / "work"
        for pair_dir in list(work.iterdir()):
            if pair_dir.is_symlink() or not pair_dir.is_dir():
                remove_path(pair_dir)
                continue
            for key_dir in list(pair_dir.iterdir()):
                for attempt in list(key_dir.iterdir()) if key_dir.is_dir() and not key_dir.is_symlink() else []:
                    if attempt.name.startswith("attempt-") and not attempt_is_live(pair_dir.name, attempt.name):
                        remove_path(attempt)
                        removed += 1
                with contextlib.suppress(OSError):
                    key_dir.rmdir()  # only when empty: a backend checkpoint stays for the next attempt
            with contextlib.suppress(OSError):
                pair_dir.rmdir()
        if removed:
            notice(f"removed {removed} leftover(s) of interrupted runs in {self.root}")


def _dead_temp(entry: os.DirEntry, ttl_s: float) -> bool:
    match = _TEMP.match(entry.name)
    if match is None:
        return False
    pid = match.group(1)
    if pid is not None and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
        return True
    with contextlib.suppress(OSError):
        return entry.stat(follow_symlinks=False).st_mtime < time.time() - max(ttl_s, 60.0)
    return False


def _checked(pair_id: str) -> str:
    if (why := pair_id_problem(pair_id)) is not None:
        raise OutputPathError(f"pair_id {pair_id!r} {why}")
    return pair_id


def fsync_path(path: Path) -> None:
    """Make a folder's renames, or a file's bytes, durable (an fsync through a descriptor of its own)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, line: bytes) -> None:
    """Append one line with one write (atomic among O_APPEND writers); never through a symlink. A write cut
    short raises: the cut line is what readers skip."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes; disk full?)", str(path))
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    """True for a plain file (not a symlink, folder or special file)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
