"""Encoder choice: settings that reproduce a source's codec, profile, pixel format, field order and colour
tags, for re-encoding whole GOPs that must join the source's own packets (smart cut) or a whole video.

- H.264 from x264 (its settings are in an SEI message): the same x264 settings give byte-identical
  SPS/PPS, so re-encoded GOPs decode with the source's parameter sets ("identical" headers).
- other H.264: the re-encoded GOPs carry their own SPS/PPS in-band under ids the source does not use
  ("own-ids"), so both sets coexist in the decoder and the source's are never overwritten.
- VP8/VP9 and the codecs of media/codecs.py: every keyframe resets the decoder ("keyframe").
Stream facts, packet indexes, the H.264 bitstream reader and the raw-frame pipes live in stream_facts.py,
packets.py, bitstream.py and frame_pipes.py; splice/gop_plan.py finds the GOPs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from semfi_batch.errors import MediaError
from semfi_batch.media.bitstream import (
    avcc_parameter_sets,
    h264_parameter_set_ids,
    h264_sps_timing,
    same_parameter_sets,
    x264_params_from_sei,
)
from semfi_batch.media.frame_pipes import (
    RAW_TIMING,
    FramePipe,
    convert_images,
    decode_range,
    encode_frames,
    full_range,
    pts_expression,
    raw_frame_bytes,
    rgb_to_yuv_matrix,
    track_timescale_args,
)
from semfi_batch.media.packets import PacketIndex, read_packets, reorder_delay, round_us
from semfi_batch.media.stream_facts import StreamFacts, colour_args, probe_stream_facts, start_and_extradata
from semfi_batch.media.tools import encoder_pixel_formats, ffmpeg_codecs

# Splice imports these from here; each lives in its own module (stream facts, packets, bitstream, pipes).
__all__ = [
    "AUDIO_ENCODERS", "RAW_TIMING", "EncoderChoice", "FramePipe", "PacketIndex", "StreamFacts",
    "available_encoders", "avcc_parameter_sets", "choose_encoder", "convert_images", "copy_muxer",
    "decode_range", "encode_frames", "encoder_pix_fmt", "full_range", "h264_parameter_set_ids", "h264_sps_timing",
    "probe_stream_facts", "pts_expression", "raw_frame_bytes", "read_packets", "reorder_delay", "rgb_to_yuv_matrix",
    "round_us", "same_parameter_sets", "smart_cut_blocker", "start_and_extradata", "track_timescale_args",
    "x264_params_from_sei",
]  # fmt: skip

# Video codecs whose GOPs can be re-encoded in place, with the encoder that does it (others: media/codecs.py).
SMART_CODECS = {"h264": "libx264", "vp8": "libvpx", "vp9": "libvpx-vp9"}


# Encoders preferred for audio that has to be re-encoded (insert mode), by source codec, where this ffmpeg may
# have several or its own is experimental; other codecs, and these where the one named is missing, take the
# encoders ffmpeg lists for them (`ffmpeg -codecs`; splice/audio.py: `audio_encoding`).
AUDIO_ENCODERS = {"mp3": "libmp3lame", "vorbis": "libvorbis", "opus": "libopus"}


# Quality of re-encoded GOPs when the source's own settings are unknown (visually close to lossless).
DEFAULT_CRF = 16


X264_PROFILES = {
    "constrained baseline": "baseline", "baseline": "baseline", "main": "main", "high": "high",
    "high 10": "high10", "high 4:2:2": "high422", "high 4:4:4 predictive": "high444",
}  # fmt: skip


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


# Decoders that report a wider format than their encoder takes (ProRes 4444 decodes to 12 bits, DNxHR
# HQX/444 may be 12-bit): the generated frames are written at the encoder's 10 bits.
_ENCODER_PIX_FMT = {("prores", "yuva444p12le"): "yuva444p10le", ("prores", "yuv444p12le"): "yuv444p10le",
                    ("dnxhd", "yuv422p12le"): "yuv422p10le", ("dnxhd", "yuv444p12le"): "yuv444p10le",
                    ("dnxhd", "gbrp12le"): "gbrp10le"}  # fmt: skip


def encoder_pix_fmt(facts: StreamFacts) -> str:
    """The pixel format to encode in: the source's, or the nearest its encoder takes."""
    return _ENCODER_PIX_FMT.get((facts.codec, facts.pix_fmt), facts.pix_fmt)


