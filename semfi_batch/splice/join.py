"""The ffmpeg side of a splice: re-encode the touched GOPs, join them with the stream-copied rest through the
concat demuxer, rebuild audio where the timeline grew, carry every other stream, chapter and tag, and check
the result against the plan.

How the joins stay exact:
- every piece's timestamps are set through the concat script (inpoint/outpoint pick whole GOPs by their
  packets' timestamps; per-file `duration` offsets place each piece at its planned time, to the tick);
- the script starts with an empty entry of the file being copied, so the joined stream keeps the source's
  codec extradata (H.264 SPS/PPS) even when the first GOP is re-encoded;
- the final mux runs with -copyts: copied packets keep the source's timestamps, and the audio is copied or
  rebuilt against the same clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from semfi_batch.errors import MediaError
from semfi_batch.media.codecs import INTRA_CODECS
from semfi_batch.media.encode import (
    EncoderChoice,
    PacketIndex,
    StreamFacts,
    choose_encoder,
    convert_images,
    copy_muxer,
    decode_range,
    encode_frames,
    probe_stream_facts,
    read_packets,
    reorder_delay,
    round_us,
    same_parameter_sets,
    start_and_extradata,
    track_timescale_args,
)
from semfi_batch.media.keyframe_pictures import check_keyframe_pictures, container_states_no_aspect
from semfi_batch.media.probe import VideoInfo, probe_video
from semfi_batch.media.tools import run_tool
from semfi_batch.splice.audio import (
    AUDIO_START_TOLERANCE,
    AudioChanges,
    first_decoded_time,
    first_shown_time,
    packet_times,
)
from semfi_batch.splice.final_mux import (
    MUXERS,
    SHIFTING_MUXERS,
    Muxed,
    OtherVideoWouldDrift,
    StreamNotHeld,
    mux_output,
    seconds_text,
    timecode_lost,
)
from semfi_batch.splice.gop_plan import Gop, gop_index, one_gop_reason
from semfi_batch.splice.hdr10_container import HDR10_MUXERS, has_container_hdr10, hdr10_lead, hdr10_lost
from semfi_batch.splice.lost_captions import captions_lost
from semfi_batch.splice.output_checks import (
    JoinCheckFailed,
    check_generated,
    check_joins,
    check_start,
    check_timing,
    keyframes_confirmed,
)
from semfi_batch.splice.runfolder import Edit
from semfi_batch.splice.timeline import Piece, SourceTimesGoBack, Timeline, build_timeline, plan_pieces


@dataclass
class Assembly:
    """What one attempt produced."""

    method: str  # "smart cut" | "full re-encode"
    note: str
    timeline: Timeline
    pieces: list[Piece]
    frames_reencoded: int
    audio_note: str = ""
    dropped_streams: list[str] = field(default_factory=list)


def assemble_output(
    source: Path,
    facts: StreamFacts,
    edits: list[Edit],
    output: Path,
    work: Path,
    *,
    smart: bool,
    audio_mode: str,
    note: str,
) -> Assembly:
    """Write the spliced video to `output` (a temporary path the caller renames). `smart`: copy untouched GOPs."""
    if smart:
        _check_no_hidden_frames(source, facts)
    copy_from, cfacts = _video_only(source, facts, work) if smart else (source, facts)
    packets = read_packets(copy_from, cfacts.index, cfacts.time_base)
    info = probe_video(source)
    frame_pts, gops = packets.frame_pts, gop_index(packets)
    try:
        planned, clock, same = _edits_on_packets(edits, info, packets, source)
    except MediaError as exc:
        if smart or np.isnan(info.frame_times).any():
            raise JoinCheckFailed(str(exc)) if smart else exc from None
        same = False
    if not smart and (not same or (clock and MUXERS.get(output.suffix.lower()) != "avi")):
        # A whole re-encode needs no packet: where the decoder skips frames the packets list, its frames are
        # the decoded ones, at the decoder's times. Where it times them later than their packets (AVI, whose
        # B-frames carry no presentation time: H.264 with B-frames comes out two frames late), the frames are
        # placed where the source's decoder shows them, against the copied sound; placed at the packets'
        # times, the picture started 80 ms early in MP4 and Matroska and a TS muxer moved the sound with it.
        # (An AVI output's decoder delays its frames as the source's did: it takes the packets' times.)
        planned, clock = edits, 0.0
        frame_pts = np.rint((info.frame_times + info.start_time) / float(cfacts.time_base)).astype(np.int64)
        gops = [Gop(0, packets.count, 0, int(frame_pts.shape[0]))]
    steps = np.diff(packets.frame_pts)
    frame_s = float(int(steps[steps > 0].min()) * cfacts.time_base) if (steps > 0).any() else 0.0
    if smart and frame_s and abs(clock) >= frame_s / 2:
        # B-frames in AVI carry no presentation time (MPEG-4 Part 2 from ffmpeg or XviD): the copy's packets
        # are timed in decode order, and copied GOPs showed their frames out of order (into Matroska, the
        # sound was then "corrected" 1.88 s late and the splice failed). Decoded whole, at the decoder's times.
        raise JoinCheckFailed(
            f"its decoder shows its frames {clock * 1000:.0f} ms later than its packets are timed (B-frames in "
            f"{facts.format_name}, which carry no presentation time): copied packets would not keep their order"
        )
    if smart:  # the copy's decoder keeps its packets' times (a source whose decoder does not is re-encoded whole)
        clock = 0.0
    try:
        timeline = build_timeline(frame_pts, planned)
    except SourceTimesGoBack as exc:
        if smart and not np.isnan(info.frame_times).any():
            raise JoinCheckFailed(f"frame times of the copied stream: {exc}") from None  # the decoder's may hold
        before, at = (float(tick * cfacts.time_base) for tick in exc.ticks)
        raise MediaError(
            f"its frame {exc.frame} comes at {at:.3f} s, not after frame {exc.frame - 1} at {before:.3f} s: its "
            "timestamps go back (recordings joined, each with its own clock, or times written wrong), so no frame "
            "can be placed by its time; split it where they go back"
        ) from None
    except ValueError as exc:
        if not smart:
            raise
        # The copy lost a presentation time (a packet without one, re-timed by the muxer): re-encode whole.
        raise JoinCheckFailed(f"frame times of the copied stream: {exc}") from None
    # Every presented frame a keyframe (ProRes, DNxHD, FFV1, MJPEG; Cinepak or QuickTime Animation made
    # that way): only the generated frames are encoded, every source packet is copied.
    intra = bool(packets.key[~packets.discard].all())
    if smart and intra and facts.codec not in INTRA_CODECS and not keyframes_confirmed(copy_from, cfacts, packets):
        why = (f"its index calls every frame a keyframe, which {facts.codec} frames are not (the decoder says so): "
               "decoded from the start")  # fmt: skip
        return assemble_output(source, facts, edits, output, work, smart=False, audio_mode=audio_mode, note=why)
    # Matroska stores no decode times: after the demuxer's seek to a piece, its first packets have none (as
    # many as the B-frame delay), and the concat demuxer lets such packets through an outpoint. A piece must
    # be long enough for the next GOP's keyframe to have its decode time again.
    no_dts = cfacts.container in ("matroska", "webm")
    min_copy = 2 * reorder_delay(packets) + 1 if no_dts else 1
    pieces = plan_pieces(timeline, gops, reencode_all=not smart, intra=intra, min_copy_packets=min_copy)
    if smart and not any(p.copy for p in pieces):
        why = "every GOP holds generated frames" if len(gops) > 1 else one_gop_reason(packets)
        return assemble_output(source, facts, edits, output, work, smart=False, audio_mode=audio_mode, note=why)
    if smart and container_states_no_aspect(facts):
        # The copy's container states one aspect for every frame: what the re-encoded GOPs show is read from
        # the source (a broadcast switching between 4:3 and 16:9), refused as a whole re-encode refuses it.
        opening = [p.first_frame for p in pieces if not p.copy and p.end_frame > p.first_frame]
        check_keyframe_pictures(facts, [float(int(timeline.source_pts[f]) * cfacts.time_base) for f in opening])
    # A TS output's muxer puts no parameter sets before re-encoded keyframes once copied packets carried their
    # own: a receiver tuning in (an HLS segment) there could not decode until the next copied GOP.
    in_band = MUXERS.get(output.suffix.lower()) == "mpegts"
    choice = choose_encoder(
        cfacts, full=not smart, reorder=reorder_delay(packets), intra=intra, in_band_headers=in_band,
        keyint=None if smart else packets.keyframe_interval,
    )  # fmt: skip
    seg_muxer = copy_muxer(facts) if smart else _segment_muxer(output, facts)
    entries: list[_Entry] = []
    dts_ranges: list[tuple[int, int]] = []  # decode-time span of each piece on the output clock (smart cut)
    reencoded = 0

    def encode(piece: Piece, seg: Path) -> None:
        try:
            _encode_piece(source, piece, timeline, copy_from, cfacts, choice, seg, seg_muxer, work, clock)
        except MediaError as exc:
            if smart:  # a source frame not where the copy's packets say: decoded whole, from the start
                raise JoinCheckFailed(str(exc)) from None
            raise

    for n, piece in enumerate(pieces):
        if piece.copy:
            entries.append(_copy_entry(copy_from, cfacts, packets, piece))
            dts = packets.dts[piece.first_packet : piece.end_packet]
            dts_ranges.append((int(dts[0]) + piece.shift, int(dts[-1]) + piece.shift))
            continue
        seg = work / f"seg{n:04d}.{_ext(seg_muxer)}"
        encode(piece, seg)
        seg_start, seg_extradata, seg_tb = start_and_extradata(seg)
        if choice.headers == "identical" and not same_parameter_sets(seg_extradata, cfacts.extradata):
            # x264 settings did not reproduce the source's SPS/PPS: own parameter-set ids from here on.
            choice = choose_encoder(
                cfacts, full=False, own_ids=True, reorder=reorder_delay(packets), intra=intra, in_band_headers=in_band
            )
            encode(piece, seg)
            seg_start, seg_extradata, seg_tb = start_and_extradata(seg)
        if smart and (seg_tb / cfacts.time_base).denominator != 1:
            # The concat demuxer rescales each file's timestamps to the first file's clock: exact only when
            # the segment's ticks are whole numbers of the source's.
            raise JoinCheckFailed(f"re-encoded GOPs got time base {seg_tb}, the source has {cfacts.time_base}")
        entries.append(_Entry(seg, None, None, round_us(seg_start), int(timeline.pts[piece.out_first]), seg_tb))
        if smart:
            ratio = int(seg_tb / cfacts.time_base)
            seg_dts = read_packets(seg, 0, seg_tb).dts * ratio + int(timeline.pts[piece.out_first])
            dts_ranges.append((int(seg_dts[0]), int(seg_dts[-1])))
        reencoded += piece.frames_out
    if smart:
        # Re-encoded GOPs must decode in step with the copied ones (same B-frame delay), or the joins break.
        for (_, last), (first, _), piece in zip(dts_ranges, dts_ranges[1:], pieces[1:]):
            if first <= last:
                raise JoinCheckFailed(f"decode times overlap at the join before source frame {piece.first_frame}")
    lost_captions = captions_lost(copy_from, cfacts, timeline, pieces)
    lead = _lead_file(copy_from, cfacts, work) if smart and any(p.copy for p in pieces) else None
    if has_container_hdr10(facts) and lead is None and MUXERS.get(output.suffix.lower()) in HDR10_MUXERS:
        lead = hdr10_lead(entries[0].path, entries[0].time_base, facts, work)
    listing, offset_us = _write_concat(entries, cfacts, work, lead)
    mux_args = (listing, offset_us, source, facts, cfacts, timeline, output, work, audio_mode)
    try:
        muxed = _mux_checked(mux_args, source, output, facts.index)
    except MediaError as exc:
        if smart and not isinstance(exc, (AudioMoved, AudioChanges, OtherVideoWouldDrift, StreamNotHeld)):
            raise JoinCheckFailed(str(exc)) from None
        raise
    ofacts = probe_stream_facts(output, encoder_settings=False)
    if ofacts.rotation != facts.rotation:
        raise MediaError(f"{output.name} would be shown turned {ofacts.rotation}°, the source {facts.rotation}°")
    out_pts = read_packets(output, ofacts.index, ofacts.time_base).frame_pts
    check_timing(ofacts, out_pts, timeline, cfacts)
    check_start(output, ofacts, out_pts, source, facts, muxed.moved_s)
    if smart:
        check_joins(*_seekable(output, ofacts, work), out_pts, copy_from, cfacts, timeline, pieces)
    try:
        check_generated(output, timeline)
    except MediaError as exc:
        if smart:
            raise JoinCheckFailed(str(exc)) from None
        raise
    method = "smart cut" if smart else "full re-encode"
    details = [note] if note else []
    details.append(choice.note)
    dropped = [*muxed.dropped, *lost_captions, *hdr10_lost(facts, ofacts, output)]
    dropped += timecode_lost(facts, ofacts, output)
    return Assembly(method, "; ".join(details), timeline, pieces, reencoded, muxed.audio_note, dropped)


class AudioMoved(MediaError):
    """An audio stream that does not start where the source's did, even after a second mux: a whole re-encode
    of the video cannot mend it, so it is not a failed join (JoinCheckFailed)."""


def _mux_checked(mux_args: tuple, source: Path, output: Path, video_index: int) -> Muxed:
    """`mux_output`, then a check of where each audio stream starts against the picture, corrected once by
    a second mux where it moved. Encoders prime their output and containers signal that differently (MP4
    edit lists, Matroska codec delay): a rebuilt stream's first sample must be heard where the source's was.
    A copied stream must keep its packets' times against the video's: a container may read them back moved
    (Matroska takes Opus's codec delay off when it reads and does not put it back when it writes). AVI,
    which cannot hold a stream starting before another, is not checked for copied streams."""
    muxed = mux_output(*mux_args)
    audio_nudge, copy_nudge = _audio_moves(muxed, source, output, video_index)
    if not audio_nudge and not copy_nudge:
        return muxed
    muxed = mux_output(*mux_args, audio_nudge=audio_nudge, copy_nudge=copy_nudge)
    audio_left, copy_left = _audio_moves(muxed, source, output, video_index)
    left = {**audio_left, **copy_left}
    if left:
        idx = min(left)
        moved = left[idx]
        raise AudioMoved(
            f"audio stream {idx} of {source.name} would be {abs(moved) * 1000:.1f} ms "
            f"{'late' if moved > 0 else 'early'} against the picture in {output.name}, even after a correction"
        )
    return muxed


def _audio_moves(
    muxed: Muxed, source: Path, output: Path, video_index: int
) -> tuple[dict[int, float], dict[int, float]]:
    """How far (s) each rebuilt and each copied audio stream must move, by source index, for its sound to
    start where the source's did against the picture."""
    # The picture's first shown time in each file: a muxer may move every stream together, which keeps them
    # in step.
    muxer = MUXERS.get(output.suffix.lower())
    starts = [first_shown_time(path, index) for path, index in ((source, video_index), (output, muxed.video))]
    picture = None if starts[0] is None or starts[1] is None else starts[1] - starts[0]
    audio_nudge = {}
    for idx, (out_idx, want) in muxed.rebuilt.items():
        # AVI puts the picture on its frame clock (a WebM picture starting at 7 ms starts at zero there): the
        # sound goes with it.
        if (muxer in SHIFTING_MUXERS or muxer == "avi" or muxed.moved_s) and picture:
            want += picture
        got = first_decoded_time(output, out_idx)
        if abs(got - want) > AUDIO_START_TOLERANCE:
            audio_nudge[idx] = want - got
    copy_nudge: dict[int, float] = {}
    if not muxed.copied or muxer == "avi" or picture is None:
        return audio_nudge, copy_nudge
    for idx, out_idx in muxed.copied.items():
        want, got = packet_times(source, idx), packet_times(output, out_idx)
        if want is None or got is None or want[0].size != got[0].size:
            continue
        wanted, written = want[0], got[0]
        # Half a tick of the coarser clock that rounds; between two clocks, as much again as a rebuilt stream
        # may be off: the two files' times are rounded on their own clocks and the picture's start on two more
        # (Matroska's milliseconds rescaled into NUT's 1/44100 came out 0.508 ms off at the worst packet, and
        # every such splice failed). On one clock a packet a tick off is moved back (Opus in WebM kept to the
        # tick). A clock that counts whole packets (AVI's, for MP3 one tick of 24 ms a packet) rounds nothing:
        # taken for one that rounds, its half tick let a stream 8 ms off pass, and the move was counted in it.
        coarse = max(_rounding_tick(wanted, want[1]), _rounding_tick(written, got[1])) or float(min(want[1], got[1]))
        half_tick = coarse / 2 + (1e-6 if want[1] == got[1] else AUDIO_START_TOLERANCE)
        if np.any(np.abs(np.diff(wanted) - np.diff(written)) > coarse + AUDIO_START_TOLERANCE):
            # Packets cut anew (PCM from MXF's one per frame into MOV's chunks): only the first says where the
            # sound starts; packet n of one is not packet n of the other.
            wanted, written = wanted[:1], written[:1]
        moved = wanted + picture - written
        if np.all(np.abs(moved) <= half_tick):
            continue
        # In ticks of the rounding clock, the shift most packets need (a delay of half a tick rounds either way).
        ticks, counts = np.unique(np.round(moved / coarse).astype(np.int64), return_counts=True)
        copy_nudge[idx] = float(ticks[np.argmax(counts)] * coarse)  # 0: nothing puts it back; checked again
    return audio_nudge, copy_nudge


def _rounding_tick(times: np.ndarray, time_base: Fraction) -> float:
    """The tick (s) to which a stream's packet `times` are rounded on its clock (`time_base`: Matroska's
    millisecond); 0 where each packet is one tick after the last: such a clock counts packets (AVI's for MP3,
    24 ms a tick), and its times are exact."""
    tick = float(time_base)
    steps = np.diff(times)
    return 0.0 if steps.size and np.all(np.abs(steps - tick) < 1e-9) else tick


def _edits_on_packets(
    edits: list[Edit], info: VideoInfo, packets: PacketIndex, source: Path
) -> tuple[list[Edit], float, bool]:
    """The edits' frame numbers (a sequential decode's, as every manifest counts them) as numbers in the
    packet list the splice copies from; how much later the source's decoder times its frames than their
    packets (s: AVI's B-frames, which carry no presentation time, come out a frame late); and whether the
    two lists are the same frames. They differ where the decoder skips frames the packets list: a damaged
    frame, or the leading pictures of a stream cut inside a GOP. Each decoded frame is found among the packets
    by its time, relative to the first: of the alignments that match every frame, the one nearest the file's
    own clock (the copy a smart cut works from keeps it). MediaError when none does, or a replace row spans
    a frame that does not decode."""
    decoded = info.frame_times
    listed = packets.frame_pts.astype(np.float64) * float(packets.time_base)
    steps = np.diff(listed)
    tolerance = 0.5 * float(steps[steps > 0].min()) if (steps > 0).any() else 1e-3
    first_shown = float(decoded[0]) + info.start_time  # the first decoded frame, on the file's own clock
    found = None  # (|offset|, offset, packet index of each decoded frame)
    for first in range(min(4, listed.size)):  # the first packets may be frames that do not decode
        offset = float(listed[first]) - first_shown
        shown = decoded - decoded[0] + float(listed[first])
        at = np.minimum(np.searchsorted(listed, shown - tolerance), listed.size - 1)
        matched = np.all(np.abs(listed[at] - shown) <= tolerance) and np.all(np.diff(at) > 0)
        if matched and (found is None or abs(offset) < found[0]):
            found = (abs(offset), offset, at)
    if found is None:
        raise MediaError(
            f"the frames of {source} as decoded ({decoded.size}) cannot be matched with its packets "
            f"({listed.size}) by their times: it cannot be spliced frame-exactly"
        )
    _, offset, at = found
    same = at.size == listed.size and bool(np.all(at == np.arange(at.size)))
    moved = []
    for e in edits:
        start, end = int(at[e.start_frame]), int(at[e.end_frame])
        if e.mode == "replace" and end - start != e.end_frame - e.start_frame:
            raise MediaError(
                f"row {e.pair_id}: between frames {e.start_frame} and {e.end_frame} of {source} lies a frame that "
                "does not decode (a damaged frame); give it a row of its own (`detect --mode damage` writes one)"
            )
        moved.append(replace(e, start_frame=start, end_frame=end))
    return moved, -offset, same


def _ext(muxer: str) -> str:
    return {"matroska": "mkv"}.get(muxer or "", muxer or "mkv")


def _segment_muxer(output: Path, facts: StreamFacts) -> str:
    """Container for a whole-file re-encode: one that holds the codec and whose packet format the output's
    muxer takes as is (MP4 and Matroska store H.264 as AVCC, AVI and MPEG-TS as Annex B; NUT keeps the
    packets of every other codec as they are)."""
    if facts.codec not in ("h264", "hevc"):
        return copy_muxer(facts)
    muxer = MUXERS.get(output.suffix.lower())
    if muxer in ("mp4", "mov", "avi"):
        return muxer
    if muxer == "mpegts":
        # MOV on the stream's own clock (track_timescale_args): Matroska's millisecond clock moved the frames
        # of a 90 kHz stream at 24 fps by a third of a millisecond, and the output failed its timing check.
        return "mov"
    return "matroska"


def _check_no_hidden_frames(source: Path, facts: StreamFacts) -> None:
    """JoinCheckFailed where an MP4/MOV edit list hides frames after the picture's start (two edits with a
    cut between them, or frames after the last edit): the copied GOPs would show them (a source of 65 frames
    shown came back with 85 and the copied audio 0.6 s off, exit 0). The decoder's frames, re-encoded whole,
    are the ones the source shows."""
    if "mov" not in facts.format_name.split(","):  # only the MOV demuxer marks frames an edit list hides
        return
    packets = read_packets(source, facts.index, facts.time_base)
    hidden = packets.hidden_after_start
    if hidden.size:
        at = float(int(packets.pts[hidden[0]]) * facts.time_base)
        raise JoinCheckFailed(
            f"its edit list hides {hidden.size} frames after its start (from {at:.3f} s), which copied packets "
            "would show"
        )


def _video_only(source: Path, facts: StreamFacts, work: Path, name: str = "video") -> tuple[Path, StreamFacts]:
    """The file GOPs are copied from. The concat demuxer ends a piece at the first packet of *any* stream past
    its outpoint, so interleaved audio would cut video short: copy from a video-only remux (`name`.ext)."""
    muxer = copy_muxer(facts)
    if facts.nb_streams == 1 and muxer == facts.container:
        return source, facts
    target = work / f"{name}.{_ext(muxer)}"
    # -copyts: the copy keeps the source's timestamps (by default ffmpeg would move them by the file's start
    # time, which audio priming can make negative).
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-copyts"]
    if "mpeg" in facts.format_name.split(","):
        args += ["-fflags", "+genpts"]  # a program stream (VOB) leaves the time out of frames that share a PES
    args += ["-i", str(source), "-map", f"0:{facts.index}", "-c", "copy"]
    args += track_timescale_args(muxer, facts.time_base)
    try:
        run_tool([*args, "-f", muxer, str(target)], what=f"cannot copy the video stream of {source}")
    except MediaError as exc:
        # Packets without timestamps (B-frames in AVI, the last frames of some MXF files) cannot be copied
        # through another container: the caller re-encodes the whole video instead.
        raise JoinCheckFailed(str(exc)) from None
    # The copy has the source's packets; its encoder settings are the source's (not read twice).
    return target, replace(probe_stream_facts(target, encoder_settings=False), x264_options=facts.x264_options)


def _seekable(output: Path, ofacts: StreamFacts, work: Path) -> tuple[Path, StreamFacts]:
    """The output as the join check decodes it, from a seek to each re-encoded piece. MPEG-TS and program
    streams have no index: a seek lands on any packet, not a keyframe, and the decoder's complaints about the
    frames before the next keyframe failed every smart cut into such a file (an MP4 source spliced into .ts).
    Their video is checked in a copy that has one (the same packets, in MOV on the stream's clock)."""
    if not {"mpegts", "mpeg"} & set(ofacts.format_name.split(",")):
        return output, ofacts
    return _video_only(output, ofacts, work, name="joins")


def _lead_file(copy_from: Path, cfacts: StreamFacts, work: Path) -> Path:
    """The file whose codec parameters the joined stream takes (see _write_concat). Matroska stores no decode
    times, so the first packets of an H.264/HEVC stream with B-frames have none, and the concat demuxer lets
    packets without one through an outpoint: their extradata comes from a one-frame MP4 copy instead."""
    if cfacts.codec not in ("h264", "hevc") or cfacts.container not in ("matroska", "webm"):
        return copy_from
    lead = work / "lead.mp4"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(copy_from), "-map", f"0:{cfacts.index}", "-c", "copy"]
    args += ["-frames:v", "1", *track_timescale_args("mp4", cfacts.time_base), "-f", "mp4", str(lead)]
    try:
        run_tool(args, what=f"cannot copy the parameter sets of {copy_from}")
    except MediaError as exc:
        raise JoinCheckFailed(str(exc)) from None
    return lead


