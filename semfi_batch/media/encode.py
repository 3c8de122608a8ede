"""Encoding to match a source: stream facts, packet/keyframe (GOP) index, encoder settings that reproduce the
source's codec, profile, pixel format and colour tags, and the raw-frame pipes used to re-encode a range.

Smart cut (see semfi_batch/splice/) re-encodes only whole GOPs and stream-copies the rest, so what is
encoded here must join cleanly with the source's own packets:
- H.264 from x264 (its settings are in an SEI message): the same x264 settings give byte-identical
  SPS/PPS, so re-encoded GOPs decode with the source's parameter sets ("identical" headers).
- other H.264: the re-encoded GOPs carry their own SPS/PPS in-band under ids the source does not use
  ("own-ids"), so both sets coexist in the decoder and the source's are never overwritten.
- VP8/VP9: every keyframe resets the decoder; nothing to match beyond size and format.
Anything else is fully re-encoded (same codec where an encoder exists, else H.264)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from semfi_batch.errors import MediaError, VideoOpenFailure
from semfi_batch.media.tools import run_tool, tool_path

# Video codecs whose GOPs can be re-encoded in place, with the encoder that does it (others: media/codecs.py).
SMART_CODECS = {"h264": "libx264", "vp8": "libvpx", "vp9": "libvpx-vp9"}
# Encoders for audio that has to be re-encoded (insert mode), by source codec.
AUDIO_ENCODERS = {
    "aac": "aac", "mp3": "libmp3lame", "vorbis": "libvorbis", "opus": "libopus", "flac": "flac",
    "ac3": "ac3", "eac3": "eac3", "alac": "alac", "mp2": "mp2",
    **{f"pcm_{k}": f"pcm_{k}" for k in ("s16le", "s16be", "s24le", "s24be", "s32le", "s32be", "f32le", "u8",
                                        "alaw", "mulaw")},
}  # fmt: skip
# Quality of re-encoded GOPs when the source's own settings are unknown (visually close to lossless).
DEFAULT_CRF = 16
X264_PROFILES = {
    "constrained baseline": "baseline", "baseline": "baseline", "main": "main", "high": "high",
    "high 10": "high10", "high 4:2:2": "high422", "high 4:4:4 predictive": "high444",
}  # fmt: skip


@dataclass(frozen=True)
class StreamFacts:
    """What a re-encode must reproduce about a file's first video stream, and where it sits."""

    path: Path
    index: int  # absolute stream index
    codec: str
    profile: str
    level: int
    pix_fmt: str
    width: int
    height: int
    sar: str | None
    color_range: str | None
    color_space: str | None
    color_primaries: str | None
    color_transfer: str | None
    field_order: str | None
    time_base: Fraction
    frame_rate: Fraction
    bit_rate: int | None
    extradata: bytes
    rotation: int  # clockwise degrees a player turns the stored picture: 0, 90, 180, 270
    format_name: str
    format_start: float
    nb_streams: int
    x264_options: str | None = None
    codec_tag: str | None = None  # the four-character code, when printable (DIVX, hvc1, apch...)
    timecode: str | None = None  # start timecode (QuickTime tmcd track, MXF, stream or file tag)

    @property
    def container(self) -> str | None:
        """The muxer family for smart cut (mp4, mov, matroska, webm), or None when unsupported."""
        names = set(self.format_name.split(","))
        if "mov" in names or "mp4" in names:
            return "mov" if self.path.suffix.lower() == ".mov" else "mp4"
        if "matroska" in names or "webm" in names:
            return "webm" if self.path.suffix.lower() == ".webm" else "matroska"
        return None

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after the display rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def probe_stream_facts(path: Path, *, encoder_settings: bool = True) -> StreamFacts:
    """Facts about `path`'s first (non cover-art) video stream. VideoOpenFailure if there is none.
    `encoder_settings`: also read x264's settings from the first packet (H.264 only)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise VideoOpenFailure(f"cannot open video {path}: {exc.strerror or exc}") from None
    return _facts_cached(path.resolve(), st.st_size, st.st_mtime_ns, encoder_settings)


@lru_cache(maxsize=64)
def _facts_cached(path: Path, _size: int, _mtime_ns: int, encoder_settings: bool) -> StreamFacts:
    out = run_tool(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", "-show_data", str(path)],
        what=f"cannot read video {path}",
    )
    meta = json.loads(out or b"{}")
    streams = meta.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    if video is None:
        raise VideoOpenFailure(f"{path} has no video stream")
    fmt = meta.get("format", {})
    facts = StreamFacts(
        path=path,
        index=int(video["index"]),
        codec=str(video.get("codec_name", "")),
        profile=str(video.get("profile", "")),
        level=int(video.get("level", -99) or -99),
        pix_fmt=str(video.get("pix_fmt", "")),
        width=int(video["width"]),
        height=int(video["height"]),
        sar=_known(video.get("sample_aspect_ratio"), ("0:1", "N/A")),
        color_range=_known(video.get("color_range")),
        color_space=_known(video.get("color_space")),
        color_primaries=_known(video.get("color_primaries")),
        color_transfer=_known(video.get("color_transfer")),
        field_order=_known(video.get("field_order"), ("unknown", "progressive")),
        time_base=Fraction(video.get("time_base", "1/1000")),
        frame_rate=_rate(video.get("r_frame_rate")) or _rate(video.get("avg_frame_rate")) or Fraction(25),
        bit_rate=_int_or_none(video.get("bit_rate")) or _int_or_none(fmt.get("bit_rate")),
        extradata=_hexdump_bytes(video.get("extradata", "")),
        rotation=_rotation(video),
        format_name=str(fmt.get("format_name", "")),
        format_start=float(fmt.get("start_time", 0.0) or 0.0),
        nb_streams=len(streams),
        codec_tag=_codec_tag(video.get("codec_tag_string")),
        timecode=_timecode(streams, fmt),
    )
    if facts.codec == "h264" and encoder_settings:
        facts = replace(facts, x264_options=_x264_options(path, facts.index))
    return facts


def _codec_tag(value) -> str | None:
    tag = str(value or "")
    return tag if len(tag) == 4 and tag.isprintable() and "[" not in tag and tag != "0000" else None


def _timecode(streams: list[dict], fmt: dict) -> str | None:
    """The start timecode, wherever the container keeps it (video stream, tmcd data stream, file tags)."""
    for tags in [s.get("tags") or {} for s in streams] + [fmt.get("tags") or {}]:
        if tags.get("timecode"):
            return str(tags["timecode"])
    return None


def _known(value, unknown: tuple[str, ...] = ("unknown",)) -> str | None:
    return None if value in (None, "", *unknown) else str(value)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rate(value: str | None) -> Fraction | None:
    if not value or value in ("0/0", "0"):
        return None
    rate = Fraction(value)
    return rate if rate > 0 else None


def _rotation(video: dict) -> int:
    for sd in video.get("side_data_list", []) or []:
        if "rotation" in sd:
            # ffprobe reports counter-clockwise degrees; players turn the picture clockwise by the negation.
            return int(round(-float(sd["rotation"]))) % 360
    tag = (video.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag and tag.lstrip("-").isdigit() else 0


def _hexdump_bytes(dump: str) -> bytes:
    """Bytes of an ffprobe -show_data hex dump ("00000000: 0164 001f ...  .d..")."""
    data = bytearray()
    for line in dump.splitlines():
        if ":" not in line:
            continue
        hexpart = line.split(":", 1)[1][1:41]  # fixed-width hex column, then the ASCII column
        data += bytes.fromhex("".join(hexpart.split()))
    return bytes(data)


def _x264_options(path: Path, index: int) -> str | None:
    """The option string x264 writes into its first SEI message, when the stream was made by x264."""
    out = run_tool(
        ["ffprobe", "-v", "error", "-select_streams", str(index), "-read_intervals", "%+#1",
         "-show_packets", "-show_data", "-of", "json", str(path)],
        what=f"cannot read the first packet of {path}",
    )  # fmt: skip
    packets = json.loads(out or b"{}").get("packets", [])
    if not packets:
        return None
    data = _hexdump_bytes(packets[0].get("data", ""))
    match = re.search(rb"x264 - core \d+.*? - options: ([ -~]+)", data)
    return match.group(1).decode("ascii") if match else None


# --- packets and GOPs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketIndex:
    """A video stream's packets in decode order: timestamps in stream ticks (`time_base`)."""

    path: Path
    time_base: Fraction
    pts: np.ndarray  # int64, presentation timestamp (dts where pts is missing)
    dts: np.ndarray  # int64, decode timestamp (pts where dts is missing)
    key: np.ndarray  # bool
    discard: np.ndarray  # bool: dropped by an edit list, never presented
    size: np.ndarray  # int64

    @property
    def count(self) -> int:
        return int(self.pts.shape[0])

    @property
    def presented(self) -> np.ndarray:
        """Packet indices of presented frames, in presentation order (frame index -> packet index)."""
        shown = np.flatnonzero(~self.discard)
        return shown[np.argsort(self.pts[shown], kind="stable")]

    @property
    def frame_pts(self) -> np.ndarray:
        """Presentation timestamps (ticks) of frames 0..n-1, consistent with probe.VideoInfo.frame_times."""
        return self.pts[self.presented]


