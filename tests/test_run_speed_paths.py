"""The paths that make a whole `run` fast (issue 16), checked for what they must keep true: PNGs stay lossless
at the fast filter, a shared keyframe is decoded once yet a changed file is read again, workers start on
their own stretch of rows, and a run with nothing to do imports no pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from semfi_batch.backends import BackendOptions
from semfi_batch.errors import MediaError, SemfiError
from semfi_batch.media.frames import PNG_LEVEL_ENV, encode_png, read_image, write_png
from semfi_batch.run.engine import prepare_run
from semfi_batch.run.frame_io import RecentImages
from semfi_batch.run.worker import ClaimSettings, work_through
from tests.conftest import REPO
from tests.faults.conftest import image_manifest, run_args


def png_filters(data: bytes) -> set[int]:
    """The filter type byte of every row of an 8-bit RGB, non-interlaced PNG."""
    import io

    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * 3
    return {raw[row * stride] for row in range(height)}


@pytest.mark.parametrize("level", ["0", "1", "3", "6", "9"])
@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 3), (np.uint8, 4), (np.uint16, 3), (np.uint16, 4)])
def test_png_is_lossless_at_every_level(tmp_path, monkeypatch, level, dtype, channels):
    monkeypatch.setenv(PNG_LEVEL_ENV, level)
    rng = np.random.default_rng(int(level))
    top = 256 if dtype == np.uint8 else 65536
    frame = rng.integers(0, top, (37, 53, channels), dtype=dtype)
    frame[10:20] = frame[9]  # rows alike, as in video
    write_png(tmp_path / "f.png", frame)
    back = read_image(tmp_path / "f.png")
    assert back.dtype == frame.dtype and np.array_equal(back, frame)
    if dtype == np.uint8:  # a second decoder: PIL (16-bit RGB it cannot hold)
        with Image.open(tmp_path / "f.png") as im:
            assert np.array_equal(np.asarray(im), frame)
    # and ffmpeg's, which splice and assemble read the frames with
    pix = {(np.uint8, 3): "rgb24", (np.uint8, 4): "rgba", (np.uint16, 3): "rgb48le", (np.uint16, 4): "rgba64le"}
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "f.png"), "-f", "rawvideo", "-pix_fmt",
         pix[(dtype, channels)], "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert np.array_equal(np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).reshape(frame.shape), frame)


def test_fast_levels_filter_rows_by_up_and_slow_levels_choose(monkeypatch):
    x = np.linspace(0, 255, 64)
    frame = np.stack([np.add.outer(x, x) % 256] * 3, axis=-1).astype(np.uint8)  # a gradient: filters differ
    monkeypatch.setenv(PNG_LEVEL_ENV, "1")
    assert png_filters(encode_png(frame)) == {2}  # 2: up
    monkeypatch.setenv(PNG_LEVEL_ENV, "9")
    assert png_filters(encode_png(frame)) != {2}  # libpng's adaptive choice


def test_recent_images_decode_once_and_notice_a_changed_file(tmp_path):
    path = tmp_path / "k.png"
    write_png(path, np.zeros((8, 8, 3), np.uint8))
    recent = RecentImages(size=2)
    first = recent.read(path)
    assert recent.read(path) is first  # the same array: decoded once
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1  # read-only: no job can change what the next one gets
    write_png(path, np.full((8, 8, 3), 7, np.uint8))  # replaced: another inode
    assert recent.read(path)[0, 0, 0] == 7
    others = [tmp_path / f"o{i}.png" for i in range(3)]
    for other in others:
        write_png(other, np.ones((4, 4, 3), np.uint8))
        recent.read(other)
    assert len(recent._images) == 2  # bounded


def test_keys_read_ahead_are_decoded_once_and_only_used_while_the_file_is_unchanged(tmp_path, monkeypatch):
    from semfi_batch.run import frame_io

    decoded = []
    monkeypatch.setattr(frame_io, "read_image", lambda path: decoded.append(path) or read_image(path))
    path = tmp_path / "k.png"
    write_png(path, np.full((8, 8, 3), 1, np.uint8))
    recent = RecentImages(size=2)
    recent.read_ahead([path])
    recent._ahead[str(path)].result()
    assert recent.read(path)[0, 0, 0] == 1 and len(decoded) == 1  # the decode made ahead, not another
    other = tmp_path / "o.png"
    write_png(other, np.full((8, 8, 3), 2, np.uint8))
    recent.read_ahead([other])
    recent._ahead[str(other)].result()
    write_png(other, np.full((8, 8, 3), 3, np.uint8))  # replaced after the decode ahead
    assert recent.read(other)[0, 0, 0] == 3 and len(decoded) == 3
    missing = tmp_path / "gone.png"
    recent.read_ahead([missing])  # its error is met again by the job's own read, naming the file
    with pytest.raises(MediaError, match="gone.png"):
        recent.read(missing)


def test_a_worker_starts_on_its_own_stretch_of_rows(tmp_path):
    manifest = image_manifest(tmp_path, 6, size=8, gap=1)
    _, layout, jobs = prepare_run(manifest, tmp_path / "out", "blend", BackendOptions())
    order = []
    settings = ClaimSettings(since=0.0)
    work_through(jobs, layout, BackendOptions(), settings, lambda r: order.append(r["pair_id"]), part=(1, 2))
    assert order == ["p03", "p04", "p05", "p00", "p01", "p02"]  # worker 2 of 2 starts half way, goes round


def test_a_run_imports_no_pandas_with_or_without_work(tmp_path):
    manifest = image_manifest(tmp_path, 3, size=8, gap=1)
    out = tmp_path / "out"
    args = [a for a in run_args(manifest, out) if a != "--no-preview"]
    probe = (
        f"import sys\nfrom semfi_batch.cli import main\ncode = main({args!r})\nprint(code, 'pandas' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.stdout.split()[-2:] == ["0", "False"], first.stderr  # its report is made without pandas
    assert "p01" in (out / "report.html").read_text()
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.stdout.split()[-2:] == ["0", "False"], again.stderr
    assert json.loads((out / "run.json").read_text())["settings"]["preview"] is False  # previews are opt-in


def test_auto_workers_start_only_what_the_work_pays_for(tmp_path, monkeypatch):
    from semfi_batch.run import engine

    monkeypatch.setattr(engine, "physical_cores", lambda: 8)
    small = image_manifest(tmp_path, 12, size=8, gap=1)
    _, _, jobs = prepare_run(small, tmp_path / "small", "flow", BackendOptions())
    assert engine.auto_workers(jobs) == 1  # 12 tiny jobs: a second process would cost more than it saves
    sized = [replace(job, pair=replace(job.pair, width=1280, height=720)) for job in jobs * 8]
    assert engine.auto_workers(sized) == 8  # 96 jobs at 720p: every core
    _, _, blends = prepare_run(small, tmp_path / "blend", "minterpolate", BackendOptions())
    assert engine.auto_workers([replace(j, backend="rife") for j in blends]) == 1  # a model backend: one process


@pytest.mark.parametrize("threads", [0, 3])
def test_frame_writer_writes_every_frame_and_raises_the_first_error(tmp_path, threads):
    from semfi_batch.run.frame_io import FrameWriter

    rng = np.random.default_rng(threads)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(9)]
    with FrameWriter(threads) as writer:
        for i, frame in enumerate(frames):
            writer.write(tmp_path / f"{i}.png", frame)
        writer.finish()
    assert all(np.array_equal(read_image(tmp_path / f"{i}.png"), f) for i, f in enumerate(frames))
    assert writer.blocked_s > 0
    missing = tmp_path / "missing"  # a folder that is not there: like a full disk
    with pytest.raises(SemfiError, match=f"cannot write {missing}/"), FrameWriter(threads) as writer:
        for i, frame in enumerate(frames):
            writer.write(missing / f"{i}.png", frame)
        writer.finish()
    assert not [t for t in threading.enumerate() if t.name.startswith("semfi-png")]


@pytest.mark.parametrize(("variable", "value"), [("SEMFI_WRITER_THREADS", "lots"), (PNG_LEVEL_ENV, "11")])
def test_a_bad_speed_setting_stops_the_run_before_any_job(tmp_path, monkeypatch, capsys, variable, value):
    from semfi_batch.cli import main

    manifest = image_manifest(tmp_path, 2, size=8, gap=1)
    monkeypatch.setenv(variable, value)
    assert main(run_args(manifest, tmp_path / "out")) != 0
    assert variable in capsys.readouterr().err
    assert not (tmp_path / "out" / "jobs").exists() or not any((tmp_path / "out" / "jobs").iterdir())


def test_a_key_rewritten_in_place_after_its_read_ahead_is_decoded_again(tmp_path, monkeypatch):
    monkeypatch.setenv(PNG_LEVEL_ENV, "0")  # stored rows: both versions have the same size
    path = tmp_path / "k.png"
    write_png(path, np.full((8, 8, 3), 1, np.uint8))
    second = encode_png(np.full((8, 8, 3), 2, np.uint8))
    assert len(second) == path.stat().st_size
    recent = RecentImages(size=2)
    recent.read_ahead([path])
    recent._ahead[str(path)].result()
    inode = path.stat().st_ino
    with open(path, "r+b") as fh:  # same inode, same size
        fh.write(second)
    assert path.stat().st_ino == inode
    assert recent.read(path)[0, 0, 0] == 2


def test_a_worker_with_a_thread_to_spare_writes_on_it_the_same_files(tmp_path, monkeypatch):
    """A CPU backend's worker with a hardware thread to spare (ClaimSettings.spare_thread) writes its frames and keys
    on a thread of their own; the files and records' outputs are the same byte for byte as a worker writing on its own
    thread makes."""
    from semfi_batch.run import attempt

    made = []
    writer_class = attempt.FrameWriter

    def writer(threads, **kwargs):
        made.append(threads)
        return writer_class(threads, **kwargs)

    monkeypatch.setattr(attempt, "FrameWriter", writer)
    manifest = image_manifest(tmp_path, 4, size=24, gap=2)
    files, outputs = {}, {}
    for spare in (False, True):
        _, layout, jobs = prepare_run(manifest, tmp_path / f"spare-{spare}", "flow", BackendOptions())
        records = []
        work_through(jobs, layout, BackendOptions(), ClaimSettings(since=0.0, spare_thread=spare), records.append)
        assert [r["status"] for r in records] == ["done"] * 4
        pngs = [*layout.jobs.glob("*/*.png"), *layout.jobs.glob("*/frames/*.png")]
        files[spare] = {p.relative_to(layout.jobs): p.read_bytes() for p in pngs}
        outputs[spare] = {r["pair_id"]: r["outputs"] for r in records}
    assert made == [0] * 4 + [1] * 4  # on the job's own thread, then on one of their own
    assert len(files[True]) == 4 * (2 + 2) and files[True] == files[False]
    assert outputs[True] == outputs[False]
    assert not [t for t in threading.enumerate() if t.name.startswith("semfi-png")]


def test_a_run_gives_its_workers_a_spare_thread_only_where_the_machine_has_one(tmp_path, monkeypatch):
    from semfi_batch.run import engine

    seen = []
    monkeypatch.setattr(
        engine, "work_through", lambda jobs, layout, options, settings, on_record: seen.append(settings)
    )
    manifest = image_manifest(tmp_path, 2, size=8, gap=1)
    for cpus in (1, 2):
        monkeypatch.setattr(engine, "usable_cpus", lambda cpus=cpus: cpus)
        engine.run_manifest(manifest, tmp_path / f"out{cpus}", backend="flow", workers=1, show_progress=False)
    assert [s.spare_thread for s in seen] == [False, True]
