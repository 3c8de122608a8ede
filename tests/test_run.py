import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image, write_png
from tests.conftest import REPO, frame_number


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every output file of a run except the timing-dependent records, ledger and metrics."""
    skip = {"record.json", "ledger.jsonl", "metrics.parquet", "run.json"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "jobs").rglob("*"))
        if p.is_file() and p.name not in skip
    }


@pytest.fixture
def video_manifest(tmp_path, clip_factory):
    clip = clip_factory(60, size="96x64")
    rows = [
        {"pair_id": f"r{i:02d}", "source": str(clip), "start_frame": s, "end_frame": s + g + 1, "take": i}
        for i, (s, g) in enumerate([(0, 3), (5, 1), (10, 5), (20, 2), (30, 7), (40, 4)])
    ]
    return write_manifest(rows, tmp_path / "shots.parquet")


def test_run_end_to_end_on_synthetic_clip(video_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(video_manifest), "--out", str(out), "--quiet", "--preview"]) == 0
    metrics = pq.read_table(out / "metrics.parquet").to_pylist()
    assert [m["pair_id"] for m in metrics] == [f"r{i:02d}" for i in range(6)]
    assert all(m["status"] == "done" and m["backend"] == "flow" for m in metrics)
    assert [m["take"] for m in metrics] == list(range(6))  # the user's column is carried through
    for m in metrics:
        frames = sorted((out / "jobs" / m["pair_id"] / "frames").glob("*.png"))
        assert len(frames) == m["frames"] == m["gap_frames"] == m["end_frame"] - m["start_frame"] - 1
        assert read_image(frames[0]).shape == (64, 96, 3)
        assert m["wall_s"] > 0 and m["peak_rss_mb"] > 0 and m["s_per_frame"] > 0
        assert (out / "jobs" / m["pair_id"] / "clip.mp4").stat().st_size > 0
    # The keyframes the run used are exactly the frames the manifest names.
    assert frame_number(read_image(out / "jobs/r02/start.png")) == 10
    assert frame_number(read_image(out / "jobs/r02/end.png")) == 16
    assert not list((out / "work").iterdir())
    assert "metrics" in capsys.readouterr().out


def test_rerun_skips_done_and_edited_row_reruns_alone(video_manifest, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(video_manifest), "--out", str(out), "--quiet"]) == 0
    before = {p.name: (p.stat().st_ino, (p / "record.json").read_bytes()) for p in (out / "jobs").iterdir()}
    assert main(["run", str(video_manifest), "--out", str(out), "--quiet"]) == 0
    after = {p.name: (p.stat().st_ino, (p / "record.json").read_bytes()) for p in (out / "jobs").iterdir()}
    assert after == before  # nothing re-ran

    table = pq.read_table(video_manifest).to_pylist()
    table[3]["end_frame"] += 2  # edit one row
    write_manifest(table, video_manifest)
    assert main(["run", str(video_manifest), "--out", str(out), "--quiet"]) == 0
    after = {p.name: (p.stat().st_ino, (p / "record.json").read_bytes()) for p in (out / "jobs").iterdir()}
    assert [k for k in before if after[k] != before[k]] == ["r03"]
    assert len(list((out / "jobs/r03/frames").glob("*.png"))) == 4
    assert main(["run", str(video_manifest), "--out", str(out), "--quiet", "--force"]) == 0
    forced = {p.name: (p / "record.json").read_bytes() for p in (out / "jobs").iterdir()}
    assert all(forced[k] != after[k][1] for k in forced)


def test_failed_job_is_recorded_and_retried(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png", "c.png"):
        write_png(tmp_path / name, rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    rows = [
        {"pair_id": "good", "start_image": "a.png", "end_image": "b.png", "gap_frames": 2},
        {"pair_id": "bad", "start_image": "b.png", "end_image": "c.png", "gap_frames": 3},
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    (tmp_path / "c.png").write_bytes(b"")  # becomes unreadable after validation: a job-time failure
    # validation catches it first:
    assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "row 1, pair_id='bad', column 'end_image'" in capsys.readouterr().err

    write_png(tmp_path / "c.png", rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    out = tmp_path / "out"
    from semfi_batch.backends import register

    register("flaky", "tests.test_run:FlakyBackend")
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "flaky"]) == 1
    captured = capsys.readouterr()
    assert "bad" in captured.out and "gap of 3 refused" in captured.out and "--retry-failed" in captured.err
    record = json.loads((out / "jobs/bad/record.json").read_text())
    assert record["status"] == "failed" and "gap of 3 refused" in record["error"]
    assert not (out / "jobs/bad/frames").exists()
    metrics = {m["pair_id"]: m for m in pq.read_table(out / "metrics.parquet").to_pylist()}
    assert metrics["bad"]["status"] == "failed" and metrics["good"]["status"] == "done"

    # Without --retry-failed a failed job stays failed; with it, only that job runs again.
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "flaky"]) == 1
    good_ino = (out / "jobs/good").stat().st_ino
    FlakyBackend.refuse = False
    try:
        assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "flaky", "--retry-failed"]) == 0
    finally:
        FlakyBackend.refuse = True
    assert (out / "jobs/good").stat().st_ino == good_ino
    assert len(list((out / "jobs/bad/frames").glob("*.png"))) == 3


from semfi_batch.backends.blend import BlendBackend  # noqa: E402


class FlakyBackend(BlendBackend):
    """A real blend backend that raises on a gap of 3 while `refuse` is set (a backend error at job time)."""

    name = "flaky"
    refuse = True

    def interpolate(self, request):
        if self.refuse and request.gap_frames == 3:
            raise RuntimeError("gap of 3 refused")
        yield from super().interpolate(request)


def test_kill_minus_nine_then_resume_is_byte_identical(tmp_path, clip_factory):
    clip = clip_factory(80, size="96x64")
    rows = [
        {"pair_id": f"k{i:02d}", "source": str(clip), "start_frame": s, "end_frame": s + 4}
        for i, s in enumerate(range(0, 75, 5))
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    # The reference is made as the runs it is compared with are: a fresh process (not this test process, which
    # earlier tests have used).
    reference = tmp_path / "ref"
    cmd = [sys.executable, "-m", "semfi_batch", "run", str(manifest), "--quiet", "--out"]
    assert subprocess.run([*cmd, str(reference)], cwd=REPO, capture_output=True).returncode == 0

    out = tmp_path / "out"
    cmd = [*cmd, str(out)]
    kills = 0
    for wait_jobs in (3, 8):
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if (out / "jobs").exists() and len(list((out / "jobs").iterdir())) >= wait_jobs:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        finished = {p.name: (p.stat().st_ino, (p / "record.json").read_bytes()) for p in (out / "jobs").iterdir()}
        assert all(json.loads(rec)["status"] == "done" for _, rec in finished.values())
    assert kills >= 1
    done_before = {p.name: (p.stat().st_ino, (p / "record.json").read_bytes()) for p in (out / "jobs").iterdir()}
    assert 0 < len(done_before) < len(rows)
    assert subprocess.run(cmd, cwd=REPO).returncode == 0
    after = {p.name: (p.stat().st_ino, (p / "record.json").read_bytes()) for p in (out / "jobs").iterdir()}
    assert all(after[k] == v for k, v in done_before.items())  # no finished job ran again
    resumed, made_at_once = tree_bytes(out), tree_bytes(reference)
    differing = sorted(name for name in made_at_once if resumed.get(name) != made_at_once[name])
    assert resumed.keys() == made_at_once.keys() and not differing, _pixel_differences(out, reference, differing)
    assert len(pq.read_table(out / "metrics.parquet")) == len(rows)


def _pixel_differences(out: Path, reference: Path, names: list[str]) -> str:
    """What differs in each of `names` (PNG files of both roots): pixels and the largest difference, and which
    run made the job (its record's attempt and pid)."""
    lines = []
    for name in names:
        a, b = (read_image(root / name).astype(int) for root in (out, reference))
        record = json.loads((out / Path(name).parts[0] / Path(name).parts[1] / "record.json").read_text())
        lines.append(
            f"{name}: {int((a != b).any(axis=-1).sum())} pixels differ, by up to {int(abs(a - b).max())}; "
            f"made by pid {record.get('pid')} attempt {record.get('attempt')}"
        )
    return "\n".join(lines)


def test_run_on_real_clip_with_blend_and_flow(tmp_path, real_clip):
    clip = real_clip("bbb_cuts_720p24_audio.mp4")
    rows = [
        {"pair_id": "shot_a", "source": str(clip), "start_frame": 4, "end_frame": 8, "backend": "blend"},
        {"pair_id": "shot_b", "source": str(clip), "start_frame": 60, "end_frame": 63, "width": 640, "height": 360},
        {"pair_id": "insert", "source": str(clip), "start_frame": 100, "end_frame": 101, "mode": "insert",
         "gap_frames": 2},
    ]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "bbb.parquet")
    out = tmp_path / "out"
    # In its own process, as a user runs it, so that peak memory is the run's alone.
    cmd = [sys.executable, "-m", "semfi_batch", "run", str(manifest), "--out", str(out), "--quiet"]
    assert subprocess.run(cmd, cwd=REPO).returncode == 0
    metrics = {m["pair_id"]: m for m in pq.read_table(out / "metrics.parquet").to_pylist()}
    assert metrics["shot_a"]["backend"] == "blend" and metrics["shot_b"]["backend"] == "flow"
    assert read_image(out / "jobs/shot_a/frames/000003.png").shape == (720, 1280, 3)
    assert read_image(out / "jobs/shot_b/frames/000002.png").shape == (360, 640, 3)
    assert len(list((out / "jobs/insert/frames").glob("*.png"))) == 2
    assert max(m["peak_rss_mb"] for m in metrics.values()) < 1500  # 720p: frames stream, never a whole clip


def test_default_out_dir_and_unknown_backend(tmp_path, video_manifest, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(video_manifest), "--backend", "nope", "--quiet"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert main(["run", str(video_manifest), "--quiet"]) == 0
    assert (tmp_path / "runs" / "shots" / "metrics.parquet").exists()
