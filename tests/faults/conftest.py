"""Helpers of the fault suite: tiny image-pair manifests (fast `blend` jobs), `run` as a subprocess tagged so
that every process it starts can be found afterwards, and waiting for events."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from tests.conftest import REPO

TAG_ENV = "SEMFI_TEST_TAG"


def image_manifest(folder: Path, rows: int, *, size: int = 16, gap: int = 2, name: str = "m.parquet") -> Path:
    """`rows` image pairs (random keyframes of size x size pixels) with `gap` in-betweens each."""
    rng = np.random.default_rng(rows * 1000 + size)
    keys = []
    for i in range(rows + 1):
        path = folder / f"k{i:03d}.png"
        write_png(path, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        keys.append(path)
    data = [
        {"pair_id": f"p{i:02d}", "start_image": str(keys[i]), "end_image": str(keys[i + 1]), "gap_frames": gap}
        for i in range(rows)
    ]
    return write_manifest(data, folder / name)


def run_args(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview", *extra]


def start_run(manifest: Path, out: Path, *extra: str, env: dict | None = None, tag: str | None = None):
    """`semfi-batch run` as a subprocess in its own session, its environment tagged (see `tagged_processes`)."""
    environment = {**os.environ, TAG_ENV: tag or uuid.uuid4().hex, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "semfi_batch", *run_args(manifest, out, *extra)], cwd=REPO, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def tagged_processes(tag: str) -> list[int]:
    """Pids of live processes whose environment carries TAG_ENV=tag (a run and everything it started)."""
    found = []
    needle = f"{TAG_ENV}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                if state not in (b"Z", b"X"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def events(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return "gone"


@pytest.fixture
def images(tmp_path) -> Path:
    """A manifest of 4 image pairs (16x16, 2 in-betweens each)."""
    return image_manifest(tmp_path, 4)


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    """A tmpfs of `size` (ffmpeg's units: 192k) mounted on `folder`, for a real ENOSPC; the test is skipped
    where mounting needs root this process lacks."""
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