def read_packets(path: Path, stream_index: int, time_base: Fraction) -> PacketIndex:
    """Index every packet of one stream (ffprobe, no decoding)."""
    out = run_tool(
        ["ffprobe", "-v", "error", "-select_streams", str(stream_index),
         "-show_entries", "packet=pts,dts,size,flags", "-of", "compact=p=0:nk=0", str(path)],
        what=f"cannot index the packets of {path}",
    ).decode()  # fmt: skip
    pts, dts, key, discard, size = [], [], [], [], []
    missing: list[int] = []
    for line in out.splitlines():
        fields = dict(part.split("=", 1) for part in line.split("|") if "=" in part)
        p, d = _tick(fields.get("pts")), _tick(fields.get("dts"))
        if p is None and d is None:
            continue
        pts.append(p if p is not None else d)
        dts.append(d if d is not None else p)
        if p is None:
            missing.append(len(pts) - 1)
        flags = fields.get("flags", "")
        key.append("K" in flags)
        discard.append("D" in flags)
        size.append(int(fields.get("size", 0) or 0))
    if not pts:
        raise VideoOpenFailure(f"{path} has a video stream but no packets")
    _fill_missing_pts(pts, missing)
    return PacketIndex(
        path=Path(path),
        time_base=time_base,
        pts=np.asarray(pts, np.int64),
        dts=np.asarray(dts, np.int64),
        key=np.asarray(key, bool),
        discard=np.asarray(discard, bool),
        size=np.asarray(size, np.int64),
    )


