"""Eval on interlaced footage scores the frames `run` makes: per field and woven, resized field by field. A
whole-frame interpolation moves the comb between the fields as if it were texture, and a whole-frame resize
blends the two moments of each frame, in the keys and in the originals alike: flow was misrated by up to 5 dB."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.evaluate import DropSpec, EvalSettings, evaluate
from semfi_batch.manifest import write_manifest
from semfi_batch.media.fields import resize_interlaced
from semfi_batch.media.frames import read_image
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.metrics import psnr

W, H = 192, 144


@pytest.fixture(scope="module")
def interlaced_clip(tmp_path_factory) -> Path:
    """A true 25i MPEG-2 TS, top field first: 50 pictures a second of diagonal motion woven into 24 frames, so
    the two fields of each frame are 1/50 s apart."""
    path = tmp_path_factory.mktemp("eval-fields") / "tff.ts"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=50"]
        + ["-vf", "scroll=h=0.006:v=0.011,tinterlace=mode=interleave_top,setfield=tff", "-frames:v", "24"]
        + ["-c:v", "mpeg2video", "-flags", "+ilme+ildct", "-top", "1", "-q:v", "2", "-g", "12", "-bf", "2", str(path)],
        check=True,
    )
    assert probe_video(path).field_order == "tt"
    return path


def run_psnr(clip: Path, gaps: list[tuple[int, int]], size: tuple[int, int] | None, out: Path) -> float:
    """Mean PSNR of the frames `run` (backend flow) makes for `gaps` against the held-out originals, resized as
    run resizes an interlaced clip's keys (field by field)."""
    extra = {"width": size[0], "height": size[1]} if size else {}
    rows = [{"pair_id": f"g{a:03d}", "source": str(clip), "start_frame": a, "end_frame": b, **extra} for a, b in gaps]
    manifest = write_manifest(rows, out / "m.parquet")
    args = ["run", str(manifest), "--out", str(out / "run"), "--quiet", "--backend", "flow", "--no-preview"]
    assert main(args) == 0
    held_out = extract_frames(probe_video(clip), [a + 1 for a, _ in gaps])
    values = []
    for a, _ in gaps:
        truth = resize_interlaced(held_out[a + 1], *size) if size else held_out[a + 1]
        values.append(psnr(truth, read_image(out / f"run/jobs/g{a:03d}/frames/000001.png")))
    return float(np.mean(values))


@pytest.mark.parametrize("size", [None, (W, H // 2)], ids=["full-size", "half-height"])
def test_eval_of_an_interlaced_clip_gives_the_psnr_of_runs_frames(interlaced_clip, tmp_path, size):
    rows = evaluate([interlaced_clip], EvalSettings(backends=["flow"], drop=DropSpec("every", 2), size=size))
    assert {r["status"] for r in rows} == {"done"}, rows
    gaps = [(r["start_frame"], r["end_frame"]) for r in rows]
    assert len(gaps) == 11
    of_eval = float(np.mean([r["psnr"] for r in rows]))
    assert of_eval == pytest.approx(run_psnr(interlaced_clip, gaps, size, tmp_path), abs=0.1)
    assert {r["fields"] for r in rows} == {"tt"}  # rows say their frames were made per field, as run's notes do
    assert {(r["width"], r["height"]) for r in rows} == {size or (W, H)}


def test_a_progressive_clip_is_not_made_per_field(tmp_path):
    path = tmp_path / "progressive.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25"]
        + ["-frames:v", "5", "-c:v", "ffv1", str(path)],
        check=True,
    )
    rows = evaluate([path], EvalSettings(backends=["blend"], drop=DropSpec("every", 2)))
    assert {r["fields"] for r in rows} == {None}


def test_a_size_rule_is_checked_on_the_fields_a_backend_is_given(interlaced_clip, monkeypatch):
    from semfi_batch.backends.base import Constraints
    from semfi_batch.backends.blend import BlendBackend
    from semfi_batch.evaluate import EvalError

    # 192x144 is a multiple of 16, its 192x72 fields are not: the backend would be given them whole.
    monkeypatch.setattr(BlendBackend, "constraints", Constraints(size_multiple=16))
    with pytest.raises(EvalError, match=r"made per field \(192x72 fields\): pass --size, e.g. 192x128"):
        evaluate([interlaced_clip], EvalSettings(backends=["blend"], drop=DropSpec("every", 2)))