@dataclass(frozen=True)
class _Entry:
    """One concat entry: a file (window), and the output time of its first planned frame."""

    path: Path
    inpoint_us: int | None
    outpoint_us: int | None
    file_start_us: int  # where the concat demuxer considers the file to start (inpoint or start_time)
    out_pts: int  # ticks the file's reference point must land on (shift for copies, first pts for segments)
    time_base: Fraction

    def start_us(self, tb: Fraction) -> int:
        return self.file_start_us + round_us(Fraction(self.out_pts) * tb)


def _copy_entry(path: Path, cfacts: StreamFacts, packets: PacketIndex, piece: Piece) -> _Entry:
    tb = cfacts.time_base
    first = piece.first_packet
    if first == 0:
        inpoint, file_start = None, round_us(cfacts.format_start)
    else:
        # Halfway to the next keyframe (in whole ticks of the stream): the demuxer seeks to the last keyframe
        # at or before it, which is this one, whatever its index makes of a tick. At the keyframe's own time
        # (rounded up to the microsecond) a 90 kHz stream at 23.976 fps, whose times are no whole
        # microseconds, sought the keyframe before it: a GOP joined twice.
        key = int(packets.pts[first])
        keys = packets.pts[packets.key & (packets.pts > key)]
        half = (int(keys.min() if keys.size else packets.pts.max()) - key) // 2
        # (With no whole tick to spare, the keyframe's own time rounded up, as the demuxer then finds it.)
        inpoint = round_us(Fraction(key + half) * tb) if half else math.ceil(Fraction(key) * tb * 1_000_000)
        file_start = inpoint
    outpoint = None
    if piece.end_packet < packets.count:
        # The demuxer stops at the first packet whose dts reaches the outpoint: the next GOP's keyframe.
        last = Fraction(int(packets.dts[piece.end_packet - 1])) * tb * 1_000_000
        nxt = Fraction(int(packets.dts[piece.end_packet])) * tb * 1_000_000
        outpoint = math.floor(nxt)
        if outpoint <= last:
            raise JoinCheckFailed(f"packets at {float(nxt) / 1e6:.6f}s are too close together to cut between")
    return _Entry(path, inpoint, outpoint, file_start, piece.shift, tb)