def available_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build has."""
    return ffmpeg_codecs("encoders")


def smart_cut_blocker(facts: StreamFacts) -> str | None:
    """Why GOPs of this file cannot be re-encoded in place (None when they can)."""
    from semfi_batch.media.codecs import KEYFRAME_CODECS, codec_plan

    if facts.codec in ("h264", "hevc") and facts.container is None and "mpegts" not in facts.format_name.split(","):
        return f"{facts.codec} in {facts.format_name} is re-encoded whole (smart cut of it: mp4, mov, mkv, ts)"
    if facts.codec == "h264":
        if "libx264" not in available_encoders():
            return "this ffmpeg has no libx264 encoder for h264"
        if facts.field_order:
            return f"interlaced h264 ({facts.field_order}) is re-encoded whole"
        return None
    if facts.codec == "rawvideo" and facts.container is None:
        # Copies go through MOV, which holds few raw layouts (no planar 4:2:2, for one).
        return f"rawvideo in {facts.format_name} is re-encoded whole"
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


# Encoders of long-GOP codecs that code every frame alone with `-g 1 -bf 0`: a source of such a codec whose
# every frame is a keyframe (MPEG-2 I-frame only: IMX/D-10, HDV intermediates) stays intra-only.
GOP_ENCODERS = frozenset({"mpeg2video", "mpeg1video", "mpeg4", "msmpeg4", "msmpeg4v2", "h263", "flv", "wmv1", "wmv2"})
# Encoders whose keyframe interval `-g` sets (x264's and x265's own keyint in -x264/-x265-params wins over it).
KEYINT_ENCODERS = GOP_ENCODERS | {"libx264", "libx265", "libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1"}


def choose_encoder(
    facts: StreamFacts,
    *,
    full: bool,
    own_ids: bool = False,
    reorder: int = 0,
    intra: bool = False,
    in_band_headers: bool = False,
    keyint: int | None = None,
) -> EncoderChoice:
    """Encoder settings reproducing the source. `full`: for a whole-file re-encode (no joins);
    `own_ids`: H.264 with private parameter-set ids (after identical headers could not be reproduced);
    `reorder`: the source's B-frame delay in frames (see `reorder_delay`), kept so timestamps join;
    `intra`: every frame of the source is a keyframe, and so is every frame encoded (GOP_ENCODERS; H.264
    keeps the source's own x264 settings); `in_band_headers`: H.264 keyframes carry their parameter sets (an
    MPEG-TS output, whose muxer does not put them back after copied packets that had their own); `keyint`: the
    source's keyframe interval (`keyframe_interval`), kept by a whole re-encode, whose encoder would otherwise
    take its own (12 frames for MPEG-2, 250 for x264 and x265, one keyframe in all for VP8/VP9). An encoder
    that does not take the pixel format asked of it is an error: ffmpeg would convert the frames."""
    choice = _encoder_for(facts, full=full, own_ids=own_ids, reorder=reorder, in_band_headers=in_band_headers)
    if intra and choice.encoder in GOP_ENCODERS:
        args = _intra_only(choice.encoder, choice.args, low_delay=reorder == 0)
        choice = replace(choice, args=args, note=f"{choice.note}, intra-only")
    elif full and keyint and choice.encoder in KEYINT_ENCODERS:
        note = f"{choice.note}, a keyframe at least every {keyint} frames as in the source"
        choice = replace(choice, args=_with_option(choice.args, "-g", str(keyint)), note=note)
    choice = replace(choice, args=_one_flags_option(choice.args))
    asked = [value for option, value in zip(choice.args, choice.args[1:]) if option == "-pix_fmt"]
    takes = encoder_pixel_formats(choice.encoder)
    if asked and takes and asked[-1] not in takes:
        raise MediaError(
            f"this ffmpeg's {choice.encoder} cannot encode {facts.codec} in {asked[-1]} (it takes "
            f"{', '.join(sorted(takes))}): re-encoded frames would change pixel format"
        )
    return choice


def _without_option(args: tuple[str, ...], option: str) -> tuple[str, ...]:
    """`args` without `option` and the value after it, wherever given."""
    kept: list[str] = []
    pairs = iter(args)
    for arg in pairs:
        if arg == option:
            next(pairs, None)
        else:
            kept.append(arg)
    return tuple(kept)


def _with_option(args: tuple[str, ...], option: str, value: str) -> tuple[str, ...]:
    """`args` with `option value` in place of any value they gave it."""
    return (*_without_option(args, option), option, value)


def _intra_only(encoder: str, args: tuple[str, ...], *, low_delay: bool) -> tuple[str, ...]:
    """`args` with every frame coded alone. `low_delay`: the source's I-frames decode as they show (IMX/D-10;
    others decode a frame ahead, as MPEG-2 does without it), so MPEG-2 gets low_delay, added to the flags
    (see `_one_flags_option`): the joins' decode times step as the source's."""
    out = [*args, "-g", "1", "-bf", "0"]
    if encoder == "mpeg2video" and low_delay:
        out += ["-flags", "+low_delay"]
    return tuple(out)


def _one_flags_option(args: tuple[str, ...]) -> tuple[str, ...]:
    """`args` with every `-flags` merged into the last one: ffmpeg keeps only the last `-flags` it is given,
    and the codec's (+cgop), the interlacing's (+ilme+ildct) and intra-only MPEG-2's (+low_delay) all hold."""
    flags = [value for option, value in zip(args, args[1:]) if option == "-flags"]
    if len(flags) < 2:
        return args
    return _with_option(args, "-flags", "".join(flags))


