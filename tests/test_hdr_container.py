"""HDR10 static metadata that the source's container keeps for its video (Matroska's MasteringMetadata, MaxCLL
and MaxFALL, as mkvmerge writes them; MP4/MOV mdcv and clli) is in the output's container after a splice,
smart cut or whole re-encode (a whole re-encode lost it with exit 0: the joined stream took its parameters
from the encoded file), and an output whose container cannot hold it (MPEG-TS) says so in the summary."""

from __future__ import annotations

import json
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from semfi_batch.splice import SpliceOptions, splice_run
from tests.test_splice import make_run

W, H = 160, 120
HDR10_COLOUR = ["-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"]
# Red, green, blue, white point (CIE x, y), then minimum and maximum luminance (cd/m2): a P3-D65 display.
MASTERING = (0.68, 0.32, 0.265, 0.69, 0.15, 0.06, 0.3127, 0.329, 0.0001, 1000.0)
CONTENT_LIGHT = (1000, 400)
ENCODERS = {
    "h264": ["-c:v", "libx264", "-g", "12", "-bf", "2", "-pix_fmt", "yuv420p"],
    "prores": ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"],
}
SEEK_HEAD = 0x114D9B74
SIDE_DATA_KEYS = ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_point_x", "white_point_y",
                  "min_luminance", "max_luminance")  # fmt: skip


def hdr10_mkv(path: Path, codec: str) -> Path:
    """A Matroska clip whose Colour element holds HDR10 MasteringMetadata, MaxCLL and MaxFALL (nothing in its
    bitstream): written by ffmpeg to a pipe (no cues, nothing pointing past the tracks), the elements added to
    its track here, then copied by ffmpeg into an indexed file."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=25:d=2"]
    piped = subprocess.run([*args, *ENCODERS[codec], *HDR10_COLOUR, "-f", "matroska", "pipe:1"],
                           capture_output=True, check=True).stdout  # fmt: skip
    metadata = b"".join(_ebml(0x55D1 + n, struct.pack(">d", v)) for n, v in enumerate(MASTERING[:8]))
    metadata += _ebml(0x55D9, struct.pack(">d", MASTERING[9])) + _ebml(0x55DA, struct.pack(">d", MASTERING[8]))
    colour = _ebml(0x55D0, metadata) + _ebml(0x55BC, struct.pack(">I", CONTENT_LIGHT[0]))
    colour += _ebml(0x55BD, struct.pack(">I", CONTENT_LIGHT[1]))
    # EBML header, then the Segment (unknown size): Tracks > TrackEntry > Video > Colour gets the elements.
    _, _, segment, _ = _elements(piped, 0, len(piped))[1]
    body = _append_inside(piped, segment, len(piped), [0x1654AE6B, 0xAE, 0xE0, 0x55B0], colour)
    raw = path.with_suffix(".piped.mkv")
    raw.write_bytes(piped[:segment] + body)
    copy = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(raw), "-c", "copy", str(path)]
    assert not subprocess.run(copy, capture_output=True, text=True, check=True).stderr  # read without a complaint
    assert stream_hdr10(path) == (pytest.approx(MASTERING, abs=1e-4), CONTENT_LIGHT)
    return path


def _ebml(element_id: int, payload: bytes) -> bytes:
    """An element with an 8-byte size."""
    size = (len(payload) | 1 << 56).to_bytes(8, "big")
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + size + payload


def _vint(data: bytes, at: int) -> tuple[int, int, int]:
    """(length, raw value with its marker, value without) of the EBML number at `at`."""
    length = 9 - data[at].bit_length()
    raw = int.from_bytes(data[at : at + length], "big")
    return length, raw, raw & ((1 << (7 * length)) - 1)


def _elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(id, start, payload start, end) of each element in data[start:end]; an unknown size runs to `end`."""
    found = []
    while start < end:
        id_length, element_id, _ = _vint(data, start)
        size_length, _, size = _vint(data, start + id_length)
        payload = start + id_length + size_length
        stop = end if size == (1 << (7 * size_length)) - 1 else payload + size
        found.append((element_id, start, payload, stop))
        start = stop
    return found


def _append_inside(data: bytes, start: int, end: int, path: list[int], extra: bytes) -> bytes:
    """data[start:end] again, with `extra` at the end of the element that `path` (ids) leads to, and no
    SeekHead (its positions would point short of what they name)."""
    out = b""
    for element_id, first, payload, stop in _elements(data, start, end):
        if element_id == SEEK_HEAD:
            continue
        if path and element_id == path[0]:
            if len(path) > 1:
                inner = _append_inside(data, payload, stop, path[1:], extra)
            else:
                inner = data[payload:stop] + extra
            out += _ebml(element_id, inner)
        else:
            out += data[first:stop]
    return out


def stream_hdr10(path: Path) -> tuple[tuple[float, ...] | None, tuple[int, int] | None]:
    """The video stream's container HDR10 metadata as ffprobe reads it: (mastering display as MASTERING
    orders it, (MaxCLL, MaxFALL)), None where absent."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream_side_data", "-of", "json",
         str(path)], capture_output=True, check=True,
    ).stdout  # fmt: skip
    sides = {s["side_data_type"]: s for s in json.loads(out)["streams"][0].get("side_data_list", [])}
    display, light = sides.get("Mastering display metadata"), sides.get("Content light level metadata")
    return (
        tuple(float(Fraction(display[k])) for k in SIDE_DATA_KEYS) if display else None,
        (int(light["max_content"]), int(light["max_average"])) if light else None,
    )


def splice(tmp_path: Path, source: Path, suffix: str, *, reencode: bool):
    run = make_run(tmp_path / f"run-{suffix[1:]}-{reencode}", source, [
        {"pair_id": "rep", "mode": "replace", "start": 14, "end": 18},
    ])  # fmt: skip
    summary = splice_run(run, output=tmp_path / f"out-{reencode}{suffix}", options=SpliceOptions(reencode=reencode))
    assert not summary.failed, summary.failed
    return summary.results[0]


@pytest.mark.parametrize(
    ("codec", "suffix", "reencode"),
    [("h264", ".mkv", True), ("h264", ".mp4", True), ("h264", ".mp4", False), ("prores", ".mov", True)],
)
def test_container_hdr10_metadata_is_kept(tmp_path, codec, suffix, reencode):
    source = hdr10_mkv(tmp_path / f"{codec}.mkv", codec)
    result = splice(tmp_path, source, suffix, reencode=reencode)
    assert result.method == ("full re-encode" if reencode else "smart cut")
    assert stream_hdr10(result.output) == (pytest.approx(MASTERING, abs=1e-4), CONTENT_LIGHT)
    assert not result.dropped_streams


def test_a_container_without_room_for_it_is_named_in_the_summary(tmp_path):
    source = hdr10_mkv(tmp_path / "h264.mkv", "h264")
    result = splice(tmp_path, source, ".ts", reencode=True)
    assert stream_hdr10(result.output) == (None, None)
    assert any("HDR10 mastering display and content light levels" in line for line in result.dropped_streams)
