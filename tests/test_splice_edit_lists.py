"""MP4 sources whose edit list shows the media in two edits, with a cut between them (as an editor's lossless
trim writes them): the MOV demuxer keeps the hidden frames a decode needs, flagged to discard, and a copy of
the packets shows them. A splice must give back the frames the source shows, and no others."""

from __future__ import annotations

import struct
from pathlib import Path

from semfi_batch.splice import splice_run
from tests.conftest import frame_number, numbered_clip
from tests.test_splice import add_audio, decode_rgb, make_run


def _boxes(data: bytes, start: int, end: int):
    """(type, start, body start, end) of each ISO BMFF box in data[start:end]."""
    at = start
    while at < end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        yield kind.decode("latin1"), at, at + 8, at + size
        at += size


def with_two_edits(source: Path, out: Path, first_s: float, skip_s: float, second_s: float) -> Path:
    """`source` (moov after mdat, as ffmpeg writes it) with each track's edit list replaced by two edits: the
    first `first_s` s, then `second_s` s from `first_s + skip_s` s (its media times kept, AAC priming too)."""
    data = bytearray(source.read_bytes())
    moov = next(b for b in _boxes(data, 0, len(data)) if b[0] == "moov")
    grown = 0
    for kind, start, body, end in reversed(list(_boxes(data, moov[2], moov[3]))):
        if kind != "trak":
            continue
        mdia = next(b for b in _boxes(data, body, end) if b[0] == "mdia")
        mdhd = next(b for b in _boxes(data, mdia[2], mdia[3]) if b[0] == "mdhd")
        scale = struct.unpack(">I", data[mdhd[2] + 12 : mdhd[2] + 16])[0]  # (version 0, as ffmpeg writes it)
        edts = next(b for b in _boxes(data, body, end) if b[0] == "edts")
        elst = next(b for b in _boxes(data, edts[2], edts[3]) if b[0] == "elst")
        lead = struct.unpack(">i", data[elst[2] + 12 : elst[2] + 16])[0]  # the first edit's media time
        entries = [(first_s, lead), (second_s, lead + round((first_s + skip_s) * scale))]
        payload = struct.pack(">II", 0, len(entries))
        payload += b"".join(struct.pack(">Iii", round(s * 1000), t, 0x10000) for s, t in entries)  # movie: 1/1000
        box = struct.pack(">I4s", 8 + len(payload), b"elst") + payload
        delta = len(box) - (elst[3] - elst[1])
        data[elst[1] : elst[3]] = box
        for parent in (edts[1], start):
            data[parent : parent + 4] = struct.pack(">I", struct.unpack(">I", data[parent : parent + 4])[0] + delta)
        grown += delta
    data[moov[1] : moov[1] + 4] = struct.pack(">I", moov[3] - moov[1] + grown)
    out.write_bytes(bytes(data))
    return out


def test_frames_an_edit_list_cuts_out_stay_out(tmp_path):
    """Frames 0-24, then 35-74 of a numbered clip (10 cut out, 25 hidden after the end). The smart cut copied
    the hidden frames' packets, which the output showed: 80 frames instead of 65 (frames 25-34 and 75-78 back,
    28 twice), exit 0."""
    whole = add_audio(numbered_clip(tmp_path / "plain.mp4", 100), tmp_path / "whole.mp4")
    src = with_two_edits(whole, tmp_path / "src.mp4", 1.0, 0.4, 1.6)
    shown = [frame_number(f) for f in decode_rgb(src)]
    assert shown == [*range(25), *range(35, 75)]  # as this ffmpeg shows the source
    job = [{"pair_id": "a", "mode": "replace", "start": 20, "end": 24}]
    for ext in ("mp4", "mkv"):
        summary = splice_run(make_run(tmp_path / f"run-{ext}", src, job), output=tmp_path / f"out.{ext}")
        assert not summary.failed, summary.failed
        frames = decode_rgb(summary.results[0].output)
        assert len(frames) == len(shown), f"{ext}: {len(frames)} frames, the source shows {len(shown)}"
        kept = [frame_number(f) for n, f in enumerate(frames) if not 20 < n < 24]
        assert kept == [n for k, n in enumerate(shown) if not 20 < k < 24], ext
        assert "edit list hides" in summary.results[0].note
