"""What a splice checks in its output before it is kept: frame times as planned, the start where the
source's was, the joins of copied and re-encoded GOPs decoding as the source does, and the first generated
frames showing their pictures. A smart cut that fails a check raises JoinCheckFailed, and the caller
re-encodes the whole video instead."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from semfi_batch.errors import MediaError
from semfi_batch.media.encode import (
    RAW_TIMING,
    PacketIndex,
    StreamFacts,
    read_packets,
)
from semfi_batch.media.frames import as_rgb8, read_image
from semfi_batch.media.probe import decoder_keyframe_at, probe_video
from semfi_batch.media.side_alpha import decoder_args
from semfi_batch.media.tools import tool_path
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.splice.audio import first_shown_time
from semfi_batch.splice.final_mux import MUXERS, SHIFTING_MUXERS
from semfi_batch.splice.timeline import Piece, Timeline

# Frames decoded past each join to check that copied GOPs still decode exactly as in the source.
JOIN_CHECK_FRAMES = 6
# Generated frames checked in the output against their pictures (spread over all of them: an encoder that does
# not fit the stream spoils them all, one that loses detail it should keep spoils some), and the least PSNR
# (8-bit, at an eighth of the size) they must show. Lossy codecs give 35 dB and more; a raw layout read as
# another gives under 16.
GENERATED_CHECK_FRAMES = 16
GENERATED_CHECK_DB = 24.0


class JoinCheckFailed(MediaError):
    """The smart-cut result does not decode as planned; the caller falls back to a full re-encode."""


def check_timing(ofacts: StreamFacts, out_pts: np.ndarray, timeline: Timeline, cfacts: StreamFacts) -> None:
    """The output's video frames are the planned ones, at the planned times relative to the first frame (to
    half a tick, or 1 ms in millisecond containers). A muxer may move all streams together (encoder priming
    must not start before zero in Matroska); that keeps sync and is allowed."""
    got = out_pts.astype(np.float64) * float(ofacts.time_base)
    want = timeline.pts.astype(np.float64) * float(cfacts.time_base)
    if got.shape != want.shape:
        raise JoinCheckFailed(f"output has {got.shape[0]} video frames, planned {want.shape[0]}")
    if not got.size:
        return
    tolerance = max(float(ofacts.time_base), float(cfacts.time_base)) / 2 + 1e-6
    if ofacts.time_base >= Fraction(1, 1000) or cfacts.time_base >= Fraction(1, 1000):
        tolerance = max(tolerance, 0.0011)
    worst = float(np.max(np.abs((got - got[0]) - (want - want[0]))))
    if worst > tolerance:
        raise JoinCheckFailed(f"output frame times are off the plan by up to {worst * 1000:.3f} ms")


def check_start(
    output: Path, ofacts: StreamFacts, out_pts: np.ndarray, source: Path, facts: StreamFacts, moved: float = 0.0
) -> None:
    """The picture starts when the source's did (`moved` s later, where the mux moved every stream: a TS
    source's clock origin), so it keeps its place against the sound: the first decoded
    frame of each, as `_audio_moves` measures them. Not the first packet: the leading pictures of a stream cut
    inside a GOP are listed and never shown, and a smart cut's copy leaves them out (a source was failed as
    starting "late" by all of them). The first packets only where no decoded frame has a time. Later is
    allowed in a muxer that moves every stream together (SHIFTING_MUXERS): the audio is checked against the
    picture there, and nothing else depends on the clock's origin (every H.264 or HEVC source with B-frames
    in MP4 or Matroska failed to splice into .ts or .nut)."""
    want, got = first_shown_time(source, facts.index), first_shown_time(output, ofacts.index)
    if want is None or got is None:
        src_packets = read_packets(source, facts.index, facts.time_base)
        want = float(int(src_packets.frame_pts[0]) * facts.time_base)
        got = float(int(out_pts[0]) * ofacts.time_base)
    got -= moved
    tolerance = max(float(ofacts.time_base), float(facts.time_base)) / 2 + 1e-6
    tolerance = max(tolerance, 0.0011 if ofacts.time_base >= Fraction(1, 1000) else tolerance)
    if got - want > tolerance and MUXERS.get(output.suffix.lower()) in SHIFTING_MUXERS:
        return
    if abs(got - want) > tolerance:
        # A failed check, not a failed source: a smart cut falls back to a whole re-encode.
        raise JoinCheckFailed(f"the video starts at {got:.6f}s instead of {want:.6f}s; audio would drift from it")


def check_generated(output: Path, timeline: Timeline) -> None:
    """Decode up to GENERATED_CHECK_FRAMES generated frames of the output, spread over all of them (the first
    and last included), and compare each with its picture: an encoder whose output the stream does not carry
    as meant (a raw layout the copy's container cannot hold), or that loses what it should keep on some
    pictures and not others, gives frames that decode without error, in the right places, and show
    something else."""
    generated = np.flatnonzero(timeline.src < 0)
    picks = np.unique(np.linspace(0, len(generated) - 1, min(len(generated), GENERATED_CHECK_FRAMES)).round())
    wanted = [int(generated[int(i)]) for i in picks] if len(generated) else []
    if not wanted:
        return
    decoded = extract_frames(probe_video(output), wanted)
    for j in wanted:
        picture = timeline.edits[int(timeline.edit[j])].frames[int(timeline.k[j])]
        score = _small_psnr(as_rgb8(decoded[j]), as_rgb8(read_image(picture)))
        if score < GENERATED_CHECK_DB:
            raise MediaError(
                f"generated frame {j} decodes as another picture ({score:.1f} dB against {picture}); this "
                "codec's encoder does not fit the stream"
            )


def _small_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two RGB uint8 pictures of one size, each reduced to an eighth (at least 8 pixels a side)."""
    size = (max(8, a.shape[1] // 8), max(8, a.shape[0] // 8))
    small = [cv2.resize(x, size, interpolation=cv2.INTER_AREA).astype(np.float64) for x in (a, b)]
    mse = float(np.mean((small[0] - small[1]) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def check_joins(
    output: Path,
    ofacts: StreamFacts,
    out_t: np.ndarray,
    copy_from: Path,
    cfacts: StreamFacts,
    timeline: Timeline,
    pieces: list[Piece],
) -> None:
    """Decode every re-encoded piece from its first keyframe on into the copied GOP after it: no decoder
    errors, every frame there, and the copied frames decode exactly as they do in the source (a wrong
    parameter set or reference would change them). The join into a piece needs no decode: the piece opens
    with an IDR picture carrying the parameter sets it uses, and its timing is checked with the rest."""
    src_t = timeline.source_pts
    for n, piece in enumerate(pieces):
        if piece.copy:
            continue
        after = pieces[n + 1] if n + 1 < len(pieces) and pieces[n + 1].copy else None
        tail = min(JOIN_CHECK_FRAMES, after.frames_out) if after else 0
        count = piece.frames_out + tail
        hashes, errors = _frame_hashes(output, ofacts, _mid_seconds(out_t, piece.out_first, ofacts), count)
        where = f"the re-encoded GOPs at source frame {piece.first_frame}"
        if errors:
            raise JoinCheckFailed(f"decoding {where} reports: {errors}")
        if len(hashes) != count:
            raise JoinCheckFailed(f"decoding {where} gave {len(hashes)} of {count} frames")
        if after is not None and tail:
            want, errs = _frame_hashes(copy_from, cfacts, _mid_seconds(src_t, after.first_frame, cfacts), tail)
            if errs or hashes[piece.frames_out :] != want:
                raise JoinCheckFailed(f"copied frames after {where} do not decode as in the source")


def keyframes_confirmed(path: Path, facts: StreamFacts, packets: PacketIndex) -> bool:
    """For a stream of a long-GOP codec whose every packet is flagged a keyframe (all-intra H.264 or MPEG-2, or
    an index that lies, as old AVIs' do): whether the decoder, seeking to three of them, finds intra keyframes.
    Copying packets around generated frames is safe only then."""
    pts = packets.frame_pts
    for k in (len(pts) // 4 + 1, len(pts) // 2 + 1, 3 * len(pts) // 4 + 1):
        if k < len(pts) and not decoder_keyframe_at(path, float(int(pts[k]) * facts.time_base) - facts.format_start):
            return False
    return True


def _mid_seconds(pts: np.ndarray, index: int, facts: StreamFacts) -> float | None:
    if index <= 0:
        return None
    mid = Fraction(int(pts[index - 1]) + int(pts[index]), 2) * facts.time_base
    return float(mid) - facts.format_start


def _frame_hashes(path: Path, facts: StreamFacts, seek: float | None, count: int) -> tuple[list[str], str]:
    """MD5 of each of `count` decoded frames (native format, stored orientation; hashed by ffmpeg's framemd5)
    and the decoder's last error line."""
    args = [tool_path("ffmpeg"), "-nostdin", "-v", "error", "-noautorotate", *decoder_args(facts.decoder)]
    if seek is not None and seek > 0:
        args += ["-ss", f"{seek:.6f}"]
    args += ["-i", str(path), "-map", f"0:{facts.index}", "-frames:v", str(count), *RAW_TIMING]
    args += ["-pix_fmt", facts.pix_fmt, "-f", "framemd5", "-"]
    proc = subprocess.run(args, capture_output=True, check=False)
    hashes = [
        line.rsplit(",", 1)[1].strip()
        for line in proc.stdout.decode(errors="replace").splitlines()
        if line and not line.startswith("#")
    ]
    errors = proc.stderr.decode(errors="replace").strip()
    return hashes, (errors.splitlines()[-1] if errors else "")
