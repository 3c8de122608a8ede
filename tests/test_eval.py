"""Held-out-frame evaluation and the minterpolate reference backend: exact frame positions, shots kept
whole, scikit-image's numbers, flow beating a cross-fade on known motion, real clips and frame folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends.minterpolate import minterpolate_filter
from semfi_batch.cli import main
from semfi_batch.errors import MediaError
from semfi_batch.evaluate import (
    DropSpec,
    EvalError,
    EvalSettings,
    Gap,
    detect_cuts,
    evaluate,
    open_clip,
    plan_gaps,
    read_eval,
    summarize,
)
from semfi_batch.media.frames import write_png
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frame
from tests.conftest import FOOTAGE

CUT = 24  # first frame of the second shot of `moving_clip`
# Shot 1: a colour pattern moving right by 3 px per frame; shot 2: an unrelated pattern.
_SHOT1 = ("128+90*sin((X-3*N)/6)*cos(Y/8)", "128+90*cos((X-3*N)/9)", "128+90*sin((Y+X-3*N)/11)")
_SHOT2 = ("40+30*sin(Y/5+N)", "200-50*cos((X+Y)/7)", "90")


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    """40 lossless RGB frames (160x120, 25 fps) with known motion and a hard cut at frame CUT."""
    path = tmp_path_factory.mktemp("eval") / "moving.mkv"
    expr = {c: f"if(lt(N,{CUT}),{a},{b})" for c, a, b in zip("rgb", _SHOT1, _SHOT2, strict=True)}
    geq = f"geq=r='{expr['r']}':g='{expr['g']}':b='{expr['b']}'"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "nullsrc=s=160x120:r=25,format=gbrp"]
        + ["-vf", geq, "-frames:v", "40", "-c:v", "ffv1", str(path)],
        check=True,
    )
    return path


def footage(*parts: str) -> Path:
    path = FOOTAGE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real footage not found: {path}")
    return path


# ------------------------------------------------------------------------------------------- planning


def test_drop_spec_parsing():
    assert DropSpec.parse("every:2") == DropSpec("every", 2) and DropSpec.parse("every:4").gap_frames == 3
    assert DropSpec.parse("gaps:3").gap_frames == 3 and str(DropSpec.parse(" gaps:5 ")) == "gaps:5"
    for bad in ("every:1", "gaps:0", "every", "half", "gaps:-1", ""):
        with pytest.raises(EvalError, match="--drop"):
            DropSpec.parse(bad)


def test_every_k_keeps_every_kth_frame_within_shots():
    every2 = plan_gaps(10, [], DropSpec("every", 2))
    assert [(g.start, g.end) for g in every2] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    cut = plan_gaps(10, [5], DropSpec("every", 2))
    assert [(g.start, g.end, g.shot) for g in cut] == [(0, 2, 0), (2, 4, 0), (5, 7, 1), (7, 9, 1)]
    assert [(g.start, g.end) for g in plan_gaps(13, [], DropSpec("every", 4))] == [(0, 4), (4, 8), (8, 12)]


def test_gaps_never_span_a_cut_and_are_spread_out():
    rng = np.random.default_rng(0)
    for _ in range(200):
        count = int(rng.integers(5, 300))
        cuts = sorted(set(rng.integers(1, count, size=int(rng.integers(0, 6))).tolist()))
        drop = DropSpec("gaps", int(rng.integers(1, 6)))
        gaps = plan_gaps(count, cuts, drop, max_gaps=int(rng.integers(0, 10)))
        for g in gaps:
            assert g.gap_frames == drop.n and g.start >= 0 and g.end < count
            assert not any(g.start < c <= g.end for c in cuts), (count, cuts, g)
        assert all(a.end <= b.start for a, b in zip(gaps, gaps[1:], strict=False))  # disjoint, in order
    spread = plan_gaps(1000, [], DropSpec("gaps", 3), max_gaps=4)
    assert len(spread) == 4 and spread[0].start == 0 and spread[-1].end >= 990
    assert min(b.start - a.start for a, b in zip(spread, spread[1:], strict=False)) > 300
    gaps3 = DropSpec("gaps", 3)
    assert plan_gaps(5, [], gaps3) == [Gap(0, 4, 0)] and plan_gaps(4, [], gaps3) == []
    assert plan_gaps(10, [2], gaps3) == [Gap(2, 6, 1)]  # the first shot (frames 0-1) is too short
    assert plan_gaps(8, [4], gaps3) == []  # no shot is long enough


def test_cut_is_found_exactly(moving_clip):
    cuts, count = detect_cuts(open_clip(moving_clip))
    assert (cuts, count) == ([CUT], 40)


# -------------------------------------------------------------------------------------- minterpolate


def scrolling(n: int, step: int, seed: int, size: tuple[int, int] = (128, 96)) -> list[np.ndarray]:
    """n frames of a smooth random texture scrolling right by `step` px per frame."""
    w, h = size
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 6 + 2, 420 // 6 + 2, 3), dtype=np.uint8)
    base = cv2.resize(small, (432, h + 12), interpolation=cv2.INTER_CUBIC)[:h, :420]
    return [np.ascontiguousarray(base[:, 200 - step * i : 200 - step * i + w]) for i in range(n)]


def ffmpeg_minterpolate(frames: list[np.ndarray], gap: int) -> np.ndarray:
    """minterpolate run the usual way, over a whole 1-fps stream of keyframes, with the backend's filter."""
    h, w = frames[0].shape[:2]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "1"]
    cmd += ["-i", "-", "-vf", minterpolate_filter(gap), "-fps_mode", "passthrough", "-f", "rawvideo"]
    cmd += ["-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)


@pytest.mark.parametrize("gap", [1, 3, 5])
def test_minterpolate_gives_the_gap_frames_ffmpeg_gives_in_time_order(gap):
    frames = scrolling(2 * gap + 3, 2, seed=gap)
    keys = frames[:: gap + 1]  # three keys
    backend = backend_class("minterpolate")(BackendOptions())
    out = list(backend.interpolate(InterpolationRequest("s", keys[0], keys[1], gap, 0)))
    assert len(out) == gap and all(f.shape == keys[0].shape and f.dtype == np.uint8 for f in out)
    # Over the whole stream ffmpeg puts key 0 at output 0 and the in-betweens at 1..gap: the same frames.
    reference = ffmpeg_minterpolate(keys, gap)
    assert np.array_equal(np.stack(out), reference[1 : gap + 1])
    # And each in-between is nearest to the original frame of its own time (order and count are right).
    truth = frames[: gap + 2]
    for i, frame in enumerate(out, start=1):
        scores = [peak_signal_noise_ratio(t[:, 16:-16], frame[:, 16:-16]) for t in truth]
        assert int(np.argmax(scores)) == i and scores[i] > 20, (i, scores)


def test_minterpolate_refuses_tiny_frames_and_keys_on_the_ffmpeg_build():
    cls = backend_class("minterpolate")
    assert cls.availability(BackendOptions()) == (True, "")
    params = cls.key_params(BackendOptions())
    assert params["mi_mode"] == "mci" and params["scd"] == "none" and params["ffmpeg"].startswith("ffmpeg version")
    tiny = np.zeros((16, 24, 3), np.uint8)
    with pytest.raises(MediaError, match="at least 32x32; t is 24x16"):
        list(cls(BackendOptions()).interpolate(InterpolationRequest("t", tiny, tiny, 2, 0)))


# ------------------------------------------------------------------------------------------ evaluation


def test_eval_on_known_motion_flow_beats_blend_with_scikit_image_numbers(moving_clip, tmp_path, capsys):
    out = tmp_path / "eval.parquet"
    code = main(
        ["eval", str(moving_clip), "--backends", "flow,blend,minterpolate", "--drop", "every:2", "-o", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr()
    rows, meta = read_eval(out)
    assert meta["drop"] == "every:2" and meta["backend_params"]["minterpolate"]["scd"] == "none"
    # Shot 1 has 0..23 (windows up to 20-22), shot 2 has 24..39 (24-26 .. 36-38): none spans the cut.
    windows = sorted(set(zip(rows["start_frame"], rows["end_frame"], strict=True)))
    assert windows == [(a, a + 2) for a in range(0, 21, 2)] + [(a, a + 2) for a in range(24, 37, 2)]
    assert len(rows) == 3 * len(windows) and (rows["status"] == "done").all()

    flow, blend = rows[rows["backend"] == "flow"], rows[rows["backend"] == "blend"]
    assert flow["psnr"].mean() > blend["psnr"].mean() + 3.0
    assert flow["ssim"].mean() > blend["ssim"].mean()
    assert flow["warp_error"].mean() < blend["warp_error"].mean()
    assert (flow["s_per_frame"] > 0).all()
    best = [s.backend for s in summarize(rows) if s.best]
    assert best == ["flow"] and "* flow" in printed.out and "results:" in printed.out

    # The same figures from frames decoded independently, a fresh backend and scikit-image directly.
    info = probe_video(moving_clip)
    backend = backend_class("flow")(BackendOptions())
    for row in flow.iloc[[0, 5, 12]].to_dict("records"):
        start, truth, end = (extract_frame(info, row["start_frame"] + k) for k in (0, 1, 2))
        (made,) = backend.interpolate(InterpolationRequest(row["pair_id"], start, end, 1, 0))
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(truth, made, data_range=255), abs=1e-9)
        assert row["ssim"] == pytest.approx(
            structural_similarity(truth, made, channel_axis=-1, data_range=255), abs=1e-9
        )
    # One gap per clip carries the pictures the report shows.
    pictured = rows[rows["thumb_truth"].notna()]
    assert pictured["pair_id"].nunique() == 1 and set(pictured["backend"]) == {"flow", "blend", "minterpolate"}


def test_eval_records_a_backend_failure_per_gap_and_goes_on(moving_clip, tmp_path, capsys):
    """Every gap is tried and written; failed gaps make the exit status 1 (a script gating on it took an
    evaluation where every gap failed for a success), with the count and the first error."""
    out = tmp_path / "small.parquet"
    args = ["eval", str(moving_clip), "-b", "blend,minterpolate", "--drop", "gaps:2", "--size", "24x18"]
    assert main([*args, "--max-gaps", "3", "-o", str(out)]) == 1
    rows, _ = read_eval(out)
    assert len(rows) == 6 and set(rows["width"]) == {24}
    bad = rows[rows["backend"] == "minterpolate"]
    assert (bad["status"] == "failed").all() and bad["error"].str.contains("at least 32x32").all()
    assert (rows.loc[rows["backend"] == "blend", "status"] == "done").all()
    printed = capsys.readouterr()
    assert "3 failed" in printed.out
    assert "3 of 6 gaps failed (first: minterpolate on" in printed.err and "at least 32x32" in printed.err
    assert main(["eval", str(moving_clip), "-b", "blend", "--drop", "gaps:2", "--size", "24x18", "-o", str(out)]) == 0


def test_a_backend_with_failed_gaps_is_not_ranked_best():
    """Its means leave its failed gaps out (often the hardest): ranked with the others it could be starred
    best on the easy gaps alone."""
    rows = pd.DataFrame(
        [{"backend": "a", "clip_name": "c", "status": "done", "psnr": 40.0 + k, "ssim": 0.99, "warp_error": 1.0,
          "warp_error_truth": 1.0, "wall_s": 1.0, "gap_frames": 1} for k in range(2)]
        + [{"backend": "a", "clip_name": "c", "status": "failed", "psnr": np.nan, "ssim": np.nan, "warp_error": np.nan,
            "warp_error_truth": np.nan, "wall_s": np.nan, "gap_frames": 1}]
        + [{"backend": "b", "clip_name": "c", "status": "done", "psnr": 30.0, "ssim": 0.9, "warp_error": 1.0,
            "warp_error_truth": 1.0, "wall_s": 1.0, "gap_frames": 1} for _ in range(3)]
    )  # fmt: skip
    assert [(s.backend, s.best) for s in summarize(rows)] == [("a", False), ("b", True)]


def test_eval_on_a_real_clip_keeps_gaps_inside_shots(tmp_path):
    clip = footage("clips", "bbb_cuts_720p24_audio.mp4")
    settings = EvalSettings(
        backends=["flow", "blend", "minterpolate"], drop=DropSpec("gaps", 2), max_gaps=0, size=(160, 90), max_frames=60
    )
    rows = evaluate([clip], settings)
    cuts, count = detect_cuts(open_clip(clip, 60))
    assert count == 60 and {20, 55} <= set(cuts)  # the film's cuts within its first 60 frames
    assert rows and all(not any(r["start_frame"] < c <= r["end_frame"] for c in cuts) for r in rows)
    for r in rows:
        assert r["status"] == "done", r["error"]
        assert 15 < r["psnr"] < 60 and 0.3 < r["ssim"] <= 1.0 and r["warp_error"] >= 0 and r["wall_s"] > 0


def test_eval_on_a_folder_of_frames(tmp_path):
    folder = footage("frames", "sintel_demo")
    out = tmp_path / "sintel.parquet"
    assert main(["eval", str(folder), "-b", "flow,blend", "--size", "256x108", "-o", str(out)]) == 0
    rows = pq.read_table(out).to_pandas()
    assert len(rows) == 8 and set(rows["clip_kind"]) == {"frames"}  # 10 frames: gaps 0-2, 2-4, 4-6, 6-8
    assert sorted(set(rows["start_frame"])) == [0, 2, 4, 6]
    assert rows["psnr"].between(12, 60).all() and rows["ssim"].between(0.2, 1.0).all()


def test_folder_frames_must_share_one_size(tmp_path):
    rng = np.random.default_rng(1)
    for i, size in enumerate([(40, 32), (40, 32), (40, 30)]):
        write_png(tmp_path / f"f{i:02d}.png", rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    with pytest.raises(EvalError, match="f02.png is 40x30"):
        evaluate([tmp_path], EvalSettings(["blend"], DropSpec("every", 2)))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--drop", "every:1"], 2, "every:K needs K >= 2"),
        (["--backends", "flow,nope"], 2, "unknown backend 'nope'"),
        (["--size", "8x8"], 2, "WIDTHxHEIGHT"),
        (["--drop", "gaps:5", "--max-frames", "6"], 2, "no gap of 5 frame(s) fits inside a shot"),
    ],
)
def test_eval_bad_options_give_one_clear_error(moving_clip, tmp_path, capsys, args, code, message):
    assert main(["eval", str(moving_clip), *args, "-o", str(tmp_path / "e.parquet")]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "e.parquet").exists()


def test_eval_missing_clip_names_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    assert main(["eval", str(missing), "-o", str(tmp_path / "e.parquet")]) == 1
    err = capsys.readouterr().err
    assert "nope.mp4" in err and "Traceback" not in err
