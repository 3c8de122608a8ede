"""Files written whole or not at all. Every file this tool writes in one piece (frames, records, metrics, the
report, caches, checkpoints) goes through `write_atomic`: its bytes go to a temporary name beside the target
(".<name>.tmp<pid>-<random>": unique, created exclusively, so never written through a symlink, and removed
by the next run when a kill left it), every byte is written (a write that makes no progress is a full disk),
fsynced, then renamed into place. A failure removes the temporary file (so does Ctrl-C or SIGTERM) and raises
one error that names the target, never the temporary name. Standard library only: the finished stamp's quick
answer imports it."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from semfi_batch.errors import DiskFull, SemfiError

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
FULL_BYTES = 1 << 20  # a filesystem with less free than this is full for the files a command writes through ffmpeg


def temporary_path(path: Path) -> Path:
    """A unique temporary name beside `path` (the process id in it tells a later run whose it was)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{os.urandom(4).hex()}")


def remove_dead_temporaries(path: Path) -> None:
    """Remove what killed processes left beside `path` under its temporary names (files or folders named
    `.<name>.tmp<pid>-...`, see temporary_path) whose process is gone: a SIGKILL leaves them, and the next
    command writing `path` clears them, so none stays beside the user's file."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp(\d+)-")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        remove_path(entry)


@contextlib.contextmanager
def parent_folders(path: Path) -> Iterator[None]:
    """Make the missing folders above `path` for the block that writes it; when the block is interrupted
    (Ctrl-C, SIGTERM), those it made that are still empty are removed again: an interrupted `splice` left an
    empty RUN_DIR/spliced behind. (After a failure they stay: its message may name them.)"""
    missing = [folder for folder in path.parents if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except KeyboardInterrupt:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (or not ours to remove): nor are the folders above it
        raise


def remove_path(path: Path) -> None:
    """Remove a file, a link or a folder tree; what cannot be removed is left."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (one of another user's counts: it may be writing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomic(path: Path, *parts: bytes, sync: bool = True, exclusive: bool = False) -> None:
    """Write `parts`, one after the other, as the file `path`, atomically. `sync=False` leaves the fsync to the
    caller (a job's writer syncs its files behind it). `exclusive`: create `path` only where there is none
    (FileExistsError otherwise), so that of two processes creating it at once one wins, whole. Raises
    DiskFull or SemfiError naming `path`."""
    tmp = temporary_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            for part in parts:
                write_all(fd, part, path)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exclusive and isinstance(exc, FileExistsError):
            raise
        raise file_error(exc, path) from None
    except BaseException:  # Ctrl-C or SIGTERM (Terminated) mid-write: no temporary file left beside the target
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def hard_link(source: Path, target: Path) -> bool:
    """`os.link(source, target)`; False where the filesystem takes no hard links (FAT, some network
    filesystems). A missing source, a target already there and a full disk raise as os.link raises them."""
    try:
        os.link(source, target)
    except (FileNotFoundError, FileExistsError):
        raise
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise
        return False
    return True


def write_all(fd: int, data: bytes, name: Path | str) -> None:
    """os.write until every byte is written; a write that makes no progress is a full disk."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "short write (disk full?)", str(name))
        view = view[written:]


def nearly_full(folder: Path) -> bool:
    """Whether the filesystem of `folder` (or of its nearest existing parent) has less than FULL_BYTES free:
    ffmpeg may stop writing a file there without a word, and what fails next is reading it back."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < FULL_BYTES
    except OSError:
        return False


def no_space(folder: Path, doing: str) -> DiskFull:
    """The one line a full output filesystem stops a run or a splice with: where, and while doing what."""
    return DiskFull(f"no space left on the output filesystem ({folder}) while {doing}")


def file_error(exc: OSError, path: Path, doing: str = "write") -> SemfiError:
    """An OSError met while writing (or reading: `doing`) `path`, as a one-line error naming `path`: DiskFull
    for a full filesystem or a file size limit."""
    why = exc.strerror or str(exc)
    if exc.errno in DISK_FULL_ERRNOS:
        return DiskFull(f"cannot {doing} {path}: {why} (output filesystem full or file size limit reached)")
    return SemfiError(f"cannot {doing} {path}: {why}")
