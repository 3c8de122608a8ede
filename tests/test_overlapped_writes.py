"""A worker running a quick backend publishes each job after the next one's frames are made, a model
backend's PNG writes, or a CPU backend's fsyncs, going on meanwhile (run/attempt.py, run/worker.py). What must
stay true: every job is published complete and verified, in order, every file of it fsynced; a slow backend's
jobs are published at once; an interruption while a job's writes are pending still publishes it (its frames
are complete), and a full disk drops it whole (nothing published, no lease left), as does a failed fsync
(the job fails); a resume finishes the rest byte for byte as a straight run does."""

from __future__ import annotations

import errno
import json
import time

import pytest

from semfi_batch import backends
from semfi_batch.backends.blend import BlendBackend
from semfi_batch.errors import DiskFull, RunInterrupted
from semfi_batch.run import frame_io, worker
from semfi_batch.run.engine import run_manifest
from semfi_batch.run.frame_io import WRITER_THREADS_ENV
from semfi_batch.run.ledger import check_job_folder
from tests.faults.conftest import image_manifest

EVENTS: list[tuple[str, str]] = []


class ModelLikeBlend(BlendBackend):
    """A cross-fade that runs like a model backend (one per process, frames written on the writer's threads);
    it notes when it makes each job's frames, stops the run (as SIGINT would) at the pair in `stop_at`, and
    takes at least `seconds` a job."""

    name = "modellike"
    scales_with_workers = False
    stop_at: str | None = None
    seconds = 0.0

    def interpolate(self, request):
        EVENTS.append(("make", request.pair_id))
        if request.pair_id == self.stop_at:
            raise RunInterrupted(2)
        time.sleep(self.seconds)
        yield from super().interpolate(request)


@pytest.fixture
def modellike(monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "modellike", f"{__name__}:ModelLikeBlend")
    monkeypatch.setenv(WRITER_THREADS_ENV, "2")
    EVENTS.clear()
    publish = worker.publish_held

    def noting_publish(layout, attempt, *args, **kw):
        EVENTS.append(("publish", attempt.job.pair_id))
        return publish(layout, attempt, *args, **kw)

    monkeypatch.setattr(worker, "publish_held", noting_publish)
    ModelLikeBlend.stop_at, ModelLikeBlend.seconds = None, 0.0
    yield
    ModelLikeBlend.stop_at, ModelLikeBlend.seconds = None, 0.0


def job_files(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "jobs").rglob("*"))
        if p.is_file() and p.name != "record.json"
    }


def leftovers(root) -> list[str]:
    """Leases held and attempt folders left in the output root."""
    found = [p.name for p in (root / "leases").glob("*")] if (root / "leases").exists() else []
    return found + [str(p) for p in (root / "work").rglob("attempt-*")] if (root / "work").exists() else found


def test_each_job_is_published_after_the_next_ones_frames_complete_and_verified(tmp_path, modellike):
    manifest = image_manifest(tmp_path, 4, size=24, gap=3)
    summary = run_manifest(manifest, tmp_path / "out", backend="modellike", show_progress=False)
    assert summary.done == 4 and summary.failed == 0
    assert EVENTS == [
        ("make", "p00"), ("make", "p01"), ("publish", "p00"), ("make", "p02"), ("publish", "p01"),
        ("make", "p03"), ("publish", "p02"), ("publish", "p03"),
    ]  # fmt: skip
    for i in range(4):
        record, problem = check_job_folder(tmp_path / "out" / "jobs" / f"p{i:02d}", None)
        assert problem is None and record["status"] == "done" and len(record["outputs"]) == 5
    reference = tmp_path / "ref"  # the same jobs by the CPU path (each job written and published at once)
    run_manifest(manifest, reference, backend="blend", show_progress=False)
    assert job_files(tmp_path / "out") == job_files(reference)


def test_a_records_wall_time_is_its_own_job_not_the_next_ones(tmp_path, modellike):
    ModelLikeBlend.seconds = 0.4
    manifest = image_manifest(tmp_path, 3, size=24, gap=3)
    run_manifest(manifest, tmp_path / "out", backend="modellike", show_progress=False)
    walls = [json.loads(p.read_text())["wall_s"] for p in sorted((tmp_path / "out" / "jobs").glob("*/record.json"))]
    assert len(walls) == 3 and all(0.4 <= wall < 0.75 for wall in walls)  # deferred ones counted 0.8 s and more


def test_a_slow_backends_jobs_are_published_at_once(tmp_path, modellike, monkeypatch):
    monkeypatch.setattr(worker, "OVERLAP_MAX_BACKEND_S", 0.0)
    manifest = image_manifest(tmp_path, 3, size=24, gap=3)
    assert run_manifest(manifest, tmp_path / "out", backend="modellike", show_progress=False).done == 3
    made_then_published = [(kind, f"p0{i}") for i in range(3) for kind in ("make", "publish")]
    assert made_then_published == EVENTS