def _encoder_for(
    facts: StreamFacts, *, full: bool, own_ids: bool, reorder: int, in_band_headers: bool = False
) -> EncoderChoice:
    from semfi_batch.media.codecs import codec_plan

    encoders = available_encoders()
    base = ["-pix_fmt", encoder_pix_fmt(facts), *colour_args(facts)]
    filters = (f"setsar={facts.sar.replace(':', '/')}",) if facts.sar else ()
    if facts.codec == "h264" and "libx264" in encoders:
        return _x264_choice(
            facts, base, filters, full=full, own_ids=own_ids, reorder=reorder, in_band_headers=in_band_headers
        )
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
    facts: StreamFacts,
    base: list[str],
    filters: tuple[str, ...],
    *,
    full: bool,
    own_ids: bool,
    reorder: int,
    in_band_headers: bool = False,
) -> EncoderChoice:
    args = [*base]
    profile = X264_PROFILES.get(facts.profile.lower())
    if profile:
        args += ["-profile:v", profile]
    if facts.level > 0:
        args += ["-level", _h264_level(facts.level)]
    params = x264_params_from_sei(facts.x264_options) if facts.x264_options else None
    if params is not None and not own_ids:
        if in_band_headers:  # the same parameter sets, repeated at each keyframe (own ids repeat them always)
            params = {**params, "repeat-headers": 1}
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
    # Interlaced sources (re-encoded whole, see smart_cut_blocker) are coded interlaced again, in their field
    # order. x264 orders its POCs (the decoder's word) by each frame's flag (-top), but writes every picture's
    # pic_struct (the order ffprobe, players and MP4/TS readers state) from the order it started with, top
    # first unless told: each is given as the source has it (a BFF source came back stating tt).
    from semfi_batch.media.codecs import interlace_args

    interlace, field_order = interlace_args("h264", facts.field_order, facts.top_field_first)
    if interlace:
        x264["tff" if facts.field_order in ("tt", "bt") else "bff"] = 1
    args += ["-preset", "medium", "-x264-params", ":".join(f"{k}={v}" for k, v in x264.items())]
    note = "h264 re-encoded" + ("" if full else " with its own parameter-set ids")
    if interlace:
        args += list(interlace)
        note += f", interlaced ({facts.field_order})"
    return EncoderChoice("libx264", tuple(args), "full" if full else "own-ids", note, None, filters, field_order)


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
