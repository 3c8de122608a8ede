"""Levels of generated frames in a splice: decode -> RGB -> encode gives untouched levels back, whatever the
source's range and pixel format (found by a tester: each came back wrong with exit 0)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.media_fixtures import spliced_replace

W, H = 64, 48


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _gray_frames(path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt",
         "gray", "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W).astype(int)


@pytest.mark.parametrize("color_range", ["tv", "unknown"])
def test_limited_range_gray_keeps_its_levels_in_generated_frames(tmp_path, color_range):
    """8-bit gray, limited range (tagged so, or untagged, which is read and written as limited): ffmpeg turned
    it into RGB without expanding its range but wrote the generated frames back compressed, so they came out
    as 0.85 x source + 17 (black 16 -> 30, white 235 -> 218) while every other frame was exact."""
    clip = tmp_path / "gray.mkv"
    # A still of a ramp over the whole limited range, coded losslessly: what changes is the splice's doing.
    ramp = f"gradients=s={W}x{H}:c0=black:c1=white:x0=0:y0=0:x1={W - 1}:y1=0:r=25:d=1,trim=end_frame=1,loop=14:1"
    levels = f"format=gray,lut=c0=clip(val\\,16\\,235),setparams=range={color_range}"
    _ffmpeg("-f", "lavfi", "-i", ramp, "-vf", levels, "-color_range", color_range, "-c:v", "ffv1", clip)
    out = spliced_replace(tmp_path, clip, ".mkv")
    source, output = _gray_frames(clip), _gray_frames(out)
    assert len(output) == len(source) == 15
    assert source[0].min() == 16 and source[0].max() == 235
    for j in (6, 7, 8):  # the generated frames: a blend of two identical keys
        worst = int(np.abs(output[j] - source[j]).max())
        assert worst <= 1, f"generated frame {j}: levels {output[j].min()}..{output[j].max()}, up to {worst} off"


def _rgb_frames(path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt",
         "rgb24", "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3).astype(int)


def test_palette_source_gets_generated_frames_with_their_own_palette(tmp_path):
    """PNG pal8 in MOV (packet copy): generated frames were converted to ffmpeg's one fixed palette, 21 dB and a
    third of the colours, exit 0 (the check of generated frames, at an eighth of the size, let it through)."""
    clip = tmp_path / "palette.mov"
    still = f"testsrc2=s={W}x{H}:r=25:d=1,trim=end_frame=1,loop=14:1"
    paletted = "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=none"
    _ffmpeg("-f", "lavfi", "-i", still, "-filter_complex", paletted, "-c:v", "png", "-pix_fmt", "pal8", clip)
    out = spliced_replace(tmp_path, clip, ".mov")
    source, output = _rgb_frames(clip), _rgb_frames(out)
    assert len(output) == len(source) == 15
    colours = len(np.unique(source[0].reshape(-1, 3), axis=0))
    for j in (6, 7, 8):  # the generated frames: a blend of two identical keys, so the still itself
        worst = int(np.abs(output[j] - source[j]).max())
        kept = len(np.unique(output[j].reshape(-1, 3), axis=0))
        assert worst <= 2, f"generated frame {j}: up to {worst} levels off, {kept} of {colours} colours"
