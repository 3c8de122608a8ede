"""A finished run answered without loading it (the no-op resume in a tenth of a second).

When a `run` ends with every job of its manifest done (none failed, none left, no --shard, --force or
--retry-failed) and files alone decide its backends and keys (see below), the CLI writes RUN/finished.json:
- the command line, working folder, SEMFI_* variables, PATH and installed code, as the run began;
- the identity (device, inode, size, mtime, ctime) of the manifest, review decisions, every input file and
  the files that decide the backends (model files and weights, the packages they need, minterpolate's
  ffmpeg; or their absence) as the run read them, before its jobs ran (a file changed during the run does
  not match);
- the identity of run.json, ledger and metrics, and the root's entries (name, inode, symlink or not), as the
  run left them, and the fingerprint of every job folder.
The same command again first looks for that stamp (`answer`): when every one of those is still what it
was, and no lease or attempt is present, nothing can have changed what the run would do, and it prints the
summary without importing the engine. Any difference, or anything it cannot read, sends the command down
the normal path, which plans and verifies everything again. Checking costs a few os.stat calls per job;
only the standard library and rich are imported.

Which files decide is each backend's `deciding_files` (backends/routing.deciding_files): none for flow and
blend, the ffmpeg binary for minterpolate, the weights and torch's package for rife, every model file and
the checkpoint, torch's and diffsynth's packages for semfi and wan-flf2v, and for `auto` those of rife and
flow, which it picks between by them. `auto` with a row it could give to semfi always takes the normal path:
whether it does depends on a GPU, not on files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import SemfiError
from semfi_batch.run.identity import folder_fingerprint, stat_identity

STAMP = "finished.json"
STAMP_VERSION = 1
_PACKAGE = Path(__file__).resolve().parents[1]


def code_identity() -> str:
    """The installed semfi_batch code: a digest of every module's path, size and mtime."""
    entries = []
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                entries.append(f"{os.path.relpath(os.path.join(folder, name), _PACKAGE)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def invocation(argv: list[str]) -> dict:
    """What, besides files, decides what a `run` does: its arguments, folder, SEMFI_* variables, PATH (which
    ffmpeg runs) and code."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("SEMFI_") or k == "PATH"}
    return {"argv": list(argv), "cwd": os.getcwd(), "env": env, "code": code_identity()}


def write_stamp(
    root: Path,
    started: dict,
    planned: dict[str, tuple | None],
    outputs: list[Path],
    job_keys: dict[str, str],
    counts: dict,
) -> None:
    """Record that the run in `root` is finished (see the module's docstring). `started` is `invocation()` as
    the run began, `planned` the identities of the files it read (manifest, review decisions, inputs) as
    they were when it read them, before the jobs ran: a file changed during the run then fails the check
    next time, as it must. `outputs` are the run's own files, taken as they are now; `job_keys` each job's
    key by pair_id. No stamp when a job folder holds another job's record (another run on the root, with
    another manifest, published there after this run's job) or changes while it is taken. Best effort: a
    stamp that cannot be written only means the next resume takes the normal path."""
    root = Path(root)
    jobs = {pid: folder_fingerprint(root / "jobs" / pid) for pid in job_keys}
    if any(_record_key(root / "jobs" / pid) != key for pid, key in job_keys.items()):
        return
    if jobs != {pid: folder_fingerprint(root / "jobs" / pid) for pid in job_keys}:
        return
    files = {str(Path(f).absolute()): list(ident) if ident else None for f, ident in planned.items()}
    files |= {str(Path(f).absolute()): stat_identity(f) for f in outputs}
    stamp = {
        "version": STAMP_VERSION,
        "invocation": started,
        "root": str(root.absolute()),
        "files": files,
        "entries": _entries(root),
        "jobs": jobs,
        "counts": counts,
    }
    with contextlib.suppress(SemfiError):  # no stamp: the next run takes the normal path
        write_atomic(root / STAMP, json.dumps(stamp).encode(), sync=False)


def _record_key(folder: Path) -> str | None:
    """The job key its record.json names; None when it cannot be read."""
    try:
        return json.loads((folder / "record.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


# What `report`, `splice` and `review` write in a run's root: none of it changes what `run` does (review
# decisions are checked as a file the run read), so writing them again keeps the stamp; a symlink there does
# not (the normal path refuses to write through one).
_OTHER_COMMANDS_FILES = frozenset({"report.html", ".report-quality.json", "spliced", "review"})


def _entries(root: Path) -> dict[str, list]:
    """The root's own files and folders by name: inode and whether it is a symlink (a run file replaced by
    a link, or a file added or removed, and the normal path decides). What other commands write there is
    left out unless it is a symlink."""
    found = {}
    with os.scandir(root) as it:
        for entry in it:
            if entry.name == STAMP or entry.name.startswith(f".{STAMP}"):
                continue
            if entry.name in _OTHER_COMMANDS_FILES and not entry.is_symlink():
                continue
            found[entry.name] = [entry.inode(), entry.is_symlink()]
    return found


def _candidate_roots(args: list[str]) -> list[Path]:
    """Output roots a `run` command line may name: --out/-o's value, else runs/<stem> of each argument that
    looks like a manifest (the stamp's own command line decides which, if any, is meant)."""
    for i, arg in enumerate(args):
        if arg in ("--out", "-o") and i + 1 < len(args):
            return [Path(args[i + 1])]
        if arg.startswith("--out="):
            return [Path(arg.split("=", 1)[1])]
    return [Path("runs") / Path(a).stem for a in args if a.lower().endswith((".parquet", ".csv"))]


def answer(argv: list[str]) -> int | None:
    """The exit status of `semfi-batch <argv>` when it is a `run` whose finished stamp still holds (the
    summary printed), else None: the command must run the normal way."""
    # --force runs everything; --retry-failed verifies every output by content: both go the normal way.
    if not argv or argv[0] != "run" or any(a in ("--help", "-h", "--force", "--retry-failed") for a in argv):
        return None
    for root in _candidate_roots(argv[1:]):
        try:
            stamp = json.loads((root / STAMP).read_text())
            if _holds(stamp, root, argv):
                _print_finished(root, stamp["counts"])
                return 0
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # no stamp, or not one this code wrote: the normal path decides
    return None


def _holds(stamp: dict, root: Path, argv: list[str]) -> bool:
    if not isinstance(stamp, dict) or stamp.get("version") != STAMP_VERSION:
        return False
    if stamp.get("root") != str(root.absolute()) or stamp.get("invocation") != invocation(argv):
        return False
    for path, ident in (stamp.get("files") or {}).items():
        now = stat_identity(path)
        if (list(now) if now else None) != ident:
            return False
    if _entries(root) != stamp.get("entries"):
        return False
    for sub in ("leases", "work"):  # another run at work here, or an attempt left behind
        with contextlib.suppress(FileNotFoundError):
            if any(os.scandir(root / sub)):
                return False
    jobs = stamp.get("jobs") or {}
    return bool(jobs) and all(fp is not None and folder_fingerprint(root / "jobs" / p) == fp for p, fp in jobs.items())


def print_counts(console, manifest: str, total: int, done: int, failed: int, ran: int, skipped: int, wall_s: float):
    """The table every `run` ends with."""
    from rich.table import Table

    table = Table(title=f"semfi-batch run: {manifest}", show_edge=False)
    for col in ("jobs", "done", "failed", "ran now", "skipped (already finished)", "wall s"):
        table.add_column(col, justify="right")
    table.add_row(str(total), str(done), str(failed), str(ran), str(skipped), f"{wall_s:.1f}")
    console.print(table)


def _print_finished(root: Path, counts: dict) -> None:
    from rich.console import Console

    stdout = Console(highlight=False, soft_wrap=True)
    total = int(counts["total"])
    print_counts(stdout, counts["manifest"], total, total, 0, 0, total, 0.0)
    stdout.print(f"outputs: {root}/jobs/<pair_id>/frames  metrics: {root / 'metrics.parquet'}")
    if (root / "report.html").is_file():
        stdout.print(f"report: {root / 'report.html'}  (with plots and quality figures: semfi-batch report {root})")
    sys.stdout.flush()
