"""Faults found by trying the commands the way users get them wrong: an output named like an input, a run
pointed at a folder of the user's own, two runs with different manifests on one root, a damaged keyframe
cache file, a pipe given as a video, SIGTERM mid-splice, a full disk while a worker claims its lease, a job
edited by hand before `assemble`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.run.finished import STAMP, invocation, write_stamp
from tests.conftest import REPO
from tests.faults.conftest import image_manifest, run_args, small_tmpfs


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_command_writes_over_its_inputs_or_under_another_format(clip_factory, tmp_path, capsys):
    clip = clip_factory(20)
    before = _digest(clip)
    keys = tmp_path / "keys"
    keys.mkdir()
    for i in range(3):
        write_png(keys / f"k{i}.png", np.full((16, 16, 3), 80 * i, np.uint8))
    key_before = _digest(keys / "k0.png")
    # Each of these exited 0 with the video (or key) replaced by Parquet, HTML, JSON or EDL text.
    assert main(["detect", str(clip), "-o", str(clip), "--mode", "stride", "--every", "4"]) == 2
    assert main(["eval", str(clip), "--backends", "blend", "--max-frames", "10", "-o", str(clip)]) == 2
    assert main(["report", str(tmp_path / "run"), "-o", str(clip)]) == 2
    assert main(["splice", str(tmp_path / "run"), "--otio", str(clip)]) == 2
    assert main(["splice", str(tmp_path / "run"), "--edl", str(clip)]) == 2
    assert main(["manifest", "from-images", str(keys), "-o", str(keys / "k0.png"), "--gap", "2"]) == 2
    assert _digest(clip) == before and _digest(keys / "k0.png") == key_before
    assert main(["detect", str(clip), "-o", str(tmp_path / "rows.csv")]) == 2  # Parquet bytes under a CSV name
    assert not (tmp_path / "rows.csv").exists()
    err = capsys.readouterr().err
    assert "give a file name ending in .parquet" in err and "give a file name ending in .otio" in err


def test_run_refuses_an_output_root_holding_the_users_files(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    manifest = image_manifest(folder, 2)
    (folder / ".draft.tmp123.mp4").write_bytes(b"user")  # named like a temporary file of a killed run
    (folder / "work").mkdir()
    (folder / "work" / "mine.txt").write_text("mine")
    assert main(run_args(manifest, folder)) == 2  # leftover cleaning removed both files
    assert (folder / ".draft.tmp123.mp4").read_bytes() == b"user" and (folder / "work" / "mine.txt").exists()
    assert not (folder / "run.json").exists()


def test_no_finished_stamp_over_a_job_another_run_replaced(tmp_path):
    manifest = image_manifest(tmp_path, 2)
    out = tmp_path / "out"
    assert main(run_args(manifest, out)) == 0
    keys = {pid: json.loads((out / "jobs" / pid / "record.json").read_text())["key"] for pid in ("p00", "p01")}
    (out / STAMP).unlink(missing_ok=True)
    # Another run (another manifest) published its own p01 after this run's: no stamp may call it done.
    write_stamp(out, invocation(["run"]), {}, [], {**keys, "p01": "another-manifests-key"}, {"total": 2})
    assert not (out / STAMP).exists()
    write_stamp(out, invocation(["run"]), {}, [], keys, {"total": 2})
    assert (out / STAMP).exists()


def test_a_damaged_keyframe_cache_file_is_extracted_again(clip_factory, tmp_path):
    clip = clip_factory(20)
    rows = [{"pair_id": f"v{i}", "source": str(clip), "start_frame": 4 * i, "end_frame": 4 * i + 3} for i in range(3)]
    manifest = write_manifest(rows, tmp_path / "v.parquet")
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend"]) == 0
    cached = sorted((out / "cache" / "keyframes").glob("*.png"))
    assert cached
    for path in cached:
        path.write_bytes(os.urandom(200))
    # Every job failed, for good (the cache was never rebuilt), and --force replaced done jobs with failed ones.
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--force"]) == 0
    records = [json.loads((out / "jobs" / r["pair_id"] / "record.json").read_text()) for r in rows]
    assert [r["status"] for r in records] == ["done"] * 3


def test_detect_refuses_a_pipe_instead_of_waiting_on_it(tmp_path):
    fifo = tmp_path / "video.mp4"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "semfi_batch", "detect", str(fifo), "-o", str(tmp_path / "m.parquet")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "is not a regular file" in done.stderr


def test_sigterm_mid_splice_removes_its_work_and_exits_143(tmp_path):
    from tests.conftest import numbered_clip
    from tests.test_splice import make_run

    clip = numbered_clip(tmp_path / "long.mp4", 250, size="320x240")
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 100, "end": 104}])
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "semfi_batch", "splice", str(run), "-o", str(out / "o.mp4"), "--reencode"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(out.glob(".splice-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the splice ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "splice interrupted (SIGTERM)" in err, err
    assert not list(out.iterdir())  # before: the work folder and the temporary output stayed


def test_full_disk_while_claiming_a_lease_is_one_line(tmp_path):
    with small_tmpfs(tmp_path / "small", "300k") as small:
        manifest = image_manifest(tmp_path, 6, size=32)
        out = small / "out"
        assert main(run_args(manifest, out)) == 0
        shutil.rmtree(out / "jobs" / "p05")  # one job to do again, on a filesystem then filled up
        (out / STAMP).unlink(missing_ok=True)
        with open(small / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(bytes(4096))
        command = [sys.executable, "-m", "semfi_batch", *run_args(manifest, out, "--workers", "2")]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        # Before: each worker's traceback (lease.py _create: OSError ENOSPC), then an error naming metrics.parquet.
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "no space left on the output filesystem" in done.stderr and "claiming p05" in done.stderr


def test_assemble_holds_a_job_edited_by_hand_and_never_writes_into_one(tmp_path, capsys):
    for i in range(3):
        write_png(tmp_path / f"k{i}.png", np.full((32, 48, 3), 60 * i, np.uint8))
    rows = [
        {"pair_id": "a", "start_image": "k0.png", "end_image": "k1.png", "gap_frames": 2},
        {"pair_id": "b", "start_image": "k1.png", "end_image": "k2.png", "gap_frames": 2},
    ]
    manifest = write_manifest(rows, tmp_path / "keys.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend"]) == 0
    write_png(run / "jobs" / "a" / "frames" / "000002.png", np.full((32, 48, 3), 255, np.uint8))
    capsys.readouterr()
    assert main(["assemble", str(run), "-o", str(tmp_path / "seq"), "--fps", "10"]) == 0
    assert "key held): a" in capsys.readouterr().err  # before: the hand-placed picture was frame 3
    assert main(["assemble", str(run), "-o", str(run / "jobs" / "b" / "frames")]) == 2
    assert len(list((run / "jobs" / "b" / "frames").iterdir())) == 2
    assert main(["assemble", str(run), "-o", str(tmp_path)]) == 2  # the keys' own folder: replaced whole
    assert (tmp_path / "k0.png").exists() and (tmp_path / "keys.parquet").exists()
    # Keys named as a sequence's frames (000001.png, ...) in a folder of their own: still the run's input.
    keys = tmp_path / "numbered"
    keys.mkdir()
    for i in range(1, 4):
        write_png(keys / f"{i:06d}.png", np.full((32, 48, 3), 50 * i, np.uint8))
    numbered = write_manifest(
        [{"pair_id": "n", "start_image": str(keys / "000001.png"), "end_image": str(keys / "000002.png"),
          "gap_frames": 2}], tmp_path / "numbered.parquet",
    )  # fmt: skip
    assert main(["run", str(numbered), "--out", str(tmp_path / "nrun"), "--quiet", "--backend", "blend"]) == 0
    before = {p.name: _digest(p) for p in keys.iterdir()}
    assert main(["assemble", str(tmp_path / "nrun"), "-o", str(keys)]) == 2
    assert {p.name: _digest(p) for p in keys.iterdir()} == before


def test_splice_and_report_never_write_inside_a_runs_state_folders(clip_factory, tmp_path, capsys):
    from tests.test_splice import make_run

    run = make_run(tmp_path / "run", clip_factory(20), [{"pair_id": "a", "mode": "replace", "start": 4, "end": 8}])
    job = run / "jobs" / "a"
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    # Each wrote its file into the finished job's folder (exit 0), and the next splice left the job out as
    # "job folder does not match its record: frames/ holds 4 files, its record lists 3".
    assert main(["splice", str(run), "-o", str(job / "frames" / "out.mp4")]) == 2
    assert main(["splice", str(run), "--out-dir", str(job)]) == 2
    assert main(["splice", str(run), "-o", str(tmp_path / "out.mp4"), "--otio", str(job / "t.otio")]) == 2
    assert main(["report", str(run), "-o", str(job / "frames" / "r.html")]) == 2
    assert main(["report", str(run), "-o", str(run / "cache" / "r.html")]) == 2
    assert "is inside the run's jobs/ folder" in capsys.readouterr().err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    assert not (tmp_path / "out.mp4").exists()


def test_manifest_on_a_full_disk_is_one_line_naming_it_and_leaves_nothing(tmp_path, capsys):
    keys = tmp_path / "keys"
    keys.mkdir()
    for i in range(3):
        write_png(keys / f"k{i}.png", np.full((16, 16, 3), 80 * i, np.uint8))
    with small_tmpfs(tmp_path / "small", "64k") as small:
        with open(small / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(bytes(1024))
        assert main(["manifest", "from-images", str(keys), "-o", str(small / "keys.parquet"), "--gap", "2"]) == 1
        # Before: "Error writing bytes to file. Detail: [errno 28] No space left on device", naming no file.
        assert f"cannot write {small / 'keys.parquet'}: No space left" in capsys.readouterr().err
        assert sorted(p.name for p in small.iterdir()) == ["filler"]
        (small / "filler").unlink()
        assert main(["manifest", "from-images", str(keys), "-o", str(small / "keys.parquet"), "--gap", "2"]) == 0
        assert sorted(p.name for p in small.iterdir()) == ["keys.parquet"]


def test_assemble_on_a_full_disk_names_the_output_and_leaves_nothing(tmp_path, capsys):
    manifest = image_manifest(tmp_path, 2, size=64, gap=4)
    run = tmp_path / "run"
    assert main(run_args(manifest, run)) == 0
    with small_tmpfs(tmp_path / "small", "256k") as small:
        with open(small / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(bytes(1024))
        os.truncate(small / "filler", (small / "filler").stat().st_size - 8 * 1024)
        capsys.readouterr()
        # Before: "cannot read video SMALL/.clip.mp4.<random>/clip.mp4: ... Invalid data found" (a temporary
        # name), and for the sequence "No space left on device: RUN/jobs/p00/frames/000001.png" (the run's file).
        for name in ("clip.mp4", "seq"):
            assert main(["assemble", str(run), "-o", str(small / name)]) == 1
            assert (
                f"no space left on the output filesystem ({small}) while writing {small / name}"
                in capsys.readouterr().err
            )
            assert sorted(p.name for p in small.iterdir()) == ["filler"]


def test_assemble_killed_leaves_nothing_after_the_next_assemble(tmp_path):
    manifest = image_manifest(tmp_path, 3, size=128, gap=30)
    run = tmp_path / "run"
    assert main(run_args(manifest, run)) == 0
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "semfi_batch", "assemble", str(run), "-o", str(out / "clip.mp4")]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(out.glob(".clip.mp4.*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the assemble ended before it could be killed"
    proc.kill()
    proc.communicate(timeout=60)
    assert list(out.glob(".clip.mp4.*"))  # its work folder, beside the user's clip
    # Before: the killed assemble's folder (.clip.mp4.<random>) stayed there for good, beside the new clip.
    assert main(["assemble", str(run), "-o", str(out / "clip.mp4")]) == 0
    assert main(["assemble", str(run), "-o", str(tmp_path / "whole.mp4")]) == 0
    assert [p.name for p in out.iterdir()] == ["clip.mp4"]
    assert _digest(out / "clip.mp4") == _digest(tmp_path / "whole.mp4")