def _fill_missing_pts(pts: list, missing: list[int]) -> None:
    """A packet without a presentation time (the last B-frame-reordered packet of some MXF files) is shown
    after every frame before it: its decode time would collide with a reordered frame's."""
    for i in missing:
        earlier = pts[:i]
        if earlier and pts[i] <= max(earlier):
            steps = sorted(b - a for a, b in zip(sorted(earlier), sorted(earlier)[1:]) if b > a)
            pts[i] = max(earlier) + (steps[len(steps) // 2] if steps else 1)


def _tick(value: str | None) -> int | None:
    return None if value in (None, "", "N/A") else int(value)


@dataclass(frozen=True)
class Gop:
    """A run of packets, from a keyframe up to the next usable keyframe, that decodes on its own and
    presents frames [first_frame, end_frame) and nothing else."""

    first_packet: int
    end_packet: int
    first_frame: int
    end_frame: int


def gop_index(packets: PacketIndex) -> list[Gop]:
    """Split the stream at keyframes that are safe cut points. A keyframe is merged into the GOP before it
    when its packets would present frames from before it (open GOP, leading B-frames) or out of order."""
    frame_of_packet = np.full(packets.count, -1, np.int64)
    frame_of_packet[packets.presented] = np.arange(packets.presented.shape[0])
    starts = [0] + [int(i) for i in np.flatnonzero(packets.key) if i > 0]
    gops: list[Gop] = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else packets.count
        frames = frame_of_packet[start:end]
        frames = frames[frames >= 0]
        if frames.size == 0:
            lo = hi = gops[-1].end_frame if gops else 0
        else:
            lo, hi = int(frames.min()), int(frames.max()) + 1
        clean = (
            frames.size > 0
            and hi - lo == frames.size  # contiguous in presentation order
            and frame_of_packet[start] == lo  # the keyframe is shown first
            and (not gops or lo == gops[-1].end_frame)
        )
        if gops and not clean:
            prev = gops.pop()
            lo = min(prev.first_frame, lo) if frames.size else prev.first_frame
            hi = max(prev.end_frame, hi)
            gops.append(Gop(prev.first_packet, end, lo, hi))
        else:
            gops.append(Gop(start, end, lo, hi))
    return gops


# --- encoder choice ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderChoice:
    """How to encode frames so that they match the source.

    headers: "identical" (same SPS/PPS as the source), "own-ids" (in-band SPS/PPS under unused ids),
    "keyframe" (codec with self-contained keyframes) or "full" (only for a whole-file re-encode)."""

    encoder: str
    args: tuple[str, ...]
    headers: str
    note: str
    time_base: Fraction | None = None  # encoder time base; None: the source stream's
    filters: tuple[str, ...] = field(default_factory=tuple)
    output_args: tuple[str, ...] = ()  # options for the muxer (field order) rather than the encoder


# Decoders that report a wider format than their encoder takes (ProRes 4444 decodes to 12 bits).
_ENCODER_PIX_FMT = {("prores", "yuva444p12le"): "yuva444p10le", ("prores", "yuv444p12le"): "yuv444p10le"}


def encoder_pix_fmt(facts: StreamFacts) -> str:
    """The pixel format to encode in: the source's, or the nearest its encoder takes."""
    return _ENCODER_PIX_FMT.get((facts.codec, facts.pix_fmt), facts.pix_fmt)


def available_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build has."""
    return _encoders(tool_path("ffmpeg"))


@lru_cache(maxsize=4)
def _encoders(ffmpeg: str) -> frozenset[str]:
    out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, check=False).stdout.decode()
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def smart_cut_blocker(facts: StreamFacts) -> str | None:
    """Why GOPs of this file cannot be re-encoded in place (None when they can)."""
    from semfi_batch.media.codecs import KEYFRAME_CODECS, codec_plan

    if facts.codec in ("h264", "hevc") and facts.container is None:
        return f"{facts.codec} in {facts.format_name} is re-encoded whole (smart cut of it: mp4, mov, mkv)"
    if facts.codec == "h264":
        if "libx264" not in available_encoders():
            return "this ffmpeg has no libx264 encoder for h264"
        if facts.field_order:
            return f"interlaced h264 ({facts.field_order}) is re-encoded whole"
        return None
    if facts.codec not in SMART_CODECS and facts.codec != "hevc" and facts.codec not in KEYFRAME_CODECS:
        return f"codec {facts.codec} cannot be re-encoded in place"
    plan = codec_plan(facts, reorder=0, full=False)
    encoder = SMART_CODECS.get(facts.codec) or (plan.encoder if plan else None)
    if encoder is None or encoder not in available_encoders():
        return f"this ffmpeg has no encoder for {facts.codec}"
    return None


def copy_muxer(facts: StreamFacts) -> str:
    """The container the smart cut copies packets through and writes re-encoded GOPs in: the source's own
    when it is MP4, MOV, Matroska or WebM, else MOV (MP4 for AV1), with the source's clock as its track
    timescale. MXF, AVI and MPEG-TS are poor at both cutting and exact timestamps; NUT would pick its own
    time base."""
    if facts.container is not None:
        return facts.container
    return "mp4" if facts.codec == "av1" else "mov"


def colour_args(facts: StreamFacts) -> list[str]:
    """ffmpeg output options that tag the encode with the source's colour range, primaries, transfer, matrix."""
    args = []
    for option, value in (
        ("-color_range", facts.color_range),
        ("-color_primaries", facts.color_primaries),
        ("-color_trc", facts.color_transfer),
        ("-colorspace", facts.color_space),
    ):
        if value:
            args += [option, value]
    return args


def choose_encoder(facts: StreamFacts, *, full: bool, own_ids: bool = False, reorder: int = 0) -> EncoderChoice:
    """Encoder settings reproducing the source. `full`: for a whole-file re-encode (no joins);
    `own_ids`: H.264 with private parameter-set ids (after identical headers could not be reproduced);
    `reorder`: the source's B-frame delay in frames (see `reorder_delay`), kept so timestamps join."""
    from semfi_batch.media.codecs import KEEP_TAG, codec_plan

    encoders = available_encoders()
    base = ["-pix_fmt", encoder_pix_fmt(facts), *colour_args(facts)]
    filters = (f"setsar={facts.sar.replace(':', '/')}",) if facts.sar else ()
    if facts.codec == "h264" and "libx264" in encoders:
        return _x264_choice(facts, base, filters, full=full, own_ids=own_ids, reorder=reorder)
    if facts.codec in ("vp8", "vp9") and SMART_CODECS[facts.codec] in encoders:
        bitrate = max(2 * (facts.bit_rate or 0), 2_000_000)
        args = [*base, "-auto-alt-ref", "0", "-deadline", "good", "-cpu-used", "2", "-g", "100000"]
        if facts.codec == "vp8":
            args += ["-crf", "6", "-b:v", str(bitrate), "-qmin", "0", "-qmax", "40"]
        else:
            args += ["-crf", "20", "-b:v", "0", "-row-mt", "1"]
        headers = "full" if full else "keyframe"
        return EncoderChoice(
            SMART_CODECS[facts.codec], tuple(args), headers, f"{facts.codec} re-encoded", None, filters
        )
    plan = codec_plan(facts, reorder=reorder, full=full)
    if plan is not None and plan.encoder in encoders:
        args = [*base, *plan.args]
        if facts.codec_tag and facts.codec in KEEP_TAG:
            args += ["-tag:v", facts.codec_tag]
        how = "re-encoded whole" if full else "re-encoded"
        return EncoderChoice(
            plan.encoder, tuple(args), "full" if full else "keyframe", f"{facts.codec} {how} with {plan.encoder}",
            plan.time_base, filters, plan.output_args,
        )  # fmt: skip
    # The source codec cannot be produced here: H.264 in its place, and the summary says so.
    args = ["-pix_fmt", "yuv420p", *colour_args(facts), "-crf", str(DEFAULT_CRF), "-preset", "medium"]
    return EncoderChoice(
        "libx264", tuple(args), "full",
        f"this ffmpeg cannot encode {facts.codec or 'the source codec'}; re-encoded whole as H.264",
        None, filters,
    )  # fmt: skip


def _x264_choice(
    facts: StreamFacts, base: list[str], filters: tuple[str, ...], *, full: bool, own_ids: bool, reorder: int
) -> EncoderChoice:
    args = [*base]
    profile = X264_PROFILES.get(facts.profile.lower())
    if profile:
        args += ["-profile:v", profile]
    if facts.level > 0:
        args += ["-level", _h264_level(facts.level)]
    params = x264_params_from_sei(facts.x264_options) if facts.x264_options else None
    if params is not None and not own_ids:
        args += ["-x264-params", ":".join(f"{k}={v}" for k, v in params.items())]
        headers = "full" if full else "identical"
        return EncoderChoice("libx264", tuple(args), headers, "h264 re-encoded with the source's x264 settings",
                             _x264_timebase(facts), filters)  # fmt: skip
    if not full:
        ids = h264_parameter_set_ids(facts.extradata)
        free = next(i for i in range(1, 32) if i not in ids)
        x264 = {"sps-id": free, "repeat-headers": 1}
    else:
        x264 = {}
    # Keep the source's frame reordering depth: B-frame delay must match for timestamps to join.
    x264.update(_bframes_for_delay(reorder))
    x264.update({"crf": DEFAULT_CRF, "open-gop": 0})
    if params:
        for k in ("crf", "ref", "cabac", "8x8dct", "weightp", "bitrate"):
            if k in params:
                x264[k] = params[k]
    args += ["-preset", "medium", "-x264-params", ":".join(f"{k}={v}" for k, v in x264.items())]
    note = "h264 re-encoded" + ("" if full else " with its own parameter-set ids")
    return EncoderChoice("libx264", tuple(args), "full" if full else "own-ids", note, None, filters)


def reorder_delay(packets: PacketIndex) -> int:
    """How many frames the source's decode order runs ahead of presentation at keyframes (B-frame delay)."""
    pts = packets.frame_pts
    step = float(np.median(np.diff(pts))) if pts.shape[0] > 1 else 0.0
    keys = np.flatnonzero(packets.key & ~packets.discard)
    if step <= 0 or keys.size == 0:
        return 0
    lead = float(np.max(packets.pts[keys] - packets.dts[keys]))
    return max(int(round(lead / step)), 0)


def _bframes_for_delay(delay: int) -> dict:
    if delay <= 0:
        return {"bframes": 0}
    if delay == 1:
        return {"bframes": 3, "b-pyramid": "none"}
    return {"bframes": 3, "b-pyramid": "normal"}


def _h264_level(level: int) -> str:
    if level == 9:
        return "1b"
    return f"{level // 10}.{level % 10}" if level % 10 else str(level // 10)


def _x264_timebase(facts: StreamFacts) -> Fraction | None:
    """x264 writes its time base into the SPS timing info (num_units_in_tick / (time_scale / 2)): encoding
    with the same time base is needed for identical headers."""
    for nal in avcc_parameter_sets(facts.extradata):
        if nal and nal[0] & 0x1F == 7:
            timing = h264_sps_timing(nal)
            if timing is not None and timing[0] > 0 and timing[1] >= 2:
                return Fraction(timing[0], timing[1] // 2)
    return 1 / facts.frame_rate if facts.frame_rate else None


def h264_sps_timing(sps: bytes) -> tuple[int, int] | None:
    """(num_units_in_tick, time_scale) from an SPS NAL unit's VUI, or None when absent or unparsable."""
    r = _BitReader(_unescape(sps)[1:])
    try:
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma = r.ue()
            if chroma == 3:
                r.bits(1)
            r.ue(), r.ue(), r.bits(1)  # bit depths, qpprime_y_zero_transform_bypass
            if r.bits(1):  # seq_scaling_matrix_present
                for i in range(8 if chroma != 3 else 12):
                    if r.bits(1):
                        last = nxt = 8
                        for _ in range(16 if i < 6 else 64):
                            if nxt:
                                nxt = (last + r.se() + 256) % 256
                            last = nxt or last
        r.ue()  # log2_max_frame_num
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bits(1), r.se(), r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue(), r.bits(1), r.ue(), r.ue()  # refs, gaps, width, height
        if not r.bits(1):  # frame_mbs_only
            r.bits(1)
        r.bits(1)  # direct_8x8_inference
        if r.bits(1):  # frame_cropping
            r.ue(), r.ue(), r.ue(), r.ue()
        if not r.bits(1):  # vui_parameters_present
            return None
        if r.bits(1) and r.bits(8) == 255:  # aspect ratio, extended SAR
            r.bits(32)
        if r.bits(1):  # overscan
            r.bits(1)
        if r.bits(1):  # video signal type
            r.bits(4)
            if r.bits(1):
                r.bits(24)
        if r.bits(1):  # chroma location
            r.ue(), r.ue()
        if not r.bits(1):  # timing_info_present
            return None
        return r.bits(32), r.bits(32)
    except IndexError:
        return None


def avcc_parameter_sets(extradata: bytes) -> list[bytes]:
    """The SPS and PPS NAL units of an avcC record, in order (empty when it is not avcC). Two streams
    decode with each other's parameters exactly when these are equal; the rest of avcC may differ."""
    nals: list[bytes] = []
    if len(extradata) < 7 or extradata[0] != 1:
        return nals
    pos = 5
    try:
        for mask in (0x1F, 0xFF):  # SPS count (low 5 bits), then PPS count
            count = extradata[pos] & mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos : pos + 2], "big")
                nals.append(bytes(extradata[pos + 2 : pos + 2 + size]))
                pos += 2 + size
    except IndexError:
        return []
    return nals


def same_parameter_sets(a: bytes, b: bytes) -> bool:
    """Whether two codec extradata blocks carry the same parameter sets (avcC), or are identical."""
    sets_a, sets_b = avcc_parameter_sets(a), avcc_parameter_sets(b)
    return sets_a == sets_b if sets_a or sets_b else a == b


def h264_parameter_set_ids(extradata: bytes) -> set[int]:
    """SPS and PPS ids present in an avcC record (empty set when it is not avcC)."""
    ids: set[int] = set()
    for nal in avcc_parameter_sets(extradata):
        payload = _unescape(nal)
        try:
            # SPS: header, profile, constraints, level, then the id; PPS: header, then the id.
            ids.add(_BitReader(payload[4:] if payload[0] & 0x1F == 7 else payload[1:]).ue())
        except IndexError:
            continue
    return ids


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _BitReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("bad exp-Golomb code")
        value = 0
        for _ in range(zeros):
            value = (value << 1) | self.bit()
        return (1 << zeros) - 1 + value


# x264 SEI option name -> x264_param_parse name, for the settings that shape headers, speed and quality.
_SEI_TO_PARAM = {
    "cabac": "cabac", "ref": "ref", "me": "me", "subme": "subme", "psy": "psy", "mixed_ref": "mixed-refs",
    "me_range": "merange", "chroma_me": "chroma-me", "trellis": "trellis", "8x8dct": "8x8dct",
    "fast_pskip": "fast-pskip", "nr": "nr", "decimate": "dct-decimate", "constrained_intra": "constrained-intra",
    "bframes": "bframes", "b_adapt": "b-adapt", "b_bias": "b-bias", "weightb": "weightb", "open_gop": "open-gop",
    "weightp": "weightp", "keyint_min": "min-keyint", "scenecut": "scenecut", "intra_refresh": "intra-refresh",
    "rc_lookahead": "rc-lookahead", "mbtree": "mbtree", "qcomp": "qcomp", "qpmin": "qpmin", "qpmax": "qpmax",
    "qpstep": "qpstep", "ip_ratio": "ipratio", "pb_ratio": "pbratio", "bluray_compat": "bluray-compat",
}  # fmt: skip
_PYRAMID = {"0": "none", "1": "strict", "2": "normal"}
_DIRECT = {"0": "none", "1": "spatial", "2": "temporal", "3": "auto"}


def x264_params_from_sei(options: str) -> dict[str, str] | None:
    """x264 parameters that reproduce an x264 SEI option string, or None when some setting cannot be
    reproduced (custom quant matrices, interlacing, stitched or 2-pass rate control)."""
    sei = dict(tok.split("=", 1) for tok in options.split() if "=" in tok)
    if sei.get("cqm", "0") != "0" or sei.get("interlaced", "0") != "0" or sei.get("rc") not in ("crf", "abr", "cqp"):
        return None
    params: dict[str, str] = {}
    for key, name in _SEI_TO_PARAM.items():
        if key in sei:
            params[name] = sei[key]
    dbk = sei.get("deblock", "1:0:0").split(":")
    if dbk[0] == "1" and len(dbk) == 3:
        params["deblock"] = f"{dbk[1]},{dbk[2]}"
    else:
        params["no-deblock"] = "1"
    if "b_pyramid" in sei:
        params["b-pyramid"] = _PYRAMID.get(sei["b_pyramid"], "normal")
    if "direct" in sei:
        params["direct"] = _DIRECT.get(sei["direct"], "spatial")
    if "keyint" in sei:
        params["keyint"] = sei["keyint"]
    if "deadzone" in sei and "," in sei["deadzone"]:
        inter, intra = sei["deadzone"].split(",", 1)
        params["deadzone-inter"], params["deadzone-intra"] = inter, intra
    if "analyse" in sei:
        params["partitions"] = _partitions(sei["analyse"])
    psy_rd, psy_trellis = 0.0, 0.0
    if sei.get("psy") == "1" and "psy_rd" in sei:
        psy_rd, psy_trellis = (float(x) for x in sei["psy_rd"].split(":"))
        params["psy-rd"] = f"{psy_rd:.2f},{psy_trellis:.2f}"
    if "chroma_qp_offset" in sei:
        # x264 lowers the requested offset to compensate psy RD and psy trellis; undo that to get the request.
        offset = int(sei["chroma_qp_offset"])
        if sei.get("psy") == "1":
            if psy_rd > 0 and int(sei.get("subme", "7")) >= 6:
                offset += 1 if psy_rd < 0.25 else 2
            if psy_trellis > 0 and sei.get("trellis", "0") != "0":
                offset += 1 if psy_trellis < 0.25 else 2
        params["chroma-qp-offset"] = str(offset)
    if "aq" in sei:
        mode, _, strength = sei["aq"].partition(":")
        params["aq-mode"] = mode
        if strength:
            params["aq-strength"] = strength
    rc = sei["rc"]
    if rc == "crf":
        params["crf"] = sei.get("crf", "23")
    elif rc == "cqp":
        params["qp"] = sei.get("qp", "23")
    else:
        params["bitrate"] = sei.get("bitrate", "2000")
    for key, name in (("vbv_maxrate", "vbv-maxrate"), ("vbv_bufsize", "vbv-bufsize")):
        if key in sei:
            params[name] = sei[key]
    return params


def _partitions(analyse: str) -> str:
    try:
        _intra, inter = (int(x, 16) for x in analyse.split(":"))
    except ValueError:
        return "p8x8,b8x8,i8x8,i4x4"
    names = []
    for bit, name in ((0x0001, "i4x4"), (0x0002, "i8x8"), (0x0010, "p8x8"), (0x0020, "p4x4"), (0x0100, "b8x8")):
        if inter & bit:
            names.append(name)
    return ",".join(names) or "none"


# --- raw frame pipes -----------------------------------------------------------------------------------

# Raw frame output keeps every frame: no frame-rate conversion, and the stream's own clock so that close
# timestamps (VFR, millisecond containers) never collide in the 1/frame-rate default.
RAW_TIMING = ("-fps_mode", "passthrough", "-enc_time_base", "-1")


@lru_cache(maxsize=32)
def raw_frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    """Size in bytes of one rawvideo frame (as ffmpeg packs it) of this format and size. Measured from an RGB
    source: lavfi's YUV sources round odd sizes down, which would misframe every odd-sized frame after."""
    out = run_tool(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"color=s={width}x{height}:d=1,format=rgb24",
         "-frames:v", "1", "-pix_fmt", pix_fmt, "-f", "rawvideo", "-"],
        what=f"cannot size a {pix_fmt} frame",
    )  # fmt: skip
    if not out:
        raise MediaError(f"ffmpeg gave no {pix_fmt} frame")
    return len(out)


class FramePipe:
    """Reads fixed-size raw frames from an ffmpeg process's stdout, checking it produced all of them."""

    def __init__(self, args: Sequence[str], frame_bytes: int, count: int, what: str, stderr_path: Path):
        self.frame_bytes, self.count, self.what = frame_bytes, count, what
        self.stderr_path = stderr_path
        # A file, not a pipe, so a chatty ffmpeg never blocks; closed in close().
        self._err = open(stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [tool_path(args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL
        )

    def __iter__(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        try:
            for n in range(self.count):
                frame = self.proc.stdout.read(self.frame_bytes)
                if len(frame) != self.frame_bytes:
                    self.close()
                    raise MediaError(f"{self.what}: got {n} of {self.count} frames; {_tail(self.stderr_path)}")
                yield frame
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()


def _tail(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no error output"
    return lines[-1] if lines else "no error output"


def decode_range(path: Path, facts: StreamFacts, seek_s: float | None, count: int, work: Path) -> FramePipe:
    """Decode `count` frames of `path`'s video in the source's own pixel format and stored orientation,
    starting at the first frame at or after `seek_s` (seconds from the container start)."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-noautorotate"]
    if seek_s is not None and seek_s > 0:
        args += ["-ss", f"{seek_s:.6f}"]
    args += ["-i", str(path), "-map", f"0:{facts.index}", "-frames:v", str(count), *RAW_TIMING]
    args += ["-an", "-sn", "-dn", "-f", "rawvideo", "-pix_fmt", facts.pix_fmt, "-"]
    size = raw_frame_bytes(facts.pix_fmt, facts.width, facts.height)
    return FramePipe(args, size, count, f"cannot decode frames of {path}", work / f"decode-{id(args)}.log")


def rgb_to_yuv_matrix(facts: StreamFacts) -> str:
    """The matrix that inverts how frames were turned into RGB (ffmpeg: the tagged matrix, else BT.601)."""
    return {
        "bt709": "bt709", "bt2020nc": "bt2020", "bt2020c": "bt2020", "smpte240m": "smpte240m",
        "fcc": "fcc", "bt470bg": "bt601", "smpte170m": "bt601",
    }.get(facts.color_space or "", "bt601")  # fmt: skip


def full_range(facts: StreamFacts) -> bool:
    return facts.color_range == "pc" or facts.pix_fmt.startswith("yuvj")


def convert_images(images: Sequence[Path], facts: StreamFacts, work: Path) -> FramePipe:
    """Turn RGB image files (generated frames, display orientation, any size) into raw frames in the
    source's pixel format, matrix, range, size and stored orientation."""
    dw, dh = facts.display_size
    listing = work / f"images-{id(images)}.txt"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{_quote(p)}'\n" for p in images))
    rng = "pc" if full_range(facts) else "tv"
    chain = [
        f"scale=w={dw}:h={dh}:flags=bicubic+accurate_rnd+full_chroma_int:"
        f"out_color_matrix={rgb_to_yuv_matrix(facts)}:out_range={rng}",
        f"format={facts.pix_fmt}",
    ]
    chain += {90: ["transpose=cclock"], 180: ["hflip", "vflip"], 270: ["transpose=clock"]}.get(facts.rotation, [])
    args = ["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
    args += ["-vf", ",".join(chain), "-fps_mode", "passthrough", "-frames:v", str(len(images))]
    args += ["-f", "rawvideo", "-pix_fmt", facts.pix_fmt, "-"]
    size = raw_frame_bytes(facts.pix_fmt, facts.width, facts.height)
    return FramePipe(args, size, len(images), "cannot convert generated frames", work / f"convert-{id(images)}.log")


def _quote(path: Path) -> str:
    return str(Path(path).resolve()).replace("'", "'\\''")


def pts_expression(pts: Sequence[int]) -> str:
    """An ffmpeg expression of N (frame number) giving pts[N]: piecewise-linear runs joined by a balanced
    if-tree, so constant-rate stretches stay short and any timing is exact."""
    values = [int(v) for v in pts]
    runs: list[tuple[int, int, int]] = []  # (first N, pts at first N, step)
    i = 0
    while i < len(values):
        step = values[i + 1] - values[i] if i + 1 < len(values) else 0
        j = i + 1
        while j + 1 < len(values) and values[j + 1] - values[j] == step:
            j += 1
        runs.append((i, values[i], step))
        i = j + 1

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            first, start, step = runs[lo]
            return f"{start}+(N-{first})*{step}" if step else str(start)
        mid = (lo + hi) // 2
        return f"if(lt(N,{runs[mid][0]}),{tree(lo, mid)},{tree(mid, hi)})"

    return tree(0, len(runs)) if runs else "0"


def encode_frames(
    frames: Iterable[bytes],
    pts: Sequence[int],
    facts: StreamFacts,
    choice: EncoderChoice,
    out: Path,
    muxer: str,
    work: Path,
    origin: int = 0,
) -> None:
    """Encode raw frames (source pixel format and size) to `out`, frame k at pts[k] ticks of the source
    stream's time base, relative to the segment's start, which lies at `origin` ticks in the source."""
    tb = facts.time_base
    enc_tb = choice.time_base or tb
    exact = [Fraction(int(p) - int(pts[0])) * tb / enc_tb for p in pts] if pts else []
    grid = [round(x) for x in exact]
    # The encoder's clock may be coarser than the container's (1/30 s vs 1 ms): usable when every frame time,
    # from the segment's start, is that clock's tick rounded into the container's.
    if all(abs(x - g) * enc_tb <= tb / 2 for x, g in zip(exact, grid)):
        scaled = [g - grid[0] for g in grid]
    else:
        enc_tb, scaled = tb, [int(p) for p in pts]  # timing needs the stream's finer clock
    script = work / f"filter-{out.stem}.txt"
    chain = [f"settb={enc_tb.numerator}/{enc_tb.denominator}", f"setpts='{pts_expression(scaled)}'"]
    script.write_text(",".join([*chain, *choice.filters]))
    rate = facts.frame_rate
    args = [
        tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", facts.pix_fmt, "-s", f"{facts.width}x{facts.height}",
        "-r", f"{rate.numerator}/{rate.denominator}", "-i", "-",
        "-filter_script:v", str(script), "-fps_mode", "passthrough",
        "-enc_time_base", f"{enc_tb.numerator}/{enc_tb.denominator}",
        "-c:v", choice.encoder, *choice.args, *choice.output_args, "-an", "-sn", "-dn", "-map_metadata", "-1",
    ]  # fmt: skip
    args += track_timescale_args(muxer, tb)
    args += ["-f", muxer, str(out)]
    log = work / f"encode-{out.stem}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        written = 0
        assert proc.stdin is not None
        try:
            for frame in frames:
                proc.stdin.write(frame)
                written += 1
        except BrokenPipeError:
            pass  # the encoder stopped early; its log says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            code = proc.wait()
    if code != 0 or written != len(pts):
        raise MediaError(f"cannot encode {out.name} with {choice.encoder}: {_tail(log)} ({written}/{len(pts)} frames)")


def track_timescale_args(muxer: str, time_base: Fraction) -> list[str]:
    """MP4/MOV options that keep a stream's clock (1/90000, 1001/30000 -> 1/30000) instead of the muxer's
    choice, so copied and re-encoded packets keep exact timestamps; no timecode track of their own."""
    if muxer not in ("mp4", "mov"):
        return []
    return ["-video_track_timescale", str(time_base.denominator), "-write_tmcd", "0"]


def start_and_extradata(path: Path) -> tuple[float, bytes, Fraction]:
    """(container start_time in seconds, extradata, time base) of a file's first video stream."""
    out = run_tool(
        ["ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0", "-show_entries",
         "stream=extradata,time_base:format=start_time", "-show_data", str(path)],
        what=f"cannot read {path}",
    )  # fmt: skip
    meta = json.loads(out or b"{}")
    streams = meta.get("streams", [])
    if not streams:
        raise VideoOpenFailure(f"{path} has no video stream")
    start = float(meta.get("format", {}).get("start_time", 0.0) or 0.0)
    return start, _hexdump_bytes(streams[0].get("extradata", "")), Fraction(streams[0].get("time_base", "1/1000"))


def round_us(value_s: float | Fraction) -> int:
    """Seconds to whole microseconds (ffmpeg's AV_TIME_BASE), rounding to nearest."""
    return int(math.floor(Fraction(value_s) * 1_000_000 + Fraction(1, 2)))
