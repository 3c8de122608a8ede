"""Audio rebuilt for a splice whose timeline grew or shrank: the source's samples cut and joined around each
shift with silence or a cross-fade (`audio_graph`), sample-exact, and placed so that every sample is heard
where the source's was; encoded with the source's codec where this ffmpeg can write it into the output's
container, else with one it can, which the summary names (`audio_encoding`).

Two things move audio that timestamps do not show:
- a container may shift a stream to hide its encoder's priming (MP4 edit lists, Matroska codec delay):
  `first_decoded_time` finds where the first sample is heard, and the splice corrects it;
- where the container cannot say so (AVI, MPEG-PS/TS; AAC and AC-3 in Matroska), the priming is played: the encoder's
  own delay (LAME 1105 samples, AAC 1024, MP2 481, AC-3 256) comes before the first sample and every sample after it
  is that much late. `priming_samples` measures it, for the encoder, settings and muxer the splice uses and
  the time the stream starts at (MP4 and MOV hide AAC's, MP3's and AC-3's priming only in a stream that
  starts at zero), by encoding a burst of noise and finding it in the decode; the rebuilt stream leaves that
  many samples out at its start."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from semfi_batch.errors import MediaError
from semfi_batch.media.encode import AUDIO_ENCODERS, available_encoders
from semfi_batch.media.probe import first_frames
from semfi_batch.media.tools import run_tool, tool_path

# How far (s) a rebuilt audio stream's first sample may sit from where the source's was heard.
AUDIO_START_TOLERANCE = 0.0005
# Smallest gap (s) between an audio frame's timestamp and the samples before it that is filled with silence
# (or, as an overlap, dropped) before a stream is rebuilt: above the rounding of Matroska's millisecond clock.
TIMESTAMP_GAP_S = 0.001
# Profiles an encoder is asked for by name (`-profile:a`), by source codec and the profile ffprobe names.
ENCODER_PROFILES = {("aac", "HE-AAC"): "aac_he", ("aac", "HE-AACv2"): "aac_he_v2"}
# Lossless profiles of codecs that have lossy ones too (ffprobe's profile names, by their start), whose encoders
# here write the lossy kind only: ffmpeg's dca writes the DTS core, never DTS-HD Master Audio.
LOSSLESS_PROFILES = {"dts": ("DTS-HD MA",)}
# Codecs a stream whose own codec cannot be written is re-encoded with, in order of preference: lossy ones for a
# lossy source; lossless ones by what its samples are (integers of up to 24 bits: FLAC first; wider integers
# and floating point: PCM first, which keeps them exactly).
LOSSY_FALLBACKS = ("aac", "mp3", "mp2", "ac3")
# SMPTE 302M is PCM as broadcast MPEG-TS carries it (the only lossless audio ffmpeg writes into TS).
LOSSLESS_FALLBACKS = {
    16: ("flac", "pcm_s16le", "pcm_s16be", "s302m"), 24: ("flac", "pcm_s24le", "pcm_s24be", "s302m"),
    32: ("pcm_s32le", "pcm_s32be", "flac"), "flt": ("pcm_f32le", "pcm_f32be", "flac"),
    "dbl": ("pcm_f64le", "pcm_f64be", "pcm_f32le", "flac"),
}  # fmt: skip
# How far (s) a decoded audio frame may start from where the one before it ends, in a trial of an encoder or
# a copy into a container: beyond the rounding of Matroska's millisecond clock.
FRAME_TIMING_S = 0.0015
# Longest encoder delay looked for (samples), and the noise burst it is measured with (s).
MAX_PRIMING = 8192
_BURST_S = 0.5


_ASHOWINFO_RE = re.compile(r"\bpts_time:(\S+).*?\bchlayout:(\S+) rate:(\d+) nb_samples:(\d+)")


class AudioChanges(MediaError):
    """An audio stream to rebuild whose channel layout or sample rate changes mid-way: its rebuilt stream would
    keep the first (ffmpeg converts the rest), so it is refused; a whole re-encode of the video cannot mend it."""


def check_one_audio_format(source: Path, index: int) -> None:
    """Raise AudioChanges at the first frame of audio stream `index` whose channel layout or sample rate is not
    the first frame's (a broadcast recording: stereo, then 5.1 at the programme). The stream is decoded once
    per version of the file: a splice that muxes again (a stream moved back into place, a whole re-encode
    after a smart cut) asks again."""
    st = source.stat()
    change, _ = _audio_decoded(source, index, st.st_size, st.st_mtime_ns)
    if change:
        raise AudioChanges(
            f"audio stream {index} {change}; rebuilt around the inserted frames it would keep the first "
            "(downmixed or resampled, its silences misplaced): split the file where it changes"
        )


def decoded_end_time(source: Path, index: int) -> float | None:
    """Time (s) just after audio stream `index`'s last decoded sample; None when none was decoded. From the
    same decode as `check_one_audio_format` (Matroska and AVI give no audio duration to read)."""
    st = source.stat()
    return _audio_decoded(source, index, st.st_size, st.st_mtime_ns)[1]


@lru_cache(maxsize=64)
def _audio_decoded(source: Path, index: int, _size: int, _mtime_ns: int) -> tuple[str, float | None]:
    """Where audio stream `index` of `source` first changes layout or rate ("changes at T s from A to B"), or
    "" when it keeps the first frame's throughout; and where its last decoded sample ends (s; None when none
    was decoded, or it changed). Decoded through once (ashowinfo)."""
    cmd = [tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-copyts", "-i",
           str(source), "-map", f"0:{index}", "-af", "ashowinfo", "-f", "null", "-"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stderr is not None
    first = None
    end = None
    try:
        for line in proc.stderr:
            if (m := _ASHOWINFO_RE.search(line)) is None:
                continue
            heard = (m.group(2), int(m.group(3)))
            if m.group(1) != "NOPTS":
                end = float(m.group(1)) + int(m.group(4)) / heard[1]
            if first is None:
                first = heard
            elif heard != first:
                at = float(m.group(1))
                return f"changes at {at:.3f} s from {first[0]} at {first[1]} Hz to {heard[0]} at {heard[1]} Hz", None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    return "", end


def first_decoded_time(source: Path, index: int) -> float:
    """Time of an audio stream's first decoded sample (its start_time may count priming that is never played)."""
    entries = "frame=best_effort_timestamp_time,pts_time"
    for frame in first_frames(source, index, 8, entries, f"cannot decode audio stream {index} of {source}"):
        for key in ("best_effort_timestamp_time", "pts_time"):
            value = frame.get(key)
            if value not in (None, "N/A"):
                return float(value)
    return 0.0