def test_an_interruption_publishes_the_job_being_written_and_a_resume_finishes_the_rest(tmp_path, modellike):
    manifest = image_manifest(tmp_path, 4, size=24, gap=3)
    out = tmp_path / "out"
    ModelLikeBlend.stop_at = "p02"  # p01's writes are pending when p02 is stopped
    summary = run_manifest(manifest, out, backend="modellike", show_progress=False)
    assert summary.interrupted
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["p00", "p01"]  # p01's frames were complete
    assert check_job_folder(out / "jobs" / "p01", None)[1] is None
    assert leftovers(out) == []
    ModelLikeBlend.stop_at = None
    summary = run_manifest(manifest, out, backend="modellike", show_progress=False)
    assert summary.done == 4
    reference = tmp_path / "ref"
    run_manifest(manifest, reference, backend="modellike", show_progress=False)
    assert job_files(out) == job_files(reference)


def test_a_full_disk_during_a_pending_write_stops_the_run_and_publishes_nothing_of_that_job(
    tmp_path, modellike, monkeypatch
):
    manifest = image_manifest(tmp_path, 4, size=24, gap=3)
    out = tmp_path / "out"
    write_png = frame_io.write_png

    def full_on_p01(path, frame, **options):
        if "p01" in str(path) and path.name == "000002.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_png(path, frame, **options)

    monkeypatch.setattr(frame_io, "write_png", full_on_p01)
    with pytest.raises(DiskFull, match="p01"):
        run_manifest(manifest, out, backend="modellike", show_progress=False)
    assert ("make", "p02") in EVENTS and ("publish", "p01") not in EVENTS  # met while p01 was pending
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["p00"]
    assert leftovers(out) == []
    record = json.loads((out / "jobs" / "p00" / "record.json").read_text())
    assert record["status"] == "done"


@pytest.fixture
def cpulike(modellike, monkeypatch):
    """The same cross-fade run like a CPU backend on a machine with no thread to spare (ClaimSettings.spare_thread):
    written on the job's own thread, fsynced behind it."""
    from semfi_batch.run import engine

    monkeypatch.setattr(ModelLikeBlend, "scales_with_workers", True)
    monkeypatch.setattr(engine, "usable_cpus", lambda: 1)
    synced: list[str] = []
    fsync_path = frame_io.fsync_path

    def noting_fsync(path):
        synced.append(str(path))
        return fsync_path(path)

    monkeypatch.setattr(frame_io, "fsync_path", noting_fsync)
    return synced


def test_a_cpu_backends_files_are_fsynced_behind_it_and_its_job_published_after_the_next_ones_frames(tmp_path, cpulike):
    manifest = image_manifest(tmp_path, 3, size=24, gap=2)
    summary = run_manifest(manifest, tmp_path / "out", backend="modellike", show_progress=False, workers=1)
    assert summary.done == 3
    assert EVENTS == [
        ("make", "p00"), ("make", "p01"), ("publish", "p00"), ("make", "p02"), ("publish", "p01"),
        ("publish", "p02"),
    ]  # fmt: skip
    for i in range(3):  # every file of every job fsynced: its two frames, start.png and end.png
        names = sorted(p.rsplit("/", 1)[1] for p in cpulike if f"/p{i:02d}/" in p)
        assert names == ["000001.png", "000002.png", "end.png", "start.png"], names
        assert check_job_folder(tmp_path / "out" / "jobs" / f"p{i:02d}", None)[1] is None


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_an_fsync_that_fails_behind_a_cpu_job_fails_it_or_stops_the_run(tmp_path, cpulike, monkeypatch, code):
    manifest = image_manifest(tmp_path, 3, size=24, gap=2)
    out = tmp_path / "out"
    fsync_path = frame_io.fsync_path

    def failing_on_p01(path):
        if "/p01/" in str(path) and path.name == "000002.png":
            raise OSError(code, "fsync failed")
        return fsync_path(path)

    monkeypatch.setattr(frame_io, "fsync_path", failing_on_p01)
    if code == errno.ENOSPC:  # a full disk: the run stops, nothing of p01 published, no lease left
        with pytest.raises(DiskFull, match="p01"):
            run_manifest(manifest, out, backend="modellike", show_progress=False, workers=1)
        assert sorted(p.name for p in (out / "jobs").iterdir()) == ["p00"]
        assert leftovers(out) == []
        return
    summary = run_manifest(manifest, out, backend="modellike", show_progress=False, workers=1)
    assert (summary.done, summary.failed) == (2, 1)
    record = json.loads((out / "jobs" / "p01" / "record.json").read_text())
    assert record["status"] == "failed" and "fsync failed" in record["error"]
    assert not (out / "jobs" / "p01" / "frames").exists()
