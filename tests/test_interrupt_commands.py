"""Ctrl-C and SIGTERM during the commands other than `run` (tests/faults/test_signals.py covers `run`): each
command is started as a real process in its own session, the signal is sent once an ffmpeg child is running,
to the whole process group (as a terminal sends Ctrl-C) or to the command's pid alone (as `kill` does). The
command must end with one line saying what was interrupted and which output was not written, exit 130 (SIGINT)
or 143 (SIGTERM), and leave no output, no temporary file or folder and no ffmpeg running. Before: SIGINT
mid-splice exited 130 with nothing printed at all, and SIGINT while the command was still starting printed a
Python traceback and died by the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, numbered_clip
from tests.test_splice import make_run


def _group_processes(pgid: int) -> list[str]:
    """`pid comm` of the live (not zombie) processes of process group `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(f"{entry.name} {comm}")
    return found


def _interrupt(args: list[str], signum: int, *, whole_group: bool) -> tuple[int, str, int]:
    """Run `semfi-batch ARGS`, send `signum` once an ffmpeg child runs; return (exit status, stderr, pgid)."""
    command = [sys.executable, "-m", "semfi_batch", *args]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        if any(p.endswith(" ffmpeg") for p in _group_processes(proc.pid)):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    if whole_group:
        os.killpg(proc.pid, signum)
    else:
        os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, proc.pid


def _assert_no_process_left(pgid: int) -> None:
    deadline = time.time() + 5
    while _group_processes(pgid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _group_processes(pgid), _group_processes(pgid)


@pytest.fixture
def splice_run(tmp_path) -> Path:
    clip = numbered_clip(tmp_path / "long.mp4", 120, size="160x120")
    return make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 60, "end": 64}])


@pytest.mark.parametrize(("signum", "whole_group"), [(signal.SIGINT, True), (signal.SIGINT, False)])
def test_ctrl_c_mid_splice_says_the_output_was_not_written(splice_run, tmp_path, signum, whole_group):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "o.mp4"
    code, err, pgid = _interrupt(["splice", str(splice_run), "-o", str(target), "--reencode"], signum,
                                 whole_group=whole_group)  # fmt: skip
    # Before: exit 130 and an empty stderr.
    assert code == 130 and err.strip() == f"splice interrupted (SIGINT): {target} not written", err
    assert not list(out.iterdir())
    _assert_no_process_left(pgid)


def test_sigterm_mid_splice_leaves_the_run_root_as_it_was(splice_run):
    before = sorted(p.name for p in splice_run.iterdir())
    code, err, pgid = _interrupt(["splice", str(splice_run), "--reencode"], signal.SIGTERM, whole_group=False)
    assert code == 143 and err.strip() == "splice interrupted (SIGTERM): nothing half-written is left", err
    assert sorted(p.name for p in splice_run.iterdir()) == before  # before: an empty spliced/ stayed
    _assert_no_process_left(pgid)


def test_ctrl_c_mid_detect_and_sigterm_mid_eval(tmp_path):
    clip = numbered_clip(tmp_path / "clip.mp4", 300, size="160x120")
    manifest = tmp_path / "cuts.parquet"
    code, err, pgid = _interrupt(["detect", str(clip), "-o", str(manifest)], signal.SIGINT, whole_group=False)
    assert code == 130 and err.strip() == f"detect interrupted (SIGINT): {manifest} not written", err
    _assert_no_process_left(pgid)
    results = tmp_path / "eval.parquet"
    args = ["eval", str(clip), "-b", "blend", "--max-frames", "60", "-o", str(results)]
    code, err, pgid = _interrupt(args, signal.SIGTERM, whole_group=True)
    assert code == 143 and err.strip().splitlines()[-1] == f"eval interrupted (SIGTERM): {results} not written", err
    _assert_no_process_left(pgid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
