"""Open-GOP sources, as ffmpeg's MPEG-2 and x265's HEVC are made by default, whole and trimmed with
`ffmpeg -ss 1 -c copy`: their keyframes are flagged every GOP, but pictures shown before each one refer to
the GOP before it, so none is a place to cut and the splice re-encodes them whole. The summary must say so,
not that the container flags no keyframe."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.splice import splice_run
from tests.test_splice import make_run
from tests.test_splice_trimmed import MPEG2_OPEN, trimmed_with_ss

HEVC_OPEN = (
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "keyint=12:min-keyint=12:bframes=3:log-level=error",
)


def _whole(path, codecs: tuple[str, ...]):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2", *codecs,
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _keyframe_packets(path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags", "-of", "csv=p=0",
         str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum("K" in line for line in out.splitlines())


@pytest.mark.parametrize(
    "make, name, codecs",
    [(_whole, "src.mp4", HEVC_OPEN), (_whole, "src.ts", MPEG2_OPEN), (trimmed_with_ss, "src.ts", MPEG2_OPEN)],
    ids=["hevc", "mpeg2", "mpeg2-trimmed"],
)
def test_an_open_gop_source_is_said_to_be_one_for_its_open_gops(make, name, codecs, tmp_path):
    src = make(tmp_path / name, codecs)
    assert _keyframe_packets(src) > 2
    job = [{"pair_id": "a", "mode": "replace", "start": 10, "end": 13}]
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / f"out{src.suffix}")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    assert result.method == "full re-encode"
    assert "flags no keyframe" not in result.note, result.note
    assert "open GOPs" in result.note, result.note
