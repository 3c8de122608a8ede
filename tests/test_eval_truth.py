"""Eval's figures are about the frames as `run` makes them: colour only (alpha left out) at the frames' own
depth, frames asked for at the held-out frames' own times (VFR), upright, and every clip named apart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from semfi_batch.evaluate import DropSpec, EvalSettings, evaluate, read_eval, summarize, write_eval
from semfi_batch.media.frames import as_rgb8, write_png
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frame
from semfi_batch.metrics import PSNR_CAP_DB, psnr, ssim, warp_error
from semfi_batch.report.eval_page import eval_report_html

W, H = 64, 48


def moving_bar_frames(count: int = 5) -> list[np.ndarray]:
    """A red bar moving 6 px a frame over a blocky background: RGB uint8, 64x48."""
    rng = np.random.default_rng(2)
    background = np.repeat(np.repeat(rng.integers(30, 220, (H // 8, W // 8, 3)), 8, 0), 8, 1).astype(np.uint8)
    frames = []
    for i in range(count):
        frame = background.copy()
        frame[12:30, 6 + 6 * i : 18 + 6 * i] = (240, 30, 30)
        frames.append(frame)
    return frames


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        write_png(folder / f"{i:03d}.png", frame)
    return folder


def figures(rows: list[dict]) -> dict[tuple[str, int], tuple]:
    return {
        (r["backend"], r["start_frame"]): (r["status"], r["error"], r["psnr"], r["ssim"], r["warp_error"]) for r in rows
    }


def test_metrics_leave_alpha_out_and_take_the_depths_range():
    rgb = moving_bar_frames(2)
    made = np.clip(rgb[1].astype(int) + 9, 0, 255).astype(np.uint8)
    opaque = np.full((H, W, 1), 255, np.uint8)
    with_alpha = [np.concatenate([f, opaque], axis=2) for f in (rgb[1], made)]
    assert psnr(*with_alpha) == psnr(rgb[1], made) and ssim(*with_alpha) == ssim(rgb[1], made)
    deep = [f.astype(np.uint16) * 257 for f in (rgb[1], made)]
    assert psnr(*deep) == pytest.approx(psnr(rgb[1], made), abs=1e-6)
    assert ssim(*deep) == pytest.approx(ssim(rgb[1], made), abs=1e-4)
    assert warp_error([f.astype(np.uint16) * 257 for f in rgb]) == pytest.approx(warp_error(rgb), abs=1e-3)


def test_eval_of_an_rgba_folder_gives_the_figures_of_its_colour(tmp_path):
    frames = moving_bar_frames()
    opaque = np.full((H, W, 1), 255, np.uint8)
    rgb = write_folder(tmp_path / "rgb", frames)
    rgba = write_folder(tmp_path / "rgba", [np.concatenate([f, opaque], axis=2) for f in frames])
    settings = EvalSettings(backends=["flow", "blend", "minterpolate"], drop=DropSpec("every", 2))
    of_rgb, of_rgba = figures(evaluate([rgb], settings)), figures(evaluate([rgba], settings))
    assert {v[0] for v in of_rgba.values()} == {"done"}, of_rgba  # minterpolate given RGB keys, as in `run`
    for key, (_, _, p, s, warp) in of_rgb.items():
        assert of_rgba[key][2:] == pytest.approx((p, s, warp), abs=1e-6), key


def test_eval_of_a_16_bit_folder_finds_its_shots_and_measures_at_16_bits(tmp_path):
    frames = moving_bar_frames()
    rgb = write_folder(tmp_path / "rgb", frames)
    deep = write_folder(tmp_path / "rgb16", [f.astype(np.uint16) * 257 for f in frames])
    settings = EvalSettings(backends=["blend"], drop=DropSpec("every", 2))
    of_rgb, of_deep = figures(evaluate([rgb], settings)), figures(evaluate([deep], settings))
    assert of_deep.keys() == of_rgb.keys()
    for key, (_, _, p, s, warp) in of_rgb.items():
        assert of_deep[key][0] == "done", of_deep[key]
        # blend's 16-bit middle frame keeps the half level 8 bits round away: the same figures within that
        assert of_deep[key][2:] == pytest.approx((p, s, warp), abs=0.2), key


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def test_eval_of_a_rotated_video_sees_its_frames_upright(tmp_path):
    stored = tmp_path / "stored.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "5", "-c:v", "ffv1", str(stored))
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(stored), "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(tmp_path / "x.mp4"))
    ffmpeg("-i", str(tmp_path / "x.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    info = probe_video(rotated)
    assert info.display_size == (48, 64)
    rows = evaluate([rotated], EvalSettings(backends=["blend"], drop=DropSpec("every", 2)))
    assert {(r["width"], r["height"]) for r in rows} == {(48, 64)}
    (shown,) = [r for r in rows if r.get("thumb_start") is not None]
    thumb = cv2.imdecode(np.frombuffer(shown["thumb_start"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    upright = as_rgb8(extract_frame(info, shown["start_frame"]))  # as `run` reads it
    assert thumb.shape == upright.shape
    assert np.abs(thumb.astype(int) - upright).mean() < 10  # JPEG's loss on a busy 48x64 picture, not a turn
    sized = evaluate([rotated], EvalSettings(backends=["blend"], drop=DropSpec("every", 2), size=(24, 32)))
    assert {(r["width"], r["height"]) for r in sized} == {(24, 32)}


def test_eval_of_a_vfr_video_asks_for_frames_at_their_own_times(tmp_path):
    # Frames at 0, 0.04, 0.2, 0.24, 0.4, ... s, grey level 60 + 100 t: each held-out frame lies a fifth of
    # the way from its start key to its end key, where a cross-fade at that time rebuilds it exactly.
    clip = tmp_path / "vfr.mkv"
    t = "(floor(N/2)*0.2+mod(N,2)*0.04)"
    graph = f"setpts='{t}/TB',format=gbrp,geq=r='60+100*{t}':g='60+100*{t}':b='60+100*{t}'"
    ffmpeg("-f", "lavfi", "-i", "nullsrc=s=32x32:r=25", "-vf", graph, "-frames:v", "9", "-fps_mode", "passthrough",
           "-c:v", "ffv1", str(clip))  # fmt: skip
    rows = evaluate([clip], EvalSettings(backends=["blend"], drop=DropSpec("every", 2)))
    assert [r["start_frame"] for r in rows] == [0, 2, 4, 6]
    assert {r["psnr"] for r in rows} == {PSNR_CAP_DB}  # at even times (half way) 32.6 dB


def test_clips_of_one_name_in_two_folders_are_told_apart(tmp_path):
    for folder, source in (("a", "testsrc2"), ("b", "mandelbrot")):
        (tmp_path / folder).mkdir()
        ffmpeg("-f", "lavfi", "-i", f"{source}=size=48x32:rate=25", "-frames:v", "5", "-c:v", "ffv1",
               str(tmp_path / folder / "clip.mkv"))  # fmt: skip
    clips = [tmp_path / "a" / "clip.mkv", tmp_path / "b" / "clip.mkv"]
    rows = evaluate(clips, EvalSettings(backends=["blend"], drop=DropSpec("every", 2)))
    assert {r["clip_name"] for r in rows} == {"a/clip", "b/clip"}
    assert len({r["pair_id"] for r in rows}) == len(rows) == 4
    out = write_eval(rows, tmp_path / "ab.parquet")
    frame, _ = read_eval(out)
    (summary,) = summarize(frame)
    per_clip = frame.groupby("clip_name")["psnr"].mean()
    assert summary.worst_clip == per_clip.idxmin() and summary.worst_psnr == per_clip.min()
    page = eval_report_html(out)
    assert "a/clip, b/clip" in page and "<td>4</td>" in page  # the clips and the gaps, counted apart
    assert page.count("class='sheet'") == 2  # one gap pictured per clip
