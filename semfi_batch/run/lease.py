"""Job leases with fencing tokens.

A job is claimed by atomically creating leases/<pair_id>.lease (O_EXCL, which holds on local and NFSv3+
filesystems, unlike flock). A lease names its holder, a token unique to this claim, and an expiry that a
heartbeat pushes forward. Renewal rewrites the holder's own file in place (same inode) and never creates
one, so a worker that lost its lease cannot resurrect it over its successor's.

Fencing: an attempt publishes only after `holds()` renewed its lease and found its own token in the very
file it created (as lock services such as Chubby and ZooKeeper prescribe for locks held past expiry). A
worker paused past its expiry (a stopped VM, an NFS stall) finds a successor's lease, or none, and discards
its attempt.

Expiry compares wall clocks, so nodes sharing an output root need synchronised clocks (NTP). A lease that
cannot be read, is a folder, is empty, or gives an impossible time (a writer's clock far ahead) is judged by
its mtime instead: stale once the mtime is older than the TTL, with a one-line notice."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from semfi_batch.atomic_write import DISK_FULL_ERRNOS, hard_link, no_space, remove_path, temporary_path, write_all
from semfi_batch.errors import DiskFull
from semfi_batch.run.notices import notice

DEFAULT_TTL_S = 60.0
# Tests set a short lease time for subprocesses through this variable (a hidden --lease-ttl does the same).
TTL_ENV = "SEMFI_LEASE_TTL"
_HOST = socket.gethostname()


def default_ttl() -> float:
    """DEFAULT_TTL_S, or SEMFI_LEASE_TTL when set (tests)."""
    try:
        return float(os.environ.get(TTL_ENV, DEFAULT_TTL_S))
    except ValueError:
        return DEFAULT_TTL_S


def new_worker_id(run_tag: str | None = None) -> str:
    """host:pid:tag, unique per worker process; the workers of one run share the tag."""
    return f"{_HOST}:{os.getpid()}:{run_tag or uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseView:
    """What a lease file says: live or stale, who holds it and until when, and what is wrong with it."""

    live: bool
    holder: str
    until: float
    token: str | None
    damage: str | None = None  # why the content cannot be trusted (then mtime decides)


class LeaseManager:
    """Claims, renews, checks and releases the leases of one worker."""

    def __init__(self, folder: Path, worker_id: str | None = None, ttl_s: float | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.worker_id = worker_id or new_worker_id()
        self.ttl_s = ttl_s if ttl_s is not None else default_ttl()
        self._held: dict[str, tuple[str, int, float]] = {}  # pair_id -> (token, inode, claimed)
        self.lost: dict[str, str] = {}  # pair_id -> who holds it now
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting_noted: set[tuple[str, str]] = set()

    def __enter__(self) -> LeaseManager:
        self._thread = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for pair_id in list(self._held):
            self.release(pair_id)

    def path(self, pair_id: str) -> Path:
        return self.folder / f"{pair_id}.lease"

    def try_claim(self, pair_id: str) -> str | None:
        """Claim the job and return this claim's token, taking over a stale lease; None while a live worker
        holds it (said once per holder: who and until when)."""
        token = uuid.uuid4().hex
        if self._create(pair_id, token):
            return token
        view = inspect_lease(self.path(pair_id), self.ttl_s)
        if view is None:
            return token if self._create(pair_id, token) else None
        if view.live:
            sibling = view.holder.rsplit(":", 1)[-1] == self.worker_id.rsplit(":", 1)[-1]
            if not sibling and (pair_id, view.holder) not in self._waiting_noted:
                self._waiting_noted.add((pair_id, view.holder))
                until = time.strftime("%H:%M:%S", time.localtime(view.until))
                notice(f"{pair_id}: waiting, leased by {view.holder} until {until} ({view.until - time.time():.0f} s)")
            return None
        if view.damage:
            notice(f"{self.path(pair_id)} {view.damage}; stale (mtime older than {self.ttl_s:g} s): taking it over")
        # Move it aside under a unique name: of several workers doing this at once, one wins.
        aside = self.folder / f".{pair_id}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(self.path(pair_id), aside)
        except FileNotFoundError:
            return None
        except OSError:  # a folder where a file was expected, and the like: nothing we can move: leave it
            return None
        moved = inspect_lease(aside, self.ttl_s)
        if moved is not None and moved.live and moved.damage is None:
            # Renewed between our look and the rename: put it back unless a new lease appeared meanwhile
            # (then its holder finds its inode gone at its next renewal and gives the job up).
            with contextlib.suppress(OSError):
                os.link(aside, self.path(pair_id))
            remove_path(aside)
            return None
        remove_path(aside)
        return token if self._create(pair_id, token) else None

    def holds(self, pair_id: str, token: str) -> bool:
        """Renew the lease and confirm it is still this claim's: the fencing check right before publishing."""
        with self._lock:
            held = self._held.get(pair_id)
            if held is None or held[0] != token:
                return False
            return self._renew(pair_id)

    def release(self, pair_id: str) -> None:
        """Drop the lease if this worker still holds it (its own file, same inode)."""
        with self._lock:
            held = self._held.pop(pair_id, None)
            if held is None:
                return
            path = self.path(pair_id)
            try:
                st = os.lstat(path)
            except OSError:
                return
            view = inspect_lease(path, self.ttl_s)
            if st.st_ino == held[1] and view is not None and view.token == held[0]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def attempt_is_live(self, pair_id: str, attempt_name: str) -> bool:
        """True when the job's lease is live and its token names this attempt folder (attempt-<token[:16]>)."""
        view = inspect_lease(self.path(pair_id), self.ttl_s)
        if view is None or not view.live:
            return False
        return view.token is None or attempt_name == f"attempt-{view.token[:16]}"  # unreadable but live: keep

    def _content(self, token: str, claimed: float) -> bytes:
        now = time.time()
        info = {"worker": self.worker_id, "token": token, "claimed": claimed, "renewed": now,
                "expires": now + self.ttl_s, "ttl": self.ttl_s, "host": _HOST, "pid": os.getpid(),
                "pid_start": _process_start(os.getpid())}  # fmt: skip
        return json.dumps(info).encode()

    def _create(self, pair_id: str, token: str) -> bool:
        """Create the job's lease, whole or not at all: its content is written and fsynced under a temporary
        name, then linked into place, which fails where a lease is there. Created empty and then written (as
        where the filesystem takes no hard links), a worker killed in between (kill -9 while it claims) left an
        empty lease that no one could tell from a live one: the job waited the whole lease time (60 s)."""
        path = self.path(pair_id)
        temp = temporary_path(path)
        claimed = time.time()
        try:
            fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise self._full(exc, pair_id) from None
        try:
            try:
                write_all(fd, self._content(token, claimed), path)
                os.fsync(fd)
                ino = os.fstat(fd).st_ino
            finally:
                os.close(fd)
            try:
                if not hard_link(temp, path):
                    return self._create_in_place(pair_id, token)
            except FileExistsError:
                return False
        except OSError as exc:
            raise self._full(exc, pair_id) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        with self._lock:
            self._held[pair_id] = (token, ino, claimed)
            self.lost.pop(pair_id, None)
        return True

    def _create_in_place(self, pair_id: str, token: str) -> bool:
        """`_create` where the filesystem takes no hard links: created exclusively, then written."""
        try:
            fd = os.open(self.path(pair_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._full(exc, pair_id) from None
        claimed = time.time()
        try:
            write_all(fd, self._content(token, claimed), self.path(pair_id))
            os.fsync(fd)
            ino = os.fstat(fd).st_ino
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path(pair_id))
            raise self._full(exc, pair_id) from None
        os.close(fd)
        with self._lock:
            self._held[pair_id] = (token, ino, claimed)
            self.lost.pop(pair_id, None)
        return True

    def _full(self, exc: OSError, pair_id: str) -> OSError | DiskFull:
        """A full disk as the run stops for it (one line naming the filesystem); any other error as it is."""
        if exc.errno in DISK_FULL_ERRNOS:
            return no_space(self.folder, f"claiming {pair_id}")
        return exc

    def _renew(self, pair_id: str) -> bool:
        """Push the expiry of a held lease forward, in place; False (and the lease dropped) when the file is no
        longer the one this worker created, or holds another token. Call with the lock held."""
        token, ino, claimed = self._held[pair_id]
        path = self.path(pair_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            return self._lose(pair_id, "nobody (the lease was removed)")
        try:
            if os.fstat(fd).st_ino != ino:
                view = inspect_lease(path, self.ttl_s)
                return self._lose(pair_id, view.holder if view else "another worker")
            content = self._content(token, claimed)
            os.lseek(fd, 0, os.SEEK_SET)
            write_all(fd, content, path)
            os.ftruncate(fd, len(content))
            return True
        except OSError:
            return self._lose(pair_id, "nobody (the lease could not be renewed)")
        finally:
            os.close(fd)

    def _lose(self, pair_id: str, holder: str) -> bool:
        self._held.pop(pair_id, None)
        self.lost[pair_id] = holder
        return False

    def _heartbeat(self) -> None:
        interval = max(0.05, self.ttl_s / 6)
        while not self._stop.wait(interval):
            with self._lock:
                for pair_id in list(self._held):
                    self._renew(pair_id)


def inspect_lease(path: Path, ttl_s: float) -> LeaseView | None:
    """Read a lease file; None when there is none. Damaged leases are judged by their mtime."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    now = time.time()
    damage = None
    info: dict = {}
    if stat.S_ISDIR(st.st_mode):
        damage = "is a folder"
    elif not stat.S_ISREG(st.st_mode):
        damage = "is not a plain file"
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                data = os.read(fd, 65536)
            finally:
                os.close(fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            data, damage = b"", f"cannot be read ({exc.strerror})"
        if damage is None and not data.strip():
            damage = "is empty"
        elif damage is None:
            try:
                info = json.loads(data)
                expires, claimed = float(info["expires"]), float(info.get("claimed", 0))
                ttl = float(info.get("ttl", ttl_s))
                if expires > now + ttl + max(ttl, ttl_s) or claimed > now + max(ttl, ttl_s):
                    damage = f"has an impossible time (expires {expires - now:.0f} s from now: clock skew?)"
            except (ValueError, KeyError, TypeError, AttributeError):
                damage, info = "cannot be read (not a lease)", {}
    holder = str(info.get("worker") or "an unknown worker")
    if damage is not None:
        until = st.st_mtime + ttl_s
        return LeaseView(live=until > now, holder=holder, until=until, token=None, damage=damage)
    until = float(info["expires"])
    live = until > now and not _holder_dead(info)
    return LeaseView(live=live, holder=holder, until=until, token=info.get("token"))


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live pid from a reused one;
    None for a process that is gone or a zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def _holder_dead(info: dict) -> bool:
    """True when the lease's holder ran on this host and its process is gone: no need to wait for expiry."""
    if info.get("host") != _HOST or not info.get("pid"):
        return False
    try:
        start = _process_start(int(info["pid"]))
    except (TypeError, ValueError):
        return False
    return start is None or (info.get("pid_start") is not None and start != info["pid_start"])
