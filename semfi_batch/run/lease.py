"""Job leases: a job is claimed by atomically creating leases/<pair_id>.lease (O_EXCL, which holds on local
and NFSv3+ filesystems, unlike flock). A lease carries its holder and an expiry that a heartbeat thread
pushes forward; a lease whose worker died expires and the job can be taken again.

Expiry compares wall clocks, so nodes sharing an output root need synchronised clocks (NTP); the TTL
(default 60 s) is far longer than the heartbeat (TTL/6) so that a live worker never loses its lease."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

DEFAULT_TTL_S = 60.0


def new_worker_id() -> str:
    """host:pid:random, unique per worker process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseManager:
    """Claims, renews and releases the leases of one worker."""

    def __init__(self, folder: Path, worker_id: str | None = None, ttl_s: float = DEFAULT_TTL_S):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.worker_id = worker_id or new_worker_id()
        self.ttl_s = ttl_s
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def try_claim(self, pair_id: str) -> bool:
        """Claim the job, or take over its lease if expired. False when a live worker holds it."""
        if self._create(pair_id):
            return True
        info = self.read(pair_id)
        if info is None or (info["expires"] > time.time() and not _holder_dead(info)):
            return False
        # Expired: move it aside under a unique name; of several workers doing this at once, one wins.
        stale = self.folder / f"{pair_id}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(self.path(pair_id), stale)
        except FileNotFoundError:
            return False
        moved = _read(stale)
        os.unlink(stale)
        if moved is not None and moved["expires"] > time.time() and not _holder_dead(moved):
            return False  # renewed or re-created between our read and rename; its holder will go on
        return self._create(pair_id)

    def release(self, pair_id: str) -> None:
        """Drop the lease if this worker still holds it."""
        with self._lock:
            self._held.discard(pair_id)
            info = self.read(pair_id)
            if info is not None and info.get("worker") == self.worker_id:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path(pair_id))

    def read(self, pair_id: str) -> dict | None:
        """The lease's content; a lease being written (empty) counts as live for one TTL from its mtime."""
        return _read(self.path(pair_id), self.ttl_s)

    def _content(self) -> bytes:
        now = time.time()
        info = {"worker": self.worker_id, "claimed": now, "expires": now + self.ttl_s, "host": _HOST}
        info.update(pid=os.getpid(), pid_start=_process_start(os.getpid()))
        return json.dumps(info).encode()

    def _create(self, pair_id: str) -> bool:
        try:
            fd = os.open(self.path(pair_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content())
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:
            self._held.add(pair_id)
        return True

    def _heartbeat(self) -> None:
        interval = max(0.05, self.ttl_s / 6)
        while not self._stop.wait(interval):
            with self._lock:
                for pair_id in list(self._held):
                    info = self.read(pair_id)
                    if info is None or info.get("worker") != self.worker_id:
                        self._held.discard(pair_id)  # taken over: our expiry passed (clock jump, long stall)
                        continue
                    tmp = self.folder / f".{pair_id}.renew-{uuid.uuid4().hex[:8]}"
                    tmp.write_bytes(self._content())
                    os.replace(tmp, self.path(pair_id))


_HOST = socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _holder_dead(info: dict) -> bool:
    """True when the lease's holder ran on this host and its process is gone: no need to wait for expiry."""
    if info.get("host") != _HOST or not info.get("pid"):
        return False
    start = _process_start(int(info["pid"]))
    return start is None or (info.get("pid_start") is not None and start != info["pid_start"])


def _read(path: Path, ttl_s: float = DEFAULT_TTL_S) -> dict | None:
    try:
        data = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        info = json.loads(data)
        float(info["expires"])
        return info
    except (ValueError, KeyError, TypeError):
        return {"worker": None, "expires": mtime + ttl_s}
