"""`detect --mode damage` finds frames repeated in a regular pattern (every 2nd, 3rd or 5th frame, as pulldown or
dropped-frame capture leaves them) inside motion, each judged against the moving steps around it, not against
the pattern's other repeats; a still shot and a slow pan give no rows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.detect import DetectOptions, detect_video

FRAMES = 50


def pattern_clip(path: Path, *, speed: float, repeat_every: int = 0) -> Path:
    """A diagonal sine pattern drifting `speed` pixels a frame; with `repeat_every` K, every K-th frame
    (1-based: frames K-1, 2K-1, ...) repeats its predecessor exactly (lossless)."""
    position = f"(N-floor((N+1)/{repeat_every}))" if repeat_every else "N"
    lum = f"128+80*sin(2*PI*(X+Y/2+{speed}*{position})/40)"
    graph = f"nullsrc=s=160x120:r=25:d=3,geq=lum='{lum}':cb=128:cr=128,trim=end_frame={FRAMES},format=yuv420p[out]"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_complex", graph, "-map", "[out]"]
    subprocess.run([*args, "-c:v", "libx264", "-qp", "0", "-g", "30", str(path)], check=True)
    return path


def frozen_frames(clip: Path) -> list[int]:
    rows = detect_video(clip, DetectOptions(mode="damage")).rows
    assert all((r.reason, r.mode, r.end_frame - r.start_frame) == ("freeze", "replace", 2) for r in rows)
    return sorted(r.start_frame + 1 for r in rows)


@pytest.mark.parametrize("every", [2, 3, 5])
def test_every_repeat_of_a_regular_pattern_is_found(tmp_path, every):
    clip = pattern_clip(tmp_path / f"every{every}.mp4", speed=2.0, repeat_every=every)
    # Every repeat with a moving step before it and a step out of it (frame 1 of "every 2" repeats frame 0:
    # nothing before it to judge by; the last frame has no step out).
    expected = [k for k in range(every - 1, FRAMES - 1, every) if k >= 2]
    assert frozen_frames(clip) == expected


def test_repeats_at_every_2nd_frame_are_said_to_look_like_animation_on_twos(tmp_path):
    # Found like any regular repeat, but holds on twos are meant in animation: the user is told, with where.
    twos = detect_video(pattern_clip(tmp_path / "twos.mp4", speed=2.0, repeat_every=2), DetectOptions(mode="damage"))
    assert any("repeat every 2nd frame" in note and "on twos" in note for note in twos.notes), twos.notes
    threes = detect_video(
        pattern_clip(tmp_path / "threes.mp4", speed=2.0, repeat_every=3), DetectOptions(mode="damage")
    )
    assert not any("on twos" in note for note in threes.notes)


def test_a_still_shot_and_a_slow_pan_give_no_rows(tmp_path):
    assert frozen_frames(pattern_clip(tmp_path / "still.mp4", speed=0.0)) == []
    assert frozen_frames(pattern_clip(tmp_path / "slow.mp4", speed=0.08)) == []


def test_every_repeat_of_the_readme_example_clip_is_found(real_clip):
    # chaplin repeats a frame every third frame (in phases that shift now and then); each such frame, its change
    # from its predecessor under 0.5 where both steps beside it move over 2, must be a freeze row.
    clip = real_clip("chaplin_640x360_25fps_audio.mp4")
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-vf", "scale=256:144", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    gray = np.frombuffer(raw, np.uint8).reshape(-1, 144, 256).astype(np.float32)
    step = np.abs(np.diff(gray, axis=0)).mean(axis=(1, 2))  # step[i]: frame i + 1 against frame i
    repeats = [i + 1 for i in range(1, len(step) - 1) if step[i] < 0.5 and min(step[i - 1], step[i + 1]) > 2]
    assert len(repeats) == 60
    found = frozen_frames(clip)
    assert set(repeats) <= set(found)
    # The rest are repeats too, where the motion is slower (steps beside them under 2, still 4x theirs).
    assert all(step[k - 1] < 0.5 for k in found)
