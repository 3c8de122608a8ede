"""SIGINT/SIGTERM stop a run cleanly (workers included, leases released, metrics written, how to resume said,
exit 130/143); a dead worker is named while the others finish (metrics and report written, exit 1)."""

import json
import os
import signal
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from tests.faults.conftest import image_manifest, process_state, start_run, tagged_processes, wait_until


def published(out: Path) -> int:
    return len(list((out / "jobs").glob("*/record.json"))) if (out / "jobs").exists() else 0


def stopped(tag: str) -> list[int]:
    return [pid for pid in tagged_processes(tag) if process_state(pid) == "T"]


def held_by(out: Path, pids: list[int]) -> int:
    """How many job leases under `out` the processes `pids` hold (0 when `pids` is empty)."""
    held = 0
    for lease in (out / "leases").glob("*.lease") if pids else []:
        try:
            held += json.loads(lease.read_text()).get("pid") in pids
        except (OSError, ValueError):
            continue
    return held


def test_sigterm_stops_every_worker_and_says_how_to_resume(tmp_path):
    manifest = image_manifest(tmp_path, 6)
    out = tmp_path / "out"
    tag = uuid.uuid4().hex
    # One worker stops itself holding p03, and the job it ran before when there is one (a job is published
    # after the next one's frames are made); the other finishes the rest and waits on those. On SIGTERM the
    # stopped worker still publishes that finished job: 5 of 6 are done.
    run = start_run(manifest, out, "--workers", "2", env={"SEMFI_FAULT_STOP": "running:p03"}, tag=tag)
    try:
        wait_until(lambda: published(out) + held_by(out, stopped(tag)) == 6, 90, "the rest done, a worker stopped")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    assert "interrupted by SIGTERM: 5 of 6 jobs done" in err and "Re-run the same command to resume" in err
    wait_until(lambda: not tagged_processes(tag), 10, "every worker to exit")
    assert not list((out / "leases").iterdir())
    assert not list((out / "work").rglob("attempt-*"))
    assert len(pq.read_table(out / "metrics.parquet")) == 5
    again = start_run(manifest, out)
    assert again.wait(timeout=90) == 0
    assert len(pq.read_table(out / "metrics.parquet")) == 6


def test_sigint_abandons_the_current_job(tmp_path):
    manifest = image_manifest(tmp_path, 4)
    out = tmp_path / "out"
    tag = uuid.uuid4().hex
    run = start_run(manifest, out, env={"SEMFI_FAULT_STOP": "running:p02"}, tag=tag)
    try:
        wait_until(lambda: stopped(tag), 60, "the run to stop at p02")
        run.send_signal(signal.SIGINT)
        run.send_signal(signal.SIGCONT)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err
    assert "interrupted by SIGINT: 2 of 4 jobs done" in err
    assert not list((out / "leases").iterdir()) and not (out / "jobs/p02").exists()
    assert [r["pair_id"] for r in pq.read_table(out / "metrics.parquet").to_pylist()] == ["p00", "p01"]


def test_dead_worker_is_named_and_the_others_finish(tmp_path):
    manifest = image_manifest(tmp_path, 6)
    out = tmp_path / "out"
    tag = uuid.uuid4().hex
    run = start_run(manifest, out, "--workers", "3", env={"SEMFI_FAULT_STOP": "running:p01"}, tag=tag)
    try:
        wait_until(lambda: stopped(tag), 90, "a worker to stop at p01")
        victim = stopped(tag)[0]
        os.kill(victim, signal.SIGKILL)
        _, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, err
    assert f"(pid {victim}) was killed by SIGKILL; the other workers went on" in err
    rows = pq.read_table(out / "metrics.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 6
    assert (out / "report.html").exists()
    assert not tagged_processes(tag)
