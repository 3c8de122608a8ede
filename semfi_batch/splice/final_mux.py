"""The last step of a splice: the joined video (the concat script of its pieces) muxed with every other
stream of the source (audio copied, or rebuilt where time was inserted or removed), its chapters (moved with
the shifts), tags, timecode and colour tags, into the container the output's name asks for."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from semfi_batch.errors import MediaError
from semfi_batch.media.codecs import KEEP_TAG
from semfi_batch.media.encode import StreamFacts
from semfi_batch.media.matroska import frame_duration_ns, set_default_duration
from semfi_batch.media.side_alpha import ALPHA_MODE_TAG
from semfi_batch.media.stream_facts import colour_args
from semfi_batch.media.tools import run_tool, tool_path
from semfi_batch.splice.audio import (
    audio_encoding,
    audio_graph,
    check_one_audio_format,
    copies_into,
    decoded_end_time,
    first_decoded_time,
    priming_samples,
)
from semfi_batch.splice.timeline import Timeline

MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
          ".mxf": "mxf", ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".m2t": "mpegts", ".trp": "mpegts",
          ".tp": "mpegts", ".mpg": "vob", ".mpeg": "vob", ".vob": "vob", ".nut": "nut", ".dv": "dv"}  # fmt: skip
# Bitstream filters that turn length-prefixed H.264/HEVC (MOV, Matroska) into start codes with the parameter
# sets in band (Annex B), which MXF needs; a stream already in that form passes through unchanged.
ANNEX_B_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
# Muxers whose clock is the frame period: the joined video is handed over on that clock.
FRAME_CLOCK_MUXERS = ("mxf", "mxf_d10", "mxf_opatom", "avi")
# Muxers that move every stream later together where a decode time would be negative (the lead of B-frames:
# H.264 or HEVC from MP4 or Matroska decodes its first frame before zero): the picture starts later than the
# source's, in step with every other stream, so its start is checked against the sound, not the clock.
SHIFTING_MUXERS = ("mpegts", "nut")
# Formats whose clock starts anywhere (MPEG-TS, program streams: a multiplexer's delay, a broadcast's clock):
# nothing before their first packet belongs to the programme. Spliced into MP4 or MOV, every stream is moved
# back together so that the earliest starts at zero (kept, the 1.4 s before a TS's first packet became an
# empty edit: a black head and a longer programme in every editor). Matroska, NUT and AVI keep the clock as
# before: no empty edit there, and Matroska's millisecond clock could not place AAC's played priming near zero.
FREE_CLOCK_FORMATS = ("mpegts", "mpeg")
# What ffmpeg says where a muxer or an encoder needs `-strict experimental` to write what it was given.
EXPERIMENTAL_ASKED = "add '-strict -2'"
# Muxers that write a timecode given as `-timecode` (QuickTime tmcd track, MXF material package).
TIMECODE_MUXERS = ("mov", "mp4", "mxf", "mxf_opatom", "gxf", "matroska")


def timecode_lost(facts: StreamFacts, ofacts: StreamFacts, output: Path) -> list[str]:
    """The summary's line for a start timecode of the source that `output` does not read back (MPEG-TS and AVI
    hold none that ffmpeg writes); nothing where it does."""
    if not facts.timecode or ofacts.timecode == facts.timecode:
        return []
    return [f"the start timecode {facts.timecode}: a {output.suffix} output holds none"]


def container_for_name(path: Path) -> bool:
    """Whether ffmpeg picks a container for an output named like `path` (by its extension): asked by writing
    one tiny frame to such a name in a scratch folder, before a splice that would fail only at its last step."""
    with tempfile.TemporaryDirectory(prefix="semfi-name-") as scratch:
        probe = Path(scratch) / f"probe{path.suffix}"
        args = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=s=16x16:d=0.04", "-frames:v", "1"]
        try:
            run_tool([*args, str(probe)], what="no container")
        except MediaError:
            return False
    return True


def seconds_text(value: int) -> str:
    """Microseconds as ffmpeg reads a time in seconds (exact: no float on the way)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 1_000_000}.{value % 1_000_000:06d}"


def _source_streams(source: Path) -> tuple[list[dict], list[dict]]:
    out = run_tool(
        ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_chapters", str(source)],
        what=f"cannot read the streams of {source}",
    )
    meta = json.loads(out or b"{}")
    return meta.get("streams", []), meta.get("chapters", [])