def packet_times(path: Path, index: int, count: int = 8) -> tuple[np.ndarray, Fraction] | None:
    """Times (s) of a stream's first `count` packets as ffmpeg reads them, with the stream's time base; None
    when it has none. A copied stream must keep them: a container may count a codec's delay differently when
    it reads than when it writes (Matroska takes Opus's codec delay off on reading, not back on writing)."""
    out = run_tool(
        ["ffprobe", "-v", "error", "-select_streams", str(index), "-read_intervals", f"%+#{count}",
         "-show_entries", "packet=pts_time:stream=time_base", "-of", "json", str(path)],
        what=f"cannot read stream {index} of {path}",
    )  # fmt: skip
    meta = json.loads(out or b"{}")
    times = [p.get("pts_time") for p in meta.get("packets", [])]
    times = [float(t) for t in times if t not in (None, "N/A")]
    streams = meta.get("streams", [])
    if not times or not streams:
        return None
    return np.array(times), Fraction(streams[0]["time_base"])


def first_shown_time(path: Path, index: int) -> float | None:
    """Time (s) of a video stream's first decoded frame (`_first_shown_time`), decoded once per version of the
    file: a splice asks it of its source three or four times; the file's identity (inode, size, times) is
    part of the question, so a file written again is decoded again."""
    from semfi_batch.run.identity import stat_identity

    return _first_shown_time(Path(path), index, stat_identity(path))


