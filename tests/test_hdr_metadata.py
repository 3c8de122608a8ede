"""HDR signalling that lives in the bitstream at each keyframe is written again in re-encoded GOPs (found by a
tester: each was lost with exit 0): AV1's HDR10 metadata OBUs, and HEVC's alternative transfer
characteristics SEI that signals HLG over a bt2020-10 VUI."""

from __future__ import annotations

import json
import subprocess

import pytest

from semfi_batch.media.encode import available_encoders
from tests.media_fixtures import spliced_replace

W, H = 160, 120
MOVING = f"testsrc2=s={W}x{H}:r=25:d=0.6"  # 15 frames
HDR10_COLOUR = ["-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"]


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _frames(path, *read: str) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", *read, "-show_frames", "-show_entries",
         "frame=key_frame,color_transfer:frame_side_data", "-of", "json", str(path)],
        capture_output=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["frames"]


def _side_data(frame: dict, kind: str) -> dict | None:
    return next((s for s in frame.get("side_data_list") or [] if s.get("side_data_type") == kind), None)


@pytest.mark.skipif("libsvtav1" not in available_encoders(), reason="this ffmpeg has no SVT-AV1 encoder")
def test_av1_re_encoded_gops_keep_the_hdr10_metadata(tmp_path):
    clip = tmp_path / "hdr10.mkv"
    hdr10 = (
        "mastering-display=G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)WP(0.3127,0.329)L(1000,0.0001):content-light=1000,400"
    )
    _ffmpeg("-f", "lavfi", "-i", MOVING, "-vf", "format=yuv420p10le", "-c:v", "libsvtav1", "-g", "5", "-qp", "20",
            "-preset", "10", "-svtav1-params", hdr10, *HDR10_COLOUR, clip)  # fmt: skip
    out = spliced_replace(tmp_path, clip, ".mkv")
    source, output = _frames(clip), _frames(out)
    assert len(output) == len(source) == 15
    for kind in ("Mastering display metadata", "Content light level metadata"):
        want = _side_data(source[0], kind)
        assert want is not None, f"the source has no {kind}"
        lost = [i for i, f in enumerate(output) if _side_data(f, kind) != want]
        assert not lost, f"frames {lost} (generated 6-8, re-encoded 5-9) lost the source's {kind}"


def test_hevc_re_encoded_keyframe_keeps_the_alternative_transfer_sei(tmp_path):
    clip = tmp_path / "hlg.mp4"
    x265 = "log-level=error:keyint=5:min-keyint=5:scenecut=0:open-gop=0:crf=18:atc-sei=18"
    _ffmpeg("-f", "lavfi", "-i", MOVING, "-vf", "format=yuv420p10le", "-c:v", "libx265", "-preset", "fast",
            "-x265-params", x265, "-color_primaries", "bt2020", "-color_trc", "bt2020-10", "-colorspace",
            "bt2020nc", "-tag:v", "hvc1", clip)  # fmt: skip
    assert _frames(clip)[0]["color_transfer"] == "arib-std-b67"  # the SEI over the VUI's bt2020-10
    out = spliced_replace(tmp_path, clip, ".mp4")
    # A decode that starts at the re-encoded keyframe (frame 5, 0.2 s), as a seek does, must see HLG.
    seek = _frames(out, "-read_intervals", "0.2%+#3")
    assert seek and seek[0]["key_frame"] == 1
    assert [f["color_transfer"] for f in seek] == ["arib-std-b67"] * 3