@dataclass
class Muxed:
    """What `mux_output` wrote besides the video: the audio note for the summary, the streams left out, each
    rebuilt audio stream's (output index, time its first sample must be heard at) and each copied audio
    stream's output index, both by source index; the video's output index; how far (s) every stream was
    moved on the clock (`origin_move_us`)."""

    audio_note: str
    dropped: list[str]
    rebuilt: dict[int, tuple[int, float]] = field(default_factory=dict)
    copied: dict[int, int] = field(default_factory=dict)
    video: int = 0
    moved_s: float = 0.0


def origin_move_us(facts: StreamFacts, muxer: str | None) -> int:
    """How far (µs) every stream of a source in a FREE_CLOCK_FORMATS container is moved on the clock in an MP4
    or MOV output, so that its earliest stream starts at zero (where their edit lists hide encoder priming
    exactly); 0 where the clock is kept."""
    if muxer not in ("mp4", "mov") or not set(facts.format_name.split(",")) & set(FREE_CLOCK_FORMATS):
        return 0
    return -round(facts.format_start * 1_000_000)


def mux_output(
    listing: Path,
    offset_us: int,
    source: Path,
    facts: StreamFacts,
    cfacts: StreamFacts,
    timeline: Timeline,
    output: Path,
    work: Path,
    audio_mode: str,
    audio_nudge: dict[int, float] | None = None,
    copy_nudge: dict[int, float] | None = None,
) -> Muxed:
    """Join the video pieces and carry the source's other streams, chapters and tags into `output`.
    `audio_nudge` moves rebuilt audio streams (s), `copy_nudge` copied ones (s), both
    by source index: the corrections join.py measures after a first mux."""
    streams, chapters = _source_streams(source)
    tb = cfacts.time_base
    shifts = [(float(Fraction(s.at) * tb), float(Fraction(s.ticks) * tb)) for s in timeline.shifts]
    args = [tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y", "-copyts"]
    if offset_us:
        args += ["-itsoffset", seconds_text(offset_us)]
    args += ["-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(listing), "-i", str(source)]
    chapter_input = 1
    if shifts and chapters:
        args += ["-f", "ffmetadata", "-i", str(_shifted_chapters(chapters, shifts, work))]
        chapter_input = 2
    # A copied stream to move is read from the source opened again with -itsoffset (seconds, whatever clock the
    # muxer keeps): one more input per distinct move. ffmpeg rounds that offset to the stream's own ticks: a
    # move that is no whole number of them (AVI counts MP3 in packets of 24 ms: 80 ms became 72, the sound
    # 8 ms off its picture) is made by a bitstream filter instead, on a clock of one sample (`_sample_move`).
    by_index = {int(s["index"]): s for s in streams}
    sample_moves = {i: v for i, v in (copy_nudge or {}).items() if v and not _whole_ticks(v, by_index[i])}
    copy_nudge = {i: v for i, v in (copy_nudge or {}).items() if i not in sample_moves}
    moves = sorted({value for value in copy_nudge.values() if value})
    moved_input = {value: chapter_input + 1 + n for n, value in enumerate(moves)}
    for value in moves:
        args += ["-itsoffset", f"{value:.9f}", "-i", str(source)]
    maps: list[str] = []
    graph: list[str] = []
    dropped: list[str] = []
    chapter_tracks: list[str] = []
    audio_notes: list[str] = []
    rebuilt: dict[int, tuple[int, float]] = {}
    copied: dict[int, int] = {}
    subtitles: dict[int, int] = {}  # copied subtitle streams' output indices, by source index
    video = 0
    attached: list[tuple[Path, dict]] = []  # Matroska attachments that ffmpeg reads as pictures
    out = 0
    muxer = MUXERS.get(output.suffix.lower())
    moved_us = origin_move_us(facts, muxer)
    source_muxer = MUXERS.get(source.suffix.lower())
    for s in streams:
        idx, kind = int(s["index"]), s.get("codec_type")
        if idx == facts.index:
            video = out
            maps += ["-map", "0:v:0", f"-c:{out}", "copy"]
            if facts.decoder:  # the pieces' alpha rides beside their pictures: flag it as the source did
                maps += [f"-metadata:s:{out}", f"{ALPHA_MODE_TAG}=1"]
            bsfs = []
            # MOV names DVCPRO HD by the clock the stream is handed on (1080i50 is dvh5 on a clock of 1/25,
            # dvh6 on any other; 720p50 dvhq or dvhp), whatever -tag says: DV goes on its frame clock too.
            dv_in_mov = facts.codec == "dvvideo" and muxer in ("mov", "mp4")
            if (muxer in FRAME_CLOCK_MUXERS or dv_in_mov) and facts.frame_rate:
                # MXF and AVI count time in frame periods (29.97: 1001/30000); the pieces' clock is a MOV
                # timescale, which AVI would take for its frame rate (DV NTSC came back at 59.94 frames/s).
                bsfs.append(f"setts=time_base={1 / facts.frame_rate}")
            if muxer in ("mxf", "mxf_d10", "mxf_opatom") and facts.codec in ANNEX_B_FILTERS:
                # MXF reads the profile from in-band parameter sets: the pieces come from MOV, length-prefixed
                # ("h264 profile not supported" for an AVC-Intra source whose MXF ffmpeg itself wrote).
                bsfs.append(ANNEX_B_FILTERS[facts.codec])
            if muxer == "mpegts" and facts.codec == "mpeg4":
                # MPEG-TS keeps no codec headers beside the stream, and MPEG-4 Part 2 encoded into MOV keeps its
                # VOL header there only: each keyframe carries it (a whole re-encode of an XviD AVI into .ts
                # came out with no picture size, which no decoder opens). Packets that carry it are left as
                # they are.
                bsfs.append("dump_extra=freq=keyframe")
            if bsfs:
                maps += [f"-bsf:{out}", ",".join(bsfs)]
        elif kind == "audio" and (shifts or not _copy_held(source, idx, muxer, source_muxer)):
            # Rebuilt where time is inserted, and where the output's container cannot hold the stream as it is
            # (PCM in MPEG-TS, which ffmpeg writes as a data stream no player plays): in a codec it holds.
            check_one_audio_format(source, idx)
            first = first_decoded_time(source, idx)
            s["first_sample_s"] = first  # where the source's samples are counted from (the cuts)
            s["placed_at_s"] = first + (audio_nudge or {}).get(idx, 0.0)  # where the rebuilt stream is put
            rate, channels = int(s.get("sample_rate") or 48000), int(s.get("channels") or 2)
            held = 0  # samples of silence before the stream's first (AVI)
            if muxer == "avi":
                # AVI gives a stream no start time: its first sample sounds at zero, wherever it was put. It is
                # placed by its samples instead: those that would sound before zero are left out, silence fills
                # the time up to a later start (put at 6.5 ms before the picture, Opus from WebM rebuilt as AAC
                # came out 6.5 ms late, exit 0).
                held = round(float(s["placed_at_s"]) * rate)
                s["placed_at_s"] = 0.0
            # The source's time heard at the rebuilt stream's first decoded sample, as `_audio_moves` checks it.
            rebuilt[idx] = (out, first - held / rate)
            s["end_s"] = decoded_end_time(source, idx)  # time inserted after it moves nothing of the stream
            encoding = audio_encoding(s, muxer, MUXERS.get(source.suffix.lower()))
            options = tuple(encoding.args("a"))
            # Measured where the stream starts (MP4 hides the priming only at zero), clamped at zero as before;
            # the same on a second mux, so that the correction measured on the first still fits.
            start = round(max(first + moved_us / 1_000_000, 0.0), 6)
            lead = 0
            if muxer and not encoding.lossless:
                lead = priming_samples(encoding.encoder, rate, channels, options, muxer, start)
            label, note = audio_graph(s, shifts, audio_mode, graph, lead - held)
            maps += ["-map", f"[{label}]", f"-c:{out}", encoding.encoder, *encoding.args(str(out))]
            maps += [f"-disposition:{out}", _disposition(s)]
            audio_notes += [note] if shifts else []
            audio_notes += [encoding.note] if encoding.note else []
        elif kind == "video" and muxer == "matroska" and _matroska_picture(s):
            attached.append(_attachment_file(source, s, work))
            continue
        elif kind == "video" and shifts and not (s.get("disposition") or {}).get("attached_pic"):
            raise OtherVideoWouldDrift(
                f"{source.name} has another video stream (stream {idx}, {s.get('codec_name', '?')}; another "
                "programme of a broadcast, or a second angle): it would not take the time inserted, and it and the "
                "sound after each insert would fall apart; splice a copy without it (ffmpeg -i SRC -map 0 -map "
                f"-0:{idx} -c copy, or -map 0:p:N for one programme of a TS)"
            )
        elif kind in ("audio", "video", "subtitle", "attachment"):
            moved = (copy_nudge or {}).get(idx) if kind == "audio" else None
            maps += ["-map", f"{moved_input[moved] if moved else 1}:{idx}", f"-c:{out}", "copy"]
            if kind == "audio" and idx in sample_moves:
                maps += [f"-bsf:{out}", _sample_move(sample_moves[idx], s)]
            if kind == "subtitle" and shifts:
                maps += [f"-bsf:{out}", _shift_bsf(shifts)]
            if kind == "audio":
                copied[idx] = out
            if kind == "subtitle":
                subtitles[idx] = out
        elif kind == "data" and s.get("codec_tag_string") == "tmcd" and facts.timecode and muxer in TIMECODE_MUXERS:
            continue  # written anew from the start timecode (-timecode below)
        elif _chapter_track(s) and chapters:
            chapter_tracks.append(f"stream {idx} ({kind}, {s.get('codec_name', '?')}: the chapters' titles)")
            continue  # what it holds is the chapters, written anew (-map_chapters below); checked after the mux
        else:
            dropped.append(f"stream {idx} ({kind}, {s.get('codec_name', '?')})")
            continue
        if f"-disposition:{out}" not in maps:  # the source's flags (default, attached picture, ...), not the muxer's
            maps += [f"-disposition:{out}", _disposition(s)]
        maps += [f"-map_metadata:s:{out}", f"1:s:{idx}"]
        out += 1
    if graph:
        script = work / "audio.txt"
        script.write_text(";\n".join(graph))
        args += ["-filter_complex_script", str(script)]
    args += maps + ["-map_metadata", "1", "-map_chapters", str(chapter_input)]
    for n, (path, tags) in enumerate(attached):
        # ffmpeg copies such a picture as a one-frame video track: attached again, as the source had it.
        args += ["-attach", str(path)]
        for key in ("mimetype", "filename"):  # attached files follow every mapped stream
            args += [f"-metadata:s:{out + n}", f"{key}={tags[key]}"] if key in tags else []
    if facts.rotation:
        # ffmpeg's rotate tag counts counterclockwise, as ffprobe's rotation does; ours counts clockwise (the
        # source's 90° clockwise display came back turned the other way, 180° off).
        args += ["-metadata:s:v:0", f"rotate={-facts.rotation % 360}"]
    iso_source = "mov" in facts.format_name.split(",")
    if facts.codec_tag and (muxer == "avi" or (facts.codec in KEEP_TAG and muxer in ("mov", "mp4") and iso_source)):
        # The source's four-character code (DIVX, MP43, hvc1): players pick decoders by it. Set here, on the
        # copy, because the intermediate MOV segments may not accept the AVI tags. An AVI tag is none of MP4's
        # (FMP4, XVID, DIVX, DX50: "Tag XVID incompatible with output codec", and no MPEG-4 AVI spliced into
        # .mp4): there the muxer writes its own (mp4v).
        args += ["-tag:v:0", facts.codec_tag]
    timecode = facts.timecode if muxer in TIMECODE_MUXERS else None
    if timecode:
        # The tmcd track (QuickTime) or the material package timecode (MXF) is written anew from the start
        # timecode; the source's own timecode data stream is not copied.
        args += ["-timecode", timecode]
    # The source's colour tags on the joined stream, whichever file the concat took its parameters from.
    colour = colour_args(facts)
    args += [f"{opt}:v:0" if opt.startswith("-") else opt for opt in colour]
    field_order = next((s.get("field_order") for s in streams if int(s["index"]) == facts.index), None)
    if field_order in ("progressive", "tt", "bb", "tb", "bt"):
        args += ["-field_order:v:0", field_order]  # the container's flag (MOV fiel, Matroska FieldOrder)
    if muxer == "avi" or (muxer == "mpegts" and graph):
        # AVI has no timestamps to shift and MPEG-TS would add its own delay: priming of re-encoded audio
        # must not move the video.
        args += ["-avoid_negative_ts", "disabled"]
    if muxer == "mpegts":
        args += ["-muxdelay", "0", "-muxpreload", "0"]
    if moved_us:
        args += ["-output_ts_offset", seconds_text(moved_us)]
    if muxer in ("mp4", "mov") and tb.numerator == 1:
        args += ["-video_track_timescale", str(tb.denominator)]
        if moved_us:
            # Edit lists count in the movie's timescale (milliseconds by default): a stream moved to start just
            # after zero is placed there to the tick, not to the millisecond.
            args += ["-movie_timescale", str(tb.denominator)]
    if muxer in ("matroska", "webm"):
        # Audio may start before zero: re-encoded audio's priming, or a copied stream's (AAC from MP4, Opus,
        # whose codec delay the demuxer takes off). By default the muxer would move every stream later to keep
        # it at or after zero, and the video would drift from the sound.
        args += ["-avoid_negative_ts", "disabled"]
    if muxer:
        args += ["-f", muxer]
    log = work / "mux.log"
    code = _write(args, output, log)
    if code != 0 and EXPERIMENTAL_ASKED in log.read_text(errors="replace"):
        # Some codecs go into some containers (FLAC in MP4), and some encoders run (TrueHD, DTS), only where
        # ffmpeg is told that its experimental support will do: it says so at once, before writing a packet.
        code = _write([*args, "-strict", "experimental"], output, log)
    if code != 0:
        raise MediaError(f"cannot write {output.name}: {_tail(log, muxer)}")
    if muxer in ("matroska", "webm") and facts.constant_rate:
        set_default_duration(output, video + 1, frame_duration_ns(facts.frame_rate))  # see media/matroska.py
    written, written_chapters = _source_streams(output)
    if chapter_tracks and len(written_chapters) < len(chapters):
        dropped += chapter_tracks  # the output's container holds no chapters (MPEG-TS): they are lost
    kept = {facts.index: (video, "video")}
    kept.update({idx: (out, "subtitle") for idx, out in subtitles.items()})
    kept.update({idx: (out, "audio") for idx, out in copied.items()})
    kept.update({idx: (out, "audio") for idx, (out, _) in rebuilt.items()})
    _check_streams_kept(output, written, kept, streams)
    if not rebuilt:
        note = "audio copied" if any(s.get("codec_type") == "audio" for s in streams) else "no audio"
    else:
        note = "; ".join(audio_notes) or "no audio"
    return Muxed(note, dropped, rebuilt, copied, video, moved_us / 1_000_000)


def _copy_held(source: Path, index: int, muxer: str | None, source_muxer: str | None) -> bool:
    """Whether audio stream `index` of `source`, copied as it is, is held as audio by the output's `muxer`
    (its own container's always is)."""
    return not muxer or muxer == source_muxer or copies_into(source, index, muxer)


def _check_streams_kept(
    output: Path, written_streams: list[dict], kept: dict[int, tuple[int, str]], streams: list[dict]
) -> None:
    """Every video, audio and subtitle stream mapped into `output` (output index and kind, by source index)
    reads back from it (`written_streams`, as ffprobe lists them) as what it was: a muxer may take a codec it
    cannot hold and write it as a data stream, without a word (PCM, ProRes, FFV1 or text subtitles in
    MPEG-TS, where no codec that holds the source's as it is could be written in its place)."""
    written = {int(s["index"]): s.get("codec_type") or "nothing" for s in written_streams}
    codecs = {int(s["index"]): s.get("codec_name", "?") for s in streams}
    for idx, (out, kind) in kept.items():
        if written.get(out) != kind:
            raise StreamNotHeld(
                f"{output.name} cannot hold the source's {codecs.get(idx)} {kind} (stream {idx}): it came out as "
                f"{written.get(out, 'nothing')}, which no player plays; write the output in the source's container"
            )


def _write(args: list[str], output: Path, log: Path) -> int:
    """Run the ffmpeg command `args` writing `output`, its messages to `log`; its exit status."""
    with open(log, "wb") as err:
        return subprocess.run([*args, str(output)], stdout=subprocess.DEVNULL, stderr=err, check=False).returncode


class StreamNotHeld(MediaError):
    """A video or audio stream the output's container cannot hold as what it is: a whole re-encode of the video
    in its own codec cannot mend it, so it is not a failed join."""


class OtherVideoWouldDrift(MediaError):
    """A source with a second video stream (not a cover picture), spliced with inserted time: copied as it is,
    it would keep its old timing while the picture and the sound grow. A whole re-encode of the first video
    cannot mend it, so it is not a failed join."""


def _matroska_picture(stream: dict) -> bool:
    """Whether a source stream is a Matroska attachment (an image file), which ffmpeg reads as a video stream
    holding one attached picture."""
    tags = {k.lower(): v for k, v in (stream.get("tags") or {}).items()}
    return bool((stream.get("disposition") or {}).get("attached_pic")) and "mimetype" in tags


def _chapter_track(stream: dict) -> bool:
    """Whether a source stream is a QuickTime chapter track (MP4, MOV): ffmpeg reads its text samples as the
    file's chapters and shows the track itself as a data stream of binary data with the tag "text" (a text
    track that is not the chapters' is read as a subtitle stream)."""
    return (
        stream.get("codec_type") == "data"
        and stream.get("codec_name") == "bin_data"
        and stream.get("codec_tag_string") == "text"
    )


def _attachment_file(source: Path, stream: dict, work: Path) -> tuple[Path, dict]:
    """The attached file's bytes (its one packet) written to `work`, with its tags (lower-case keys)."""
    tags = {k.lower(): v for k, v in (stream.get("tags") or {}).items()}
    path = work / f"attachment{stream['index']}"
    run_tool(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-map", f"0:{stream['index']}", "-c", "copy",
         "-frames:v", "1", "-update", "1", "-f", "image2", str(path)],
        what=f"cannot read attachment {tags.get('filename', stream['index'])} of {source}",
    )  # fmt: skip
    return path, tags


def _tail(path: Path, muxer: str | None) -> str:
    """The reason in ffmpeg's log: a full disk first; else what the output's muxer said ("[webm @ 0x...] Only
    VP8 or VP9 ... are supported"), which the closing lines ("Error initializing output stream") leave out;
    else the last line."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    full = [ln for ln in lines if "No space left" in ln]
    said = [ln.split("]", 1)[1].strip() for ln in lines if muxer and ln.startswith(f"[{muxer} @ 0x")]
    return (full or said or lines or ["no error output"])[0 if full or said else -1]


def _whole_ticks(seconds: float, stream: dict) -> bool:
    """Whether `seconds` is a whole number of ticks of `stream`'s clock (ffprobe's time_base)."""
    ticks = seconds / float(Fraction(stream.get("time_base") or "1/1000000"))
    return abs(ticks - round(ticks)) < 1e-6


def _sample_move(seconds: float, stream: dict) -> str:
    """A bitstream filter moving a copied audio stream's packets `seconds` later (earlier where negative), to the
    sample: its times put on a clock of one sample, then moved by a whole number of samples."""
    rate = int(stream.get("sample_rate") or 48000)
    return f"setts=time_base=1/{rate},setts=ts=TS{round(seconds * rate):+d}"


def _disposition(stream: dict) -> str:
    flags = [k for k, v in (stream.get("disposition") or {}).items() if v == 1]
    return "+".join(flags) if flags else "0"


def _shift_bsf(shifts: list[tuple[float, float]]) -> str:
    """A bitstream filter moving each subtitle cue as `_shifted_chapters` moves a chapter: its start by the time
    inserted at or before it, its end by the time inserted at or before the end. A cue shown over an insert
    point lasts longer by the time inserted inside it (moved by its start alone, it vanished before the
    pictures it was shown over)."""
    moved = "".join(f"+if(gte(PTS*TB,{at:.6f}),{d:.6f}/TB,0)" for at, d in shifts)
    inside = "".join(f"+if(lt(PTS*TB,{at:.6f})*gte((PTS+DURATION)*TB,{at:.6f}),{d:.6f}/TB,0)" for at, d in shifts)
    return f"setts=ts='PTS{moved}':duration='max(DURATION{inside},0)'"


def _shifted_chapters(chapters: list[dict], shifts: list[tuple[float, float]], work: Path) -> Path:
    def moved(t: float) -> float:
        return t + sum(d for at, d in shifts if t >= at)

    lines = [";FFMETADATA1"]
    for ch in chapters:
        start, end = moved(float(ch["start_time"])), moved(float(ch["end_time"]))
        lines += ["[CHAPTER]", "TIMEBASE=1/1000000", f"START={round(start * 1e6)}", f"END={round(end * 1e6)}"]
        for key, value in (ch.get("tags") or {}).items():
            escaped = "".join("\\" + c if c in "=;#\\\n" else c for c in str(value))
            lines.append(f"{key}={escaped}")
    path = work / "chapters.txt"
    path.write_text("\n".join(lines) + "\n")
    return path