@lru_cache(maxsize=64)
def _first_shown_time(path: Path, index: int, identity: tuple | None) -> float | None:
    """Time (s) of a video stream's first decoded frame, where the picture starts; None when none decodes or
    it has no time. Decoded, not read from the packets: packets that never show are not the picture's start
    (the leading pictures of a stream cut inside a GOP, which the decoder skips for want of their references;
    the frames an edit list hides, as `-ss T -c copy` keeps the video back to the keyframe before T). Counted,
    they put the source's picture earlier than the output's, and the copied audio was moved late by as much.
    Decoded only as far as that first frame."""
    cmd = [tool_path("ffprobe"), "-v", "error", "-select_streams", str(index), "-show_entries",
           "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            shown = line.strip().split(",")[0]
            if shown:  # (a frame's side data comes out as lines of its own, empty here)
                return None if shown == "N/A" else float(shown)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    return None


@dataclass(frozen=True)
class AudioEncoding:
    """How a rebuilt audio stream is encoded: `encoder`, its `settings` (option name and value, for the
    output stream: bit rate, profile), whether its codec is lossless (no bit rate to keep, no priming to
    measure), and a note for the summary where the source's codec or profile is not kept ("" where it is)."""

    encoder: str
    settings: tuple[tuple[str, str], ...]
    lossless: bool
    note: str = ""

    def args(self, stream: str) -> list[str]:
        """The settings as ffmpeg options for output stream `stream` ("a" in a file of one stream, or "3")."""
        return [arg for name, value in self.settings for arg in (f"-{name}:{stream}", value)]


def audio_encoding(stream: dict, muxer: str | None, source_muxer: str | None = None) -> AudioEncoding:
    """How to re-encode audio stream `stream` (ffprobe's fields) into a `muxer` file: with its own codec and
    profile, by an encoder of this ffmpeg that the container takes (experimental ones too: the mux is told
    where ffmpeg asks); else with a codec the container takes, lossless for a lossless source (FLAC or PCM
    of its sample format), AAC for a lossy one, and a note that says so. Before, any codec not in a fixed
    table (TrueHD, DTS, WMA, ADPCM, PCM in floating point) became AAC without a word. Where the output's
    container is the source's (`source_muxer`), it holds the source's codec already: only the encoder is
    asked (MXF and DV take no file of audio alone to ask with); where no codec passes the asking, the
    source's own is kept, and the mux names what the container refused."""
    idx, codec = stream["index"], stream.get("codec_name", "")
    rate, channels = int(stream.get("sample_rate") or 48000), int(stream.get("channels") or 2)
    named = str(stream.get("profile") or "")
    lossless_profile = any(named.startswith(p) for p in LOSSLESS_PROFILES.get(codec, ()))
    lossless = lossless_profile or audio_codecs().get(codec, (False, ()))[0]
    profile = ENCODER_PROFILES.get((codec, stream.get("profile")))
    bit_rate = (("b", str(stream["bit_rate"])),) if stream.get("bit_rate") and not lossless else ()
    if lossless_profile:  # its own encoders would make it lossy: a lossless codec in its place
        why = f"this ffmpeg's {codec} encoder writes no {named}, only lossy {codec}"
        return _in_place_of(stream, codec, muxer, rate, channels, bit_rate, lossless, why, with_own=False)
    own = _encoders_for(codec)
    asked = None if muxer == source_muxer else muxer
    for keep_profile in (True, False) if profile else (False,):
        settings = bit_rate + ((("profile", profile),) if keep_profile else ())
        wanted = stream.get("profile") if keep_profile else None
        for encoder in own:
            if _writes(encoder, settings, asked, rate, channels, wanted):
                note = ""
                if profile and not keep_profile:
                    note = f"audio {idx}: {stream['profile']} re-encoded as AAC LC: this ffmpeg's {encoder} encoder"
                    note += f" writes no {profile}"
                return AudioEncoding(encoder, settings, lossless, note)
    why = f"this ffmpeg cannot write {codec} into {muxer}" if own else f"this ffmpeg has no {codec} encoder"
    return _in_place_of(stream, codec, muxer, rate, channels, bit_rate, lossless, why, with_own=True)


def _in_place_of(stream, codec, muxer, rate, channels, bit_rate, lossless, why, *, with_own) -> AudioEncoding:
    """Another codec for a stream whose own cannot be written (`why`): lossless ones (by its samples) for a
    lossless source, lossy ones for a lossy one, into the container; else any that encodes (its own first,
    `with_own`), for the mux to judge."""
    idx = stream["index"]
    others = LOSSY_FALLBACKS if not lossless else LOSSLESS_FALLBACKS[_sample_kind(stream)]
    for container in (muxer, None):
        for other in ((codec,) if with_own else ()) + others if container is None else others:
            for encoder in _encoders_for(other):
                if _writes(encoder, bit_rate, container, rate, channels, None):
                    note = f"audio {idx}: {codec} re-encoded as {other}: {why}" if other != codec else ""
                    return AudioEncoding(encoder, bit_rate, lossless, note)
    raise MediaError(f"audio stream {idx}: {why}, nor any codec tried in its place")


@lru_cache(maxsize=1)
def audio_codecs() -> dict[str, tuple[bool, tuple[str, ...]]]:
    """The audio codecs this ffmpeg knows (`ffmpeg -codecs`), each with whether it is lossless only (a codec
    with lossy and lossless modes, as DTS, counts as lossy) and the names of its encoders (none where it
    has no encoder)."""
    out = subprocess.run([tool_path("ffmpeg"), "-hide_banner", "-codecs"], capture_output=True, check=False)
    codecs = {}
    for line in out.stdout.decode(errors="replace").splitlines():
        m = re.match(r"^ ([D.])([E.])A[I.]([L.])([S.]) (\S+)\s(.*)$", line)
        if m is None:
            continue
        listed = re.search(r"\(encoders: ([^)]*)\)", m.group(6))
        encoders = tuple(listed.group(1).split()) if listed else (m.group(5),) if m.group(2) == "E" else ()
        codecs[m.group(5)] = (m.group(4) == "S" and m.group(3) == ".", encoders)
    return codecs


def _encoders_for(codec: str) -> list[str]:
    """The encoders of this ffmpeg for `codec`, the preferred one (`AUDIO_ENCODERS`) first."""
    listed = audio_codecs().get(codec, (False, ()))[1]
    ordered = dict.fromkeys([AUDIO_ENCODERS.get(codec, ""), *listed])
    return [name for name in ordered if name in listed and name in available_encoders()]


def _sample_kind(stream: dict) -> int | str:
    """What a lossless stream's samples are: "flt" or "dbl" (floating point), else their bits (16, 24, 32)."""
    fmt = str(stream.get("sample_fmt") or "s16").rstrip("p")
    if fmt in ("flt", "dbl"):
        return fmt
    bits = int(stream.get("bits_per_raw_sample") or 0) or int(stream.get("bits_per_sample") or 0)
    bits = bits or {"u8": 8, "s16": 16, "s32": 32, "s64": 32}.get(fmt, 16)
    return 16 if bits <= 16 else 24 if bits <= 24 else 32


@lru_cache(maxsize=64)
def _writes(
    encoder: str,
    settings: tuple[tuple[str, str], ...],
    muxer: str | None,
    rate: int,
    channels: int,
    profile: str | None,
) -> bool:
    """Whether this ffmpeg's `encoder` (with `settings`) encodes `channels` at `rate` into a `muxer` file
    that reads back as audio (MPEG-TS takes PCM and FLAC without a word and writes a data stream no player
    plays), with `profile` where one is asked (ffmpeg 5.1's AAC encoder writes a file marked HE-AAC that no
    decoder opens); with no `muxer`, whether it encodes at all. Asked of ffmpeg by encoding a tenth of a
    second, experimental encoders and muxing allowed."""
    with tempfile.TemporaryDirectory(prefix="semfi-encoder-") as folder:
        path = Path(folder) / "trial"
        encode = [tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                  f"sine=r={rate}:d=0.1", "-ac", str(channels), "-c:a", encoder,
                  *AudioEncoding(encoder, settings, False).args("a"), "-strict", "experimental"]  # fmt: skip
        if muxer is None and profile is None:
            return subprocess.run([*encode, "-f", "null", "-"], capture_output=True, check=False).returncode == 0
        encode += ["-f", muxer or "matroska", str(path)]
        if subprocess.run(encode, capture_output=True, check=False).returncode != 0:
            return False
        return written_as_audio(path, profile)


def written_as_audio(path: Path, profile: str | None = None) -> bool:
    """Whether the first stream of `path` reads back as audio (of `profile`, where one is given)."""
    probe = [tool_path("ffprobe"), "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=profile",
             "-of", "json", str(path)]  # fmt: skip
    shown = subprocess.run(probe, capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        return False
    streams = json.loads(shown.stdout or "{}").get("streams") or []
    return bool(streams) and (profile is None or streams[0].get("profile") == profile) and _timed_as_heard(path)


def _timed_as_heard(path: Path) -> bool:
    """Whether the first audio stream's decoded frames of `path` are timed one after another as long as they
    sound (to FRAME_TIMING_S): AVI times Vorbis by packets of no fixed length, and ffmpeg writes it so that
    frames of 21 ms come 1.3 ms apart (or 39 ms): every later sound moved against the picture, exit 0."""
    probe = [tool_path("ffprobe"), "-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#16",
             "-show_entries", "frame=pts_time,nb_samples:stream=sample_rate", "-of", "json", str(path)]  # fmt: skip
    shown = json.loads(subprocess.run(probe, capture_output=True, text=True, check=False).stdout or "{}")
    rate = int(((shown.get("streams") or [{}])[0]).get("sample_rate") or 0)
    timed = [f for f in shown.get("frames") or [] if f.get("pts_time") not in (None, "N/A")] if rate else []
    for before, after in zip(timed, timed[1:]):
        lasts = int(before["nb_samples"]) / rate
        if abs(float(after["pts_time"]) - float(before["pts_time"]) - lasts) > FRAME_TIMING_S:
            return False
    return True


def copies_into(source: Path, index: int, muxer: str) -> bool:
    """Whether audio stream `index` of `source`, copied as it is, reads back as audio from a `muxer` file, timed
    as it sounds (PCM copied into MPEG-TS becomes a data stream, exit 0; Vorbis copied into AVI is mistimed,
    its beep heard 2 s off; Opus into AVI is refused, and the splice failed with "Error initializing output
    stream" where the stream could be re-encoded). Asked of ffmpeg with the stream's first packets, once per
    version of the file (as `first_shown_time`)."""
    from semfi_batch.run.identity import stat_identity

    return _copies_into(Path(source), index, muxer, stat_identity(source))


@lru_cache(maxsize=64)
def _copies_into(source: Path, index: int, muxer: str, _identity: tuple | None) -> bool:
    with tempfile.TemporaryDirectory(prefix="semfi-copy-") as folder:
        path = Path(folder) / "trial"
        copy = [tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", str(source), "-map", f"0:{index}",
                "-c", "copy", "-frames:a", "8", "-strict", "experimental", "-f", muxer, str(path)]  # fmt: skip
        if subprocess.run(copy, capture_output=True, check=False).returncode != 0:
            return False  # refused outright (Opus into AVI): rebuilt in a codec it takes, as where it misreads
        return written_as_audio(path)


def audio_graph(
    stream: dict, shifts: list[tuple[float, float]], mode: str, graph: list[str], lead: int = 0
) -> tuple[str, str]:
    """Filters rebuilding one audio stream with time inserted (silence or a cross-fade) or removed at each
    shift, sample-exact. `stream["first_sample_s"]`: the time of the source's first decoded sample, from
    which the shifts' places are counted in samples (of the stream with its timestamp holes filled);
    `stream["placed_at_s"]` (default the same): where the rebuilt stream is put, moved by a second mux where
    the first put it elsewhere (a nudge that moved the cuts too made every silence of an MPEG-TS or Matroska
    AAC stream 1024 samples early).
    `stream["end_s"]` (optional): where the source's last sample ends; a shift at or after it moves none of
    the stream's sound and is left out (kept, the stream was padded with silence up to it and through the
    inserted time: 2 s of audio came out 3.4 s long). `lead`: samples left out at the start, where the
    encoder's priming will sound in their place (`priming_samples`); where negative, samples of silence put
    before the first (a stream that starts after zero in AVI, which places every stream at zero).
    Returns the output label and a note for the summary."""
    idx = int(stream["index"])
    rate = int(stream.get("sample_rate") or 48000)
    start = float(stream["first_sample_s"])
    placed = float(stream.get("placed_at_s", start))
    if stream.get("end_s") is not None:
        shifts = [(at, delta) for at, delta in shifts if at < float(stream["end_s"])]
    pieces: list[tuple[int, int | None]] = []  # source sample ranges, in order
    joins: list[tuple[str, int, int]] = []  # between pieces n and n+1: ("silence"|"cut"|"crossfade", samples, at)
    cursor = max(lead, 0)
    for at, delta in shifts:
        pos = max(int(round((at - start) * rate)), cursor)
        n = int(round(abs(delta) * rate))
        if delta < 0:
            pieces.append((cursor, max(pos - n, cursor)))
            joins.append(("cut", 0, pos))
        else:
            pieces.append((cursor, pos))
            joins.append(("crossfade" if mode == "crossfade" and pos - n >= cursor else "silence", n, pos))
        cursor = pos
    pieces.append((cursor, None))
    src = f"s{idx}_"
    copies: list[str] = []  # what each copy of the source goes through: "[copy]chain[label]"
    steps: list[str] = []  # the filters that join them

    def take(chain: str, label: str) -> str:
        copies.append(f"[{src}{len(copies)}]{chain}[{label}]")
        return label

    def samples(a: int, b: int | None, label: str) -> str:
        # Exactly b - a samples: padded with silence where the source's audio ends sooner (near the end of
        # the file: Matroska and AVI give no audio duration to check against), so that nothing after moves.
        end = f":end_sample={b}" if b is not None else ""
        pad = f",apad=whole_len={b - a}" if b is not None and b > a else ""  # (0 would pad for ever)
        return take(f"atrim=start_sample={a}{end},asetpts=PTS-STARTPTS{pad}", label)

    current = samples(*pieces[0], f"p{idx}_0")
    if lead < 0:  # silence before the first sample, in the stream's own format (as an inserted one below)
        ahead = take(f"atrim=end_sample=1,volume=0,apad=whole_len={-lead},asetpts=PTS-STARTPTS", f"b{idx}")
        steps.append(f"[{ahead}][{current}]concat=n=2:v=0:a=1[q{idx}]")
        current = f"q{idx}"
    for i, (kind, n, pos) in enumerate(joins):
        parts = [current]
        if kind == "crossfade":
            # The left side plays on into the new time, fading out, while the right side's lead-in fades in.
            # Only these n samples of each go through acrossfade: where its second input ended first (the rest
            # of the stream, near the end of the file), ffmpeg 5.1's dropped it and the audio came out short.
            played_on = samples(pos, pos + n, f"t{idx}_{i}")
            lead_in = samples(pos - n, pos, f"h{idx}_{i}")
            steps.append(f"[{played_on}][{lead_in}]acrossfade=ns={n}:c1=tri:c2=tri[x{idx}_{i}]")
            parts.append(f"x{idx}_{i}")
        elif kind == "silence":
            # Silence in exactly the stream's own format: one source sample, muted, padded to length.
            parts.append(take(f"atrim=end_sample=1,volume=0,apad=whole_len={n},asetpts=PTS-STARTPTS", f"z{idx}_{i}"))
        parts.append(samples(*pieces[i + 1], f"p{idx}_{i + 1}"))
        current = f"j{idx}_{i}"
        steps.append("".join(f"[{part}]" for part in parts) + f"concat=n={len(parts)}:v=0:a=1[{current}]")
    # Decoded to the source's own timestamps first: a hole in them (packets lost, the times of the rest kept) is
    # filled with silence, so that sample n is heard at start + n / rate and every cut lands at its time (counted
    # over a 0.3 s hole as if none were missing, each silence after it came 0.3 s late). Overlaps are dropped.
    graph.append(
        f"[1:{idx}]aresample=async=1:min_hard_comp={TIMESTAMP_GAP_S},asplit={len(copies)}"
        + "".join(f"[{src}{i}]" for i in range(len(copies)))
    )
    graph += copies + steps
    label = f"a{idx}"
    graph.append(f"[{current}]asetpts=PTS+{placed:.6f}/TB[{label}]")
    inserted = sum(1 for kind, _, _ in joins if kind in ("silence", "crossfade"))
    faded = sum(1 for kind, _, _ in joins if kind == "crossfade")
    if mode == "crossfade" and faded < inserted:
        note = f"audio {idx}: {faded} cross-fades, {inserted - faded} silences (too little audio before the rest)"
    elif mode == "crossfade":
        note = f"audio {idx}: {faded} cross-fades"
    else:
        note = f"audio {idx}: {inserted} silences inserted"
    return label, note


@lru_cache(maxsize=32)
def priming_samples(
    encoder: str, rate: int, channels: int, options: tuple[str, ...], muxer: str, start: float = 0.0
) -> int:
    """Samples by which `encoder` (with `options`, at `rate` and `channels`), written by `muxer` in a stream
    starting at `start` (s), plays its input late when the file is decoded from its first sample: its priming,
    where the container does not hide it (0 where it does). Measured where the stream starts: ffmpeg 5.1's MP4
    muxer hides the priming with an edit list only in a stream starting at zero; placed later, it is played
    (measured at zero instead, a late AAC stream came out 1024 samples late: the check against the source
    moved it by its priming). Measured on a burst of noise (seeded, so always the same): encoded, decoded,
    and found by cross-correlation. 0 when the burst cannot be found (the encoder or muxer refuses it)."""
    noise = f"anoisesrc=d={_BURST_S}:c=white:r={rate}:a=0.5:seed=5"
    reference = np.frombuffer(_raw(["-f", "lavfi", "-i", noise]), np.float32)
    placed = ["-itsoffset", f"{start:.6f}"] if start > 0 else []
    with tempfile.TemporaryDirectory(prefix="semfi-priming-") as folder:
        path = Path(folder) / f"burst.{muxer}"
        encode = [tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y", *placed, "-f", "lavfi", "-i", noise,
                  "-ac", str(channels), "-c:a", encoder, *options, "-strict", "experimental", "-f", muxer,
                  str(path)]  # fmt: skip
        if subprocess.run(encode, capture_output=True, check=False).returncode != 0:
            return 0
        decoded = np.frombuffer(_raw(["-i", str(path)], rate), np.float32)  # at `rate`, whatever the encoder's
    return _lag(reference, decoded)


def _raw(input_args: list[str], rate: int | None = None) -> bytes:
    """The first audio stream of an ffmpeg input as mono 32-bit float samples, from its first decoded one;
    resampled to `rate` (an encoder may work at another rate: the lag is then counted in the source's samples)."""
    resample = ["-ar", str(rate)] if rate else []
    cmd = [tool_path("ffmpeg"), "-nostdin", "-v", "error", *input_args, "-map", "0:a:0", "-ac", "1", *resample]
    cmd += ["-f", "f32le"]
    proc = subprocess.run([*cmd, "-"], capture_output=True, check=False)
    return proc.stdout[: len(proc.stdout) // 4 * 4]


def _lag(reference: np.ndarray, decoded: np.ndarray) -> int:
    """Where `reference` starts in `decoded` (samples, 0..MAX_PRIMING), by cross-correlation; 0 when no lag
    stands out (the peak under five times the typical correlation)."""
    if reference.size == 0 or decoded.size == 0:
        return 0
    size = 1 << int(np.ceil(np.log2(reference.size + decoded.size)))
    corr = np.fft.irfft(np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size)), size)
    window = np.abs(corr[: MAX_PRIMING + 1])
    best = int(np.argmax(window))
    typical = float(np.median(window)) or 1e-12
    return best if window[best] > 5 * typical else 0
