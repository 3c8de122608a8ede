"""A hard cut a few frames after a step the detector reports and detect drops as a fade/dissolve step: the
minimum scene length spaces the cuts taken, so the dropped step does not hide the cut (PySceneDetect, given
its 0.6 s minimum, suppresses every cut within 15 frames of the step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.detect import DetectOptions, detect_video
from semfi_batch.manifest import load_manifest
from semfi_batch.media.video_frames import extract_frame
from tests.media_fixtures import LOOKS, make_clip, shot

# step_then_cut.mp4, 80 frames at 25 fps: shot A, whose hue turns by 120 degrees at STEP, then a hard cut at CUT
# (10 frames later) to shot B.
STEP, CUT, FRAMES = 40, 50, 80


def step_then_cut_graph() -> str:
    # A slowly zooming Mandelbrot, desaturated so that the turned colours stay in gamut: the luma picture is the
    # same across the step (a fade/dissolve step to detect), while PySceneDetect's HSV score jumps there.
    shot_a = (
        f"mandelbrot=s=160x120:r=25,trim=end_frame={CUT},setpts=PTS-STARTPTS,format=yuv444p,hue=s=0.3,"
        f"hue=h='if(lt(n,{STEP}),0,120)',format=yuv420p"
    )
    return f"{shot_a}[a];{shot(FRAMES - CUT, look=LOOKS[1])}[b];[a][b]concat=n=2:v=1:a=0[out]"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("step_then_cut") / "step_then_cut.mp4", step_then_cut_graph())


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_a_cut_right_after_a_dropped_step_gets_its_row(clip, tmp_path, detector):
    out = tmp_path / "m.parquet"
    assert main(["detect", str(clip), "-o", str(out), "--mode", "cuts", "--detector", detector]) == 0
    rows = [(p.start_frame, p.end_frame, p.mode, p.gap_frames) for p in load_manifest(out).pairs]
    assert rows == [(CUT - 1, CUT, "insert", 11)]
    det = detect_video(clip, DetectOptions(mode="cuts", detector=detector))
    # The detector did report the step, and it was dropped as a fade/dissolve step.
    assert [c.index for c in det.gradual] == [STEP]
    # The keyframes are the frames either side of the cut: the cut is between them, not inside a shot.
    before, last, first = (extract_frame(det.info, i).astype(float) for i in (CUT - 2, CUT - 1, CUT))
    assert np.abs(last - first).mean() > 5 * np.abs(before - last).mean()


def test_the_minimum_scene_length_still_spaces_the_cuts_taken(clip):
    # Kept on request, the step is a cut and the real cut 10 frames later is closer than 0.6 s (15 frames):
    # PySceneDetect's own cut list.
    assert [c.index for c in detect_video(clip, DetectOptions(keep_gradual=True)).cuts] == [STEP]
    five = DetectOptions(keep_gradual=True, min_scene_len=5)
    assert [c.index for c in detect_video(clip, five).cuts] == [STEP, CUT]


def test_stride_and_damage_rows_split_at_the_cut(clip):
    stride = detect_video(clip, DetectOptions(mode="stride", every=4))
    assert [c.index for c in stride.cuts] == [CUT]
    assert all(r.end_frame < CUT or r.start_frame >= CUT for r in stride.rows)
    damage = detect_video(clip, DetectOptions(mode="damage"))
    assert [c.index for c in damage.cuts] == [CUT] and damage.rows == []