def _write_concat(entries: list[_Entry], cfacts: StreamFacts, work: Path, lead: Path | None) -> tuple[Path, int]:
    """The concat script, and the offset (µs) the final mux must add to its timestamps.

    The demuxer starts its first file at 0 and each next one `duration` later, and adds (start - file's
    inpoint) to the file's timestamps: durations set to the gaps between the planned start times make
    every file land exactly on its planned time."""
    tb = cfacts.time_base
    starts = [e.start_us(tb) for e in entries]
    if any(b < a for a, b in zip(starts, starts[1:])):
        raise JoinCheckFailed("pieces would overlap in time")
    lines = ["ffconcat version 1.0"]
    offset = starts[0]
    if lead is not None:
        # No packets (every dts is past an outpoint far in the past), but its codec parameters and extradata
        # become the joined stream's: the source's SPS/PPS even when the first GOP is re-encoded.
        lead_duration = max(starts[0], 0)
        lines += [f"file '{_quote(lead)}'", "outpoint -100000", f"duration {seconds_text(lead_duration)}"]
        offset = starts[0] - lead_duration
    for n, entry in enumerate(entries):
        lines.append(f"file '{_quote(entry.path)}'")
        if entry.inpoint_us is not None:
            lines.append(f"inpoint {seconds_text(entry.inpoint_us)}")
        if entry.outpoint_us is not None:
            lines.append(f"outpoint {seconds_text(entry.outpoint_us)}")
        if n + 1 < len(entries):
            lines.append(f"duration {seconds_text(starts[n + 1] - starts[n])}")
    path = work / "concat.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, offset


