"""Colour of generated frames in a splice, as a viewer sees them (found by trying sources in many colour set-ups;
each came back wrong with exit 0): the frames of a static shot keep its brightness (keys are read to RGB and
generated frames written back with the same accurate rounding), ProRes frames carry the source's colour tags
(prores_ks takes them from the frames, not the options), the chroma location is kept, and a rotated 4:2:2
source keeps its colour detail (frames are turned before their colour is subsampled)."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.splice import splice_run
from tests.media_fixtures import spliced_replace

W, H = 160, 120
# A still of flat, in-gamut colour patches: a blend of two identical frames must give it back.
PATCHES = (
    f"color=c=0x778899:s={W}x{H}:r=25:d=1.6,"
    "drawbox=x=0:y=0:w=80:h=60:c=0xc83a26:t=fill,drawbox=x=80:y=0:w=80:h=60:c=0x3aa04c:t=fill,"
    "drawbox=x=0:y=60:w=80:h=60:c=0x2c4fb0:t=fill,drawbox=x=100:y=80:w=40:h=30:c=0xe0d070:t=fill"
)


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _raw(path, pix_fmt: str, plane_bytes: int) -> np.ndarray:
    """Every frame's bytes as stored (no conversion, no rotation): one row per frame."""
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-noautorotate", "-i", str(path), "-map", "0:v:0", "-fps_mode",
         "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, plane_bytes)


def _frame_entries(path, entries: str) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_frames", "-show_entries", f"frame={entries}",
         "-of", "json", str(path)], capture_output=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["frames"]


def test_generated_frames_of_a_static_shot_keep_its_brightness(tmp_path):
    clip = tmp_path / "still.mkv"
    _ffmpeg("-f", "lavfi", "-i", PATCHES, "-pix_fmt", "yuv420p", "-c:v", "ffv1", clip)  # lossless: no encoder loss
    out = spliced_replace(tmp_path, clip, ".mkv")
    luma = W * H
    source = _raw(clip, "yuv420p", luma * 3 // 2).astype(int)
    output = _raw(out, "yuv420p", luma * 3 // 2).astype(int)
    assert len(output) == len(source) == 40
    for j in (6, 7, 8):  # the generated frames: a blend of two identical keys
        shift = float(np.mean(output[j, :luma] - source[j, :luma]))
        # ffmpeg's default RGB conversion made them a luma code darker (-1.0 here), a flicker on a static shot
        assert abs(shift) < 0.2, f"generated frame {j} is {shift:+.2f} luma codes off the shot"
        assert np.mean(output[j, :luma] == source[j, :luma]) > 0.9
        # and the colour comes back too (bicubic both ways blurred it at the patches' edges)
        assert np.mean(output[j, luma:] == source[j, luma:]) > 0.95


def test_prores_generated_frames_carry_the_sources_colour_tags(tmp_path):
    clip = tmp_path / "tagged.mov"
    _ffmpeg("-f", "lavfi", "-i", PATCHES, "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv422p10le,"
            "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709", "-c:v", "prores_ks", "-profile:v",
            "3", clip)  # fmt: skip
    out = spliced_replace(tmp_path, clip, ".mov")
    frames = _frame_entries(out, "color_space,color_primaries,color_transfer")
    assert len(frames) == 40
    # Untagged frames decode by BT.601: the red patch turned from (200, 58, 38) to (187, 45, 40).
    untagged = [i for i, f in enumerate(frames) if (f.get("color_space"), f.get("color_primaries"),
                f.get("color_transfer")) != ("bt709", "bt709", "bt709")]  # fmt: skip
    assert not untagged, f"frames {untagged} lost the source's colour tags"


def test_chroma_location_is_kept_on_re_encoded_frames(tmp_path):
    clip = tmp_path / "topleft.mp4"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=25:d=1.6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g",
            "12", "-chroma_sample_location", "topleft", clip)  # fmt: skip
    out = spliced_replace(tmp_path, clip, ".mp4")
    locations = [f.get("chroma_location") for f in _frame_entries(out, "chroma_location")]
    assert len(locations) == 40
    assert set(locations) == {"topleft"}, f"chroma location per frame: {locations}"


def test_a_rotated_422_source_keeps_its_colour_detail(tmp_path):
    upright = tmp_path / "upright.mov"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=25:d=1.6", "-c:v", "prores_ks", "-profile:v", "3", upright)
    turned = tmp_path / "turned.mov"
    _ffmpeg("-i", upright, "-c", "copy", "-metadata:s:v:0", "rotate=90", turned)  # same stored frames, turned
    plane = W * H * 2  # yuv422p10le luma plane bytes; the two chroma planes follow
    made = [
        _raw(spliced_replace(tmp_path, src, ".mov", src.stem), "yuv422p10le", plane * 2) for src in (upright, turned)
    ]
    for j in (6, 7, 8):
        chroma = [m[j, plane:].view("<u2").astype(float) for m in made]
        mse = float(np.mean((chroma[0] - chroma[1]) ** 2))
        psnr = 10 * np.log10(1023**2 / max(mse, 1e-9))
        # Subsampled in display orientation, then turned, the colour was halved along the wrong axis (39-42 dB).
        assert psnr > 48, f"generated frame {j}: chroma of the turned source {psnr:.1f} dB from the upright one's"


def test_hevc_hdr10_metadata_is_repeated_on_re_encoded_frames(tmp_path):
    clip = tmp_path / "hdr10.mp4"
    hdr = "log-level=error:keyint=12:min-keyint=12:open-gop=0:scenecut=0:hdr10=1:repeat-headers=1:max-cll=1000,400"
    hdr += ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
    _ffmpeg("-f", "lavfi", "-i", PATCHES, "-vf", "format=yuv420p10le", "-c:v", "libx265", "-tag:v", "hvc1",
            "-x265-params", hdr, "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
            clip)  # fmt: skip
    rows = [{"pair_id": "r", "source": str(clip), "start_frame": 28, "end_frame": 32, "mode": "replace"}]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    summary = splice_run(run, output=tmp_path / "out.mp4")
    assert not summary.failed, summary.failed

    def hdr_side_data(path) -> list[list[dict]]:
        frames = _frame_entries(path, "side_data_list")
        kinds = ("Mastering display metadata", "Content light level metadata")
        return [[s for s in f.get("side_data_list", []) if s.get("side_data_type") in kinds] for f in frames]

    source, output = hdr_side_data(clip), hdr_side_data(summary.results[0].output)
    assert len(output) == len(source) == 40
    # The GOP of frames 24-35 is re-encoded: its keyframe carried neither before (0 of 12 frames had them).
    assert output[24:36] == source[24:36]
    assert len(output[24]) == 2


def test_8_bit_alpha_of_generated_frames_is_kept_exactly(tmp_path):
    clip = tmp_path / "alpha.mkv"
    ramp = f"format=yuva420p,geq=lum='lum(X,Y)':cb='cb(X,Y)':cr='cr(X,Y)':a='X*255/{W - 1}'"
    _ffmpeg("-f", "lavfi", "-i", PATCHES, "-vf", ramp, "-c:v", "ffv1", clip)  # every alpha value 0-255, static
    out = spliced_replace(tmp_path, clip, ".mkv")
    luma = W * H
    source, output = (_raw(path, "yuva420p", luma * 5 // 2)[:, luma * 3 // 2 :] for path in (clip, out))
    assert len(output) == len(source) == 40
    for j in (6, 7, 8):
        # ffmpeg 5.1's conversion to yuva420p moved half the alpha values up by one
        assert np.array_equal(output[j], source[j]), f"generated frame {j}: alpha differs from the source's"
