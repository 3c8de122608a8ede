"""A Matroska track's declared frame duration (DefaultDuration), set in place in a file ffmpeg wrote.

ffmpeg 5.1 takes it from the muxed stream's average rate and, copying a stream, ignores `-r`: a splice's
joined stream took the rate of the concat's first file, a one-frame MP4 on a millisecond clock, and a 29.97
source came back declaring 33 ms frames (30.3 frames/s to an editor that conforms by it) though every
frame's time was right. The element is rewritten in the bytes ffmpeg reserved for it; nothing moves."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

_SEGMENT, _TRACKS, _TRACK_ENTRY, _CLUSTER = 0x18538067, 0x1654AE6B, 0xAE, 0x1F43B675
_TRACK_NUMBER, _TRACK_TYPE, _DEFAULT_DURATION = 0xD7, 0x83, 0x23E383
_VIDEO = 1
_HEAD_BYTES = 1 << 20  # the tracks come before the first cluster, within the file's first kilobytes


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """(value, length) of the EBML variable-length integer at `pos` (an element ID keeps its marker bit)."""
    first = data[pos]
    length = next((n for n in range(8) if first & (0x80 >> n)), 8) + 1
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    return value, length


def _children(data: bytes, start: int, end: int):
    """(id, position of its data, size) of each element between `start` and `end`."""
    pos = start
    while pos < end and pos < len(data):
        ident, id_len = _vint(data, pos, keep_marker=True)
        size, size_len = _vint(data, pos + id_len, keep_marker=False)
        body = pos + id_len + size_len
        if size == (1 << (7 * size_len)) - 1:  # unknown size (a live stream): runs to the parent's end
            size = end - body
        yield ident, body, size
        pos = body + size


def _uint(data: bytes, field: tuple[int, int]) -> int:
    at, size = field
    return int.from_bytes(data[at : at + size], "big")


def frame_duration_ns(rate: Fraction) -> int:
    """DefaultDuration for a constant `rate`, rounded as ffmpeg's muxer rounds it (33366666 for 29.97)."""
    return 1_000_000_000 * rate.denominator // rate.numerator


def set_default_duration(path: Path, track_number: int, duration_ns: int) -> bool:
    """Write `duration_ns` into video track `track_number`'s DefaultDuration; False (file untouched) when the
    file's head holds no such video track or element, or its field is too short for the value."""
    with open(path, "r+b") as fh:
        data = fh.read(_HEAD_BYTES)
        for ident, body, size in _children(data, 0, len(data)):
            if ident != _SEGMENT:
                continue
            for sub, sub_body, sub_size in _children(data, body, body + size):
                if sub == _CLUSTER:
                    return False
                if sub != _TRACKS:
                    continue
                for entry, entry_body, entry_size in _children(data, sub_body, sub_body + sub_size):
                    fields = {i: (b, s) for i, b, s in _children(data, entry_body, entry_body + entry_size)}
                    if entry != _TRACK_ENTRY or _TRACK_NUMBER not in fields or _DEFAULT_DURATION not in fields:
                        continue
                    if _uint(data, fields[_TRACK_NUMBER]) != track_number:
                        continue
                    if _TRACK_TYPE not in fields or _uint(data, fields[_TRACK_TYPE]) != _VIDEO:
                        return False
                    at, width = fields[_DEFAULT_DURATION]
                    if duration_ns >= 1 << (8 * width):
                        return False
                    fh.seek(at)
                    fh.write(duration_ns.to_bytes(width, "big"))
                    return True
    return False
