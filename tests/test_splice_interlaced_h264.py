"""Interlaced H.264 is re-encoded whole, coded interlaced again as the source is: the field order every picture
states (pic_struct: what ffprobe, players and MP4/TS readers go by) and the order its POCs give (the decoder's
word, `showinfo`'s i:T or i:B) must both be the source's."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.media_fixtures import spliced_replace


def _field_orders(path) -> tuple[str, str]:
    """(the order the stream states, the decoder's flags on its first frames)."""
    stated = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=field_order", "-of",
         "csv=p=0", str(path)], capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    log = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", str(path), "-map", "0:v:0", "-frames:v", "3", "-vf", "showinfo", "-f", "null",
         "-"], capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    return stated, "".join(sorted(set(re.findall(r"showinfo.* i:([TBP?])\b", log))))


@pytest.mark.parametrize(
    ("field", "top", "x264", "expected"),
    [
        # As x264 and broadcast encoders write it: pic_struct and POCs in one order. A BFF source came back
        # with every picture stating top-bottom (ffprobe: tt), its fields shown the wrong way round, exit 0.
        ("bff", "0", ("-x264-params", "bff=1"), ("bb", "B")),
        ("tff", "1", ("-x264-params", "tff=1"), ("tt", "T")),
        # As ffmpeg writes frames flagged bottom first without telling x264: pic_struct top-bottom, POCs bottom
        # first. Both come back as they were.
        ("bff", "0", (), ("tt", "B")),
    ],
)
def test_interlaced_h264_keeps_its_field_order(tmp_path, field, top, x264, expected):
    source = tmp_path / "interlaced.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x128:r=25:d=0.96",
         "-vf", f"setfield={field}", "-c:v", "libx264", "-crf", "12", "-g", "12", "-flags", "+ilme+ildct",
         "-top", top, *x264, str(source)],
        check=True,
    )  # fmt: skip
    assert _field_orders(source) == expected
    out = spliced_replace(tmp_path, source, ".mp4")
    assert _field_orders(out) == expected
