"""HDR10 static metadata that the source's container keeps for its video stream (MP4/MOV mdcv and clli boxes,
Matroska's MasteringMetadata, MaxCLL and MaxFALL), kept in the splice's output. ffmpeg writes it into MP4,
MOV, Matroska and WebM from the stream's side data, which a copied stream keeps and an encoded one has not:
a smart cut's joined stream takes its parameters from the source's copy, a whole re-encode's from its
encoded file, and the metadata was lost with exit 0. A whole re-encode's joined stream takes them instead
from a one-frame MOV/MP4 copy of its encoded file (the concat script's lead) into which the boxes are
written here; the output is then read back, and what did not arrive is named in the summary."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

from semfi_batch.errors import MediaError
from semfi_batch.media.encode import StreamFacts
from semfi_batch.media.frame_pipes import track_timescale_args
from semfi_batch.media.stream_facts import probe_stream_facts
from semfi_batch.media.tools import run_tool

# Output muxers that write a stream's HDR10 side data into the container.
HDR10_MUXERS = ("mp4", "mov", "matroska", "webm")
# Box paths from the movie box down to the sample descriptions.
_TO_STSD = (b"trak", b"mdia", b"minf", b"stbl", b"stsd")
_STSD_HEADER = 8  # version and flags, entry count
# SMPTE ST 2086 units: chromaticity in 0.00002, luminance in 0.0001 cd/m2.
_CHROMA_UNIT, _LUMINANCE_UNIT = Fraction(1, 50000), Fraction(1, 10000)


def has_container_hdr10(facts: StreamFacts) -> bool:
    """Whether the source's container keeps HDR10 static metadata for the stream."""
    return facts.container_mastering_display is not None or facts.container_content_light is not None


def hdr10_lead(encoded: Path, time_base: Fraction, facts: StreamFacts, work: Path) -> Path | None:
    """A one-frame MOV (or MP4) copy of `encoded`'s video, on its clock, whose sample description carries
    the source's container HDR10 metadata; None where neither container takes the codec or the copy cannot
    be made to carry it (the caller names the loss)."""
    for muxer in ("mov", "mp4"):
        lead = work / f"hdr10-lead.{muxer}"
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(encoded), "-map", "0:v:0", "-c", "copy"]
        args += ["-frames:v", "1", *track_timescale_args(muxer, time_base), "-f", muxer, str(lead)]
        try:
            run_tool(args, what=f"cannot copy a frame of {encoded.name}")
            lead.write_bytes(with_hdr10_boxes(lead.read_bytes(), facts))
            lfacts = probe_stream_facts(lead, encoder_settings=False)
        except MediaError:
            continue
        if not hdr10_differs(facts, lfacts):
            return lead
    return None


def hdr10_differs(want: StreamFacts, got: StreamFacts) -> list[str]:
    """What of `want`'s container HDR10 metadata `got` lacks or holds otherwise (to the boxes' units), in
    words."""
    differ = []
    a, b = want.container_mastering_display, got.container_mastering_display
    if a is not None and (b is None or any(abs(x - y) > _LUMINANCE_UNIT for x, y in zip(a, b))):
        differ.append("mastering display")
    if want.container_content_light is not None and got.container_content_light != want.container_content_light:
        differ.append("content light levels")
    return differ


def hdr10_lost(facts: StreamFacts, ofacts: StreamFacts, output: Path) -> list[str]:
    """The summary's line for container HDR10 metadata of the source that `output` does not carry as the
    source had it (a container that cannot hold it: MPEG-TS, AVI, MXF, NUT); nothing where it does."""
    lost = hdr10_differs(facts, ofacts)
    if not lost:
        return []
    return [f"the container's HDR10 {' and '.join(lost)} metadata: {output.suffix} output does not hold it as it was"]


def with_hdr10_boxes(movie: bytes, facts: StreamFacts) -> bytes:
    """`movie` (one video track, its movie box after its media data, as ffmpeg writes without faststart) with
    mdcv and clli boxes added to the track's sample description; MediaError where it is not laid out so."""
    boxes = b""
    if facts.container_mastering_display is not None:
        rx, ry, gx, gy, bx, by, wx, wy, low, high = facts.container_mastering_display
        chroma = [round(v / _CHROMA_UNIT) for v in (gx, gy, bx, by, rx, ry, wx, wy)]  # green, blue, red, white
        payload = struct.pack(">8H2I", *chroma, round(high / _LUMINANCE_UNIT), round(low / _LUMINANCE_UNIT))
        boxes += _box(b"mdcv", payload)
    if facts.container_content_light is not None:
        boxes += _box(b"clli", struct.pack(">2H", *facts.container_content_light))
    top = _children(movie, 0, len(movie))
    kinds = [kind for kind, *_ in top]
    if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") < kinds.index(b"mdat"):
        raise MediaError("the movie box is not after the media data")
    path = [next(box for box in top if box[0] == b"moov")]
    for kind in _TO_STSD:
        found = [box for box in _children(movie, path[-1][2], path[-1][3]) if box[0] == kind]
        if len(found) != 1:
            raise MediaError(f"not one {kind.decode()} box")
        path.append(found[0])
    stsd = path[-1]
    entries = _children(movie, stsd[2] + _STSD_HEADER, stsd[3])
    if len(entries) != 1:
        raise MediaError("not one sample description")
    _, entry_start, _, entry_end = entries[0]
    path.append((b"", entry_start, 0, entry_end))
    out = bytearray(movie[:entry_end] + boxes + movie[entry_end:])
    for _, start, _, _ in path:
        (size,) = struct.unpack_from(">I", out, start)
        if size == 1:
            raise MediaError("a 64-bit box size")
        struct.pack_into(">I", out, start, size + len(boxes))
    return bytes(out)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, start, payload start, end) of each box in data[start:end]."""
    boxes = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, start + 8)
            header = 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise MediaError(f"a {kind!r} box runs past its parent")
        boxes.append((kind, start, start + header, start + size))
        start += size
    return boxes