def _quote(path: Path) -> str:
    return str(Path(path).resolve()).replace("'", "'\\''")


def _encode_piece(
    source: Path,
    piece: Piece,
    timeline: Timeline,
    copy_from: Path,
    cfacts: StreamFacts,
    choice: EncoderChoice,
    seg: Path,
    muxer: str,
    work: Path,
    clock: float = 0.0,
) -> None:
    """Decode the piece's source frames, swap in and insert generated frames, encode. `clock`: how much later
    the decoder times frames than their packets (s)."""
    tb = cfacts.time_base
    lo, hi = piece.first_frame, piece.end_frame
    t = timeline.source_pts
    seek = None
    if lo > 0:
        seek = float(Fraction(int(t[lo - 1]) + int(t[lo]), 2) * tb) - cfacts.format_start
    decoder = decode_range(copy_from, cfacts, seek, hi - lo, work) if hi > lo else None
    converters: dict[int, object] = {}

    steps = np.diff(t[lo:hi]) if hi - lo > 1 else np.diff(t)
    tolerance = float(Fraction(int(steps[steps > 0].min()) if (steps > 0).any() else 1, 2) * tb)

    def source_frame(source_frames, s: int) -> bytes:
        """The decoded frame shown at source frame `s`'s time: frames before it (replaced or dropped in
        between) are read and passed over; a frame of a later time means the decoder skipped frame `s`."""
        at = float(int(t[s]) * tb) - cfacts.format_start  # as a player counts it, from the start
        want = float(int(t[s]) * tb) + clock
        while True:
            try:
                shown, frame = next(source_frames)
            except StopIteration:
                raise MediaError(f"the decode of {source} ended before its frame at {at:.3f} s") from None
            if shown is None or abs(shown - want) <= tolerance:
                return frame  # placed by its time (by its count where the decoder gave no time)
            if shown > want:
                raise MediaError(
                    f"the frame of {source} at {at:.3f} s does not decode at its time (the decoder skips it, as "
                    "it does a damaged frame, or gives it another time); give it a row of its own (`detect --mode "
                    "damage` writes one for a damaged frame) or repair the file"
                )

    def frames():
        source_frames = iter(decoder) if decoder is not None else iter(())
        generated: dict[int, object] = {}
        try:
            for j in range(piece.out_first, piece.out_end):
                s = int(timeline.src[j])
                if s >= 0:
                    yield source_frame(source_frames, s)
                else:
                    e = int(timeline.edit[j])
                    if e not in generated:
                        pipe = convert_images(timeline.edits[e].frames, cfacts, work)
                        converters[e] = pipe
                        generated[e] = iter(pipe)
                    yield next(generated[e])  # type: ignore[call-overload]
        finally:
            if decoder is not None:
                decoder.close()
            for pipe in converters.values():
                pipe.close()  # type: ignore[attr-defined]

    pts = timeline.pts[piece.out_first : piece.out_end] - timeline.pts[piece.out_first]
    origin = int(timeline.pts[piece.out_first])
    encode_frames(frames(), pts.tolist(), cfacts, choice, seg, muxer, work, origin=origin)
