"""Levels of deep (10- and 12-bit) YUV keys and generated frames: black, white and grey of a 10-bit source are 0,
65535 and half of it in the 16-bit RGB keys a run reads, opaque alpha is 65535, and 16-bit frames go back to the
source's codes (found last session: ffmpeg 5.1's swscale read 10-bit white Y 940 as 65283, widened alpha 1023 to
65472, so opaque keys were interpolated as partly transparent, and wrote 16-bit white back as Y 943)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from semfi_batch.media.frame_pipes import convert_images
from semfi_batch.media.frames import encode_png
from semfi_batch.media.premultiplied import has_partial_alpha
from semfi_batch.media.probe import probe_video
from semfi_batch.media.stream_facts import probe_stream_facts
from semfi_batch.media.video_frames import extract_frames

W, H = 48, 16


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _bands(depth: int, full: bool) -> tuple[list[int], int]:
    """(black, mid-grey, white luma codes, neutral colour code) of a `depth`-bit range."""
    top, scale = (1 << depth) - 1, 1 << (depth - 8)
    black, white = (0, top) if full else (16 * scale, 235 * scale)
    return [black, (black + white) // 2, white], 128 * scale


def _banded_clip(tmp_path, pix_fmt: str, depth: int, codec: list[str], suffix: str, full: bool = False, alpha=None):
    """Three frames of three bands (black, mid-grey, white: exact codes, written by geq at the format's depth,
    colour neutral; alpha `alpha` where given), coded by `codec`."""
    (black, grey, white), neutral = _bands(depth, full)
    lum = f"if(lt(X\\,{W // 3})\\,{black}\\,if(lt(X\\,{2 * W // 3})\\,{grey}\\,{white}))"
    planes = f"lum='{lum}'" + ("" if pix_fmt.startswith("gray") else f":cb={neutral}:cr={neutral}")
    planes += f":a={alpha}" if alpha is not None else ""
    clip = tmp_path / f"bands{suffix}"
    rng = "pc" if full else "tv"
    graph = f"color=black:s={W}x{H}:r=25:d=0.12,format={pix_fmt},geq={planes},setparams=range={rng}"
    _ffmpeg("-f", "lavfi", "-i", graph, "-color_range", rng, *codec, clip)
    return clip


def _key(clip) -> np.ndarray:
    """Frame 0 as `semfi-batch run` reads a key (run/job.py: extract_frames of the probed source)."""
    return extract_frames(probe_video(clip), [0])[0]


@pytest.mark.parametrize(
    ("pix_fmt", "depth", "codec", "suffix"),
    [
        ("yuv420p10le", 10, ["-c:v", "ffv1"], ".mkv"),
        ("yuv420p12le", 12, ["-c:v", "ffv1"], ".mkv"),
        ("yuv422p10le", 10, ["-c:v", "prores_ks", "-profile:v", "3"], ".mov"),
        ("yuv420p10le", 10, ["-c:v", "libx264", "-qp", "0"], ".mp4"),
        ("gray10le", 10, ["-c:v", "ffv1"], ".mkv"),  # before: read as full range, white 60160
    ],
)
def test_limited_range_deep_keys_read_black_grey_and_white_exactly(tmp_path, pix_fmt, depth, codec, suffix):
    """Y 64 / 502 / 940 (12-bit 256 / 2008 / 3760), colour 512: keys 0 / 32768 / 65535, to a code. Before, 0 /
    32641 / 65283 (swscale's widening, 255 codes low at white)."""
    key = _key(_banded_clip(tmp_path, pix_fmt, depth, codec, suffix))
    assert key.dtype == np.uint16 and key.shape == (H, W, 3)
    for band, expected in zip(range(3), (0, 32768, 65535)):
        values = key[:, band * W // 3 : (band + 1) * W // 3]
        assert np.abs(values.astype(int) - expected).max() <= 1, f"band {band}: {np.unique(values)} for {expected}"


def test_full_range_10_bit_keys_read_black_grey_and_white_exactly(tmp_path):
    """Tagged pc: Y 0 / 511 / 1023 are 0 / 32735 / 65535 (before: white 65472, a shift; and once the colour was
    repeated as limited range, 60410)."""
    key = _key(_banded_clip(tmp_path, "yuv420p10le", 10, ["-c:v", "ffv1"], ".mkv", full=True))
    for band, expected in zip(range(3), (0, round(511 * 65535 / 1023), 65535)):
        values = key[:, band * W // 3 : (band + 1) * W // 3]
        assert np.abs(values.astype(int) - expected).max() <= 1, f"band {band}: {np.unique(values)} for {expected}"


def test_deep_keys_of_colour_match_the_matrix_to_a_code(tmp_path):
    """Random in-gamut 10-bit 4:4:4 colour, BT.601 limited range (untagged): every key value within one code of
    the exact conversion (before: up to 255 codes low, all of the range about 128 low)."""
    rng = np.random.default_rng(3)
    y = rng.integers(64, 941, (H, W))
    u, v = rng.integers(300, 725, (2, H, W))
    clip = tmp_path / "colour.mkv"
    planes = np.stack([y, u, v]).astype("<u2").tobytes()
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv444p10le", "-s", f"{W}x{H}",
         "-r", "25", "-i", "-", "-c:v", "ffv1", str(clip)], input=planes, check=True,
    )  # fmt: skip
    luma, cb, cr = (y - 64) / 876, (u - 512) / 896, (v - 512) / 896
    kr, kb = 0.299, 0.114
    red, blue = luma + 2 * (1 - kr) * cr, luma + 2 * (1 - kb) * cb
    green = (luma - kr * red - kb * blue) / (1 - kr - kb)
    expected = np.clip(np.stack([red, green, blue], -1), 0, 1) * 65535
    worst = np.abs(_key(clip).astype(float) - expected).max()
    assert worst <= 1.0, f"keys are up to {worst:.1f} codes off the exact conversion"


@pytest.mark.parametrize(
    ("pix_fmt", "depth", "codec", "suffix"),
    [
        ("yuva444p10le", 10, ["-c:v", "ffv1"], ".mkv"),
        ("yuva444p10le", 12, ["-c:v", "prores_ks", "-profile:v", "4"], ".mov"),  # decoded as yuva444p12le
    ],
)
def test_opaque_deep_alpha_reads_opaque(tmp_path, pix_fmt, depth, codec, suffix):
    """Full alpha (1023) is 65535 in the keys, so opaque keys are not interpolated premultiplied (before: 65472,
    ProRes 4444 65520: every pixel partly transparent)."""
    key = _key(_banded_clip(tmp_path, pix_fmt, 10, codec, suffix, alpha=1023))
    assert probe_video(tmp_path / f"bands{suffix}").bit_depth == depth
    assert key.shape == (H, W, 4) and np.unique(key[..., 3]).tolist() == [65535]
    assert np.abs(key[..., 2].astype(int)[:, -1] - 65535).max() <= 1  # the white band
    assert not has_partial_alpha(key, key)


def test_half_deep_alpha_reads_half(tmp_path):
    """10-bit alpha 512 is 512 * 65535 / 1023 (32800), not 512 << 6 (32768)."""
    key = _key(_banded_clip(tmp_path, "yuva444p10le", 10, ["-c:v", "ffv1"], ".mkv", alpha=512))
    assert np.unique(key[..., 3]).tolist() == [32800]


@pytest.mark.parametrize(
    ("pix_fmt", "depth", "codec", "suffix", "full", "alpha"),
    [
        ("yuv420p10le", 10, ["-c:v", "ffv1"], ".mkv", False, None),
        ("yuv420p10le", 10, ["-c:v", "ffv1"], ".mkv", True, None),
        ("yuv420p12le", 12, ["-c:v", "ffv1"], ".mkv", False, None),
        ("yuv422p10le", 10, ["-c:v", "prores_ks", "-profile:v", "3"], ".mov", False, None),
        ("yuva444p10le", 12, ["-c:v", "prores_ks", "-profile:v", "4"], ".mov", False, 1023),
        ("gray10le", 10, ["-c:v", "ffv1"], ".mkv", False, None),
    ],
)
def test_generated_16_bit_frames_go_back_to_the_sources_codes(tmp_path, pix_fmt, depth, codec, suffix, full, alpha):
    """Generated black, mid-grey and white (0, 32768, 65535, opaque) become the source's black, grey and white
    codes, colour neutral, alpha full (before: limited-range white 65535 -> Y 943, grey -> 504)."""
    clip = _banded_clip(tmp_path, pix_fmt, 10, codec, suffix, full=full, alpha=alpha)
    facts = probe_stream_facts(clip)
    (black, _, white), neutral = _bands(depth, full)
    channels = 4 if alpha is not None else 3
    images = []
    for level in (0, 32768, 65535):
        image = tmp_path / f"{level}.png"
        frame = np.full((facts.height, facts.width, channels), level, np.uint16)
        frame[..., 3:] = 65535
        image.write_bytes(encode_png(frame))
        images.append(image)
    size = W * H
    for level, raw in zip((0, 32768, 65535), convert_images(images, facts, tmp_path)):
        planes = np.frombuffer(raw, "<u2").astype(int)
        luma_code = black + level * (white - black) / 65535
        assert np.abs(planes[:size] - luma_code).max() <= 0.5, f"{level}: Y {np.unique(planes[:size])}"
        colour = planes[size : len(planes) - (size if alpha is not None else 0)]
        assert set(np.unique(colour).tolist()) <= {neutral}, f"{level}: colour {np.unique(colour)}"
        if alpha is not None:
            assert np.unique(planes[-size:]).tolist() == [(1 << depth) - 1]
