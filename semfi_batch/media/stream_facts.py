"""What a re-encode must reproduce about a file's first video stream (codec, profile, pixel format, colour
tags, field order, timecode, rotation, x264 settings), read with ffprobe."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from semfi_batch.errors import VideoOpenFailure
from semfi_batch.media.probe import first_frames, refuse_mirrored_display, start_timecode
from semfi_batch.media.side_alpha import stream_decoding
from semfi_batch.media.tools import run_tool


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
    constant_rate: bool = False  # the stream's base rate is its average: every frame lasts 1 / frame_rate
    codec_tag: str | None = None  # the four-character code, when printable (DIVX, hvc1, apch...)
    timecode: str | None = None  # start timecode (QuickTime tmcd track, MXF, stream or file tag)
    top_field_first: bool | None = None  # interlaced frames as displayed, by the decoder's flags
    # The decoder's word on the first frame (tt, bb, progressive, unknown): flagged as fields there, a video
    # labelled progressive (x264's fake interlacing) is flagged so throughout.
    first_frame_fields: str = "unknown"
    decoder: str | None = None  # the decoder that reads alpha kept beside the picture (media/side_alpha.py)
    # Where chroma samples sit, when the stream says other than the default "left" (MPEG-2/H.264/HEVC 4:2:0):
    # decoders report "left" for streams that say nothing, and an encode told "left" would write it, so
    # its headers would differ from the source's.
    chroma_location: str | None = None
    # HDR10 static metadata, from the first frame (HEVC carries it in SEI, AV1 in metadata OBUs, at each
    # keyframe): the mastering display's primaries and white point as CIE x, y (red, green, blue, white), and
    # its minimum and maximum luminance in cd/m2; the content light levels MaxCLL and MaxFALL.
    mastering_display: tuple[Fraction, ...] | None = None
    content_light: tuple[int, int] | None = None
    # The transfer the frames carry where the stream's headers say another (`color_transfer`): HEVC's
    # alternative transfer characteristics SEI, how broadcast HLG (arib-std-b67) is signalled over a
    # bt2020-10 VUI for decoders that know no HLG.
    preferred_transfer: str | None = None
    # The same HDR10 static metadata as the container keeps it for the stream (MP4/MOV mdcv and clli boxes,
    # Matroska's MasteringMetadata, MaxCLL and MaxFALL), where players of ProRes, VP9 and others look for it.
    container_mastering_display: tuple[Fraction, ...] | None = None
    container_content_light: tuple[int, int] | None = None

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
    fields = _fields(path, video.get("field_order"))
    decoder, pix_fmt = stream_decoding(video, path)
    refuse_mirrored_display(video, path)
    base_rate = _rate(video.get("r_frame_rate"))
    facts = StreamFacts(
        path=path,
        index=int(video["index"]),
        codec=str(video.get("codec_name", "")),
        profile=str(video.get("profile", "")),
        level=int(video.get("level", -99) or -99),
        pix_fmt=pix_fmt,
        width=int(video["width"]),
        height=int(video["height"]),
        sar=_known(video.get("sample_aspect_ratio"), ("0:1", "N/A")),
        color_range=_known(video.get("color_range")),
        color_space=_known(video.get("color_space")),
        color_primaries=_known(video.get("color_primaries")),
        color_transfer=_known(video.get("color_transfer")),
        chroma_location=_known(video.get("chroma_location"), ("unknown", "unspecified", "left")),
        field_order=fields[0],
        time_base=Fraction(video.get("time_base", "1/1000")),
        frame_rate=base_rate or _rate(video.get("avg_frame_rate")) or Fraction(25),
        constant_rate=base_rate is not None and base_rate == _rate(video.get("avg_frame_rate")),
        bit_rate=_int_or_none(video.get("bit_rate")) or _int_or_none(fmt.get("bit_rate")),
        extradata=_hexdump_bytes(video.get("extradata", "")),
        rotation=_rotation(video),
        format_name=str(fmt.get("format_name", "")),
        format_start=float(fmt.get("start_time", 0.0) or 0.0),
        nb_streams=len(streams),
        codec_tag=_codec_tag(video.get("codec_tag_string")),
        timecode=start_timecode(streams, fmt),
        top_field_first=fields[1],
        first_frame_fields=fields[2],
        decoder=decoder,
        **{f"container_{name}": value for name, value in hdr10_static(video.get("side_data_list")).items()},
    )
    if facts.codec == "h264" and encoder_settings:
        facts = replace(facts, x264_options=_x264_options(path, facts.index))
    if encoder_settings:
        facts = replace(facts, **_first_frame_colour(path, facts.index, facts.color_transfer))
    return facts


_MASTERING_KEYS = ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_point_x", "white_point_y",
                   "min_luminance", "max_luminance")  # fmt: skip


def _first_frame_colour(path: Path, index: int, stream_transfer: str | None) -> dict:
    """`mastering_display`, `content_light` and `preferred_transfer` as the first decoded frame carries them
    (absent: not in the result), whatever the codec: the decoder puts them on the frame from wherever the
    bitstream keeps them."""
    what = f"cannot read the first frame of {path}"
    frames = first_frames(path, index, 1, "frame=color_transfer,side_data_list", what) or [{}]
    found = {}
    transfer = _known(frames[0].get("color_transfer"), ("unknown", "unspecified", "reserved"))
    if transfer is not None and stream_transfer is not None and transfer != stream_transfer:
        found["preferred_transfer"] = transfer
    return {**found, **hdr10_static(frames[0].get("side_data_list"))}


def hdr10_static(side_data: list[dict] | None) -> dict:
    """`mastering_display` and `content_light` (absent: not in the result) from a frame's or a stream's side
    data as ffprobe lists it."""
    found = {}
    for side in side_data or []:
        kind = side.get("side_data_type")
        if kind == "Mastering display metadata" and all(k in side for k in _MASTERING_KEYS):
            found["mastering_display"] = tuple(Fraction(str(side[k])) for k in _MASTERING_KEYS)
        elif kind == "Content light level metadata" and "max_content" in side and "max_average" in side:
            found["content_light"] = (int(side["max_content"]), int(side["max_average"]))
    return found


def _fields(path: Path, probed: str | None) -> tuple[str | None, bool | None, str]:
    """(field order: tt, bb, tb or bt for interlaced video, else None; whether its frames show the top field
    first; the decoder's word on the first frame). The order is `probe.field_order_of`'s (the decoder's flags
    on the first frame where the container states none, as AVI and raw DV do not, or states "progressive" of
    frames coded as fields); which field comes first is always the decoder's word where it has one (a
    container's tb or bt label is read differently by different writers)."""
    from semfi_batch.media.probe import decoded_field_order, field_order_of

    decoded = decoded_field_order(path)
    order = _known(field_order_of(probed, lambda: decoded), ("unknown", "progressive"))
    if order is None:
        return None, None, decoded
    return order, (decoded == "tt") if decoded in ("tt", "bb") else order in ("tt", "bt"), decoded


def _codec_tag(value) -> str | None:
    tag = str(value or "")
    return tag if len(tag) == 4 and tag.isprintable() and "[" not in tag and tag != "0000" else None


# Colour names ffprobe prints that ffmpeg's options spell otherwise (the matrix of RGB sources is "gbr").
_OPTION_NAMES = {"gbr": "rgb", "ycgco": "ycocg"}


def colour_args(facts: StreamFacts) -> list[str]:
    """ffmpeg options giving the source's colour range, primaries, transfer, matrix and chroma location: as
    output options they tag an encode; before a raw-frame input they tag its frames, which some encoders
    (prores_ks) take their tags from instead."""
    args = []
    for option, value in (
        ("-color_range", facts.color_range),
        ("-color_primaries", facts.color_primaries),
        ("-color_trc", facts.color_transfer),
        ("-colorspace", facts.color_space),
        ("-chroma_sample_location", facts.chroma_location),
    ):
        if value:
            args += [option, _OPTION_NAMES.get(value, value)]
    return args


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
