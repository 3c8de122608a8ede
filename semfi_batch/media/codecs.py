"""Per codec: how to encode frames that join a source stream of that codec, and which container holds them.

Three ways a splice can treat a codec (see semfi_batch/splice/):
- intra-only (every packet a keyframe: ProRes, DNxHR/DNxHD, FFV1, MJPEG, ...): only the generated frames'
  packets are new; every other packet is copied, so untouched frames stay bit-identical;
- long-GOP with self-contained keyframes (MPEG-2, MPEG-4 Part 2, MS-MPEG4, VP8/VP9, HEVC, AV1, Cinepak,
  QuickTime Animation): whole GOPs holding generated frames are re-encoded, the rest copied (smart cut),
  checked by decoding every join; H.264 has its own rules in encode.py;
- anything else, or when a join does not verify: the whole video re-encoded in the same codec.

The encoder settings below aim at >= 45 dB PSNR against the source's decoded frames, in the source's
profile, pixel format and field order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from semfi_batch.media.tools import encoder_pixel_formats

# Codecs whose every frame is coded on its own: splicing replaces only the generated frames' packets.
INTRA_CODECS = frozenset({"prores", "dnxhd", "ffv1", "mjpeg", "huffyuv", "ffvhuff", "utvideo", "png", "v210",
                          "rawvideo", "jpeg2000", "magicyuv", "dvvideo", "r210", "r10k", "v410", "v308", "v408",
                          "ayuv", "yuv4", "y41p", "tiff", "dpx", "cfhd", "hap", "qoi", "bmp", "targa", "sgi",
                          "exr"})  # fmt: skip
# Codecs whose keyframes reset the decoder and whose packets are the same bytes in every container (no
# length-prefixed NAL units): their GOPs can be re-encoded in place and copied through MOV or Matroska.
KEYFRAME_CODECS = frozenset(
    {
        *INTRA_CODECS,
        "mpeg2video",
        "mpeg1video",
        "mpeg4",
        "msmpeg4v3",
        "msmpeg4v2",
        "cinepak",
        "qtrle",
        "vp8",
        "vp9",
        "av1",
        "theora",
        "h263",
        "flv1",
        "wmv2",
        "wmv1",
    }
)
# Codec tags worth keeping on re-encoded streams (players pick decoders by them in AVI and MOV).
KEEP_TAG = frozenset({"mpeg4", "msmpeg4v3", "msmpeg4v2", "hevc", "h263"})


@dataclass(frozen=True)
class CodecPlan:
    """How frames of one codec are encoded to match a source stream."""

    encoder: str
    args: tuple[str, ...]
    time_base: Fraction | None = None  # encoder clock when the codec needs whole frame periods (MPEG-2)
    output_args: tuple[str, ...] = ()  # muxer-level options (field order)


# Transfer characteristics by ffprobe's name, as ITU-T H.273 numbers them (x265's atc-sei takes the number).
TRANSFER_NUMBERS = {"bt709": 1, "gamma22": 4, "gamma28": 5, "smpte170m": 6, "smpte240m": 7, "linear": 8,
                    "log100": 9, "log316": 10, "iec61966-2-4": 11, "bt1361e": 12, "iec61966-2-1": 13,
                    "bt2020-10": 14, "bt2020-12": 15, "smpte2084": 16, "smpte428": 17, "arib-std-b67": 18}  # fmt: skip
# ProRes profiles by ffprobe's name (ffmpeg 5: Proxy, LT, Standard, HQ, 4444, XQ) and by the codec tag.
PRORES_PROFILES = {"proxy": "0", "lt": "1", "standard": "2", "hq": "3", "4444": "4", "xq": "5", "4444xq": "5"}
PRORES_TAGS = {"apco": "0", "apcs": "1", "apcn": "2", "apch": "3", "ap4h": "4", "ap4x": "5"}
DNXHR_PROFILES = {"dnxhr lb": "dnxhr_lb", "dnxhr sq": "dnxhr_sq", "dnxhr hq": "dnxhr_hq", "dnxhr hqx": "dnxhr_hqx",
                  "dnxhr 444": "dnxhr_444"}  # fmt: skip


DNXHD_MBPS = (36, 45, 60, 75, 85, 90, 100, 110, 115, 120, 145, 175, 180, 185, 220, 240, 290, 365, 440)


def interlace_args(
    codec: str, field_order: str | None, top_first: bool | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Encoder options for interlaced coding and the output options that flag the field order. `top_first`:
    whether the frames show the top field first (the source decoder's word); else the order's display field
    (tt, bt: top first)."""
    if field_order not in ("tt", "bb", "tb", "bt"):
        return (), ()
    top = "1" if (top_first if top_first is not None else field_order in ("tt", "bt")) else "0"
    enc: tuple[str, ...] = ()
    if codec in ("mpeg2video", "mpeg4", "dnxhd", "mjpeg", "prores", "dvvideo", "h264"):
        enc = ("-flags", "+ilme+ildct", "-top", top)
    elif codec == "hevc":
        enc = ()
    return enc, ("-field_order", field_order)


def _mpeg_family(facts, reorder: int, full: bool) -> tuple[str, ...]:
    # Closed GOPs, which the encoder makes only without scene-cut keyframes (the joins are at keyframes; a whole
    # re-encode's GOPs are as long as its -g in the order they show), the source's B-frame depth (decode times
    # must step alike), and quantisers near the finest, so untouched frames in re-encoded GOPs stay >= 45 dB.
    args = ["-q:v", "1", "-qmin", "1", "-qmax", "4", "-bf", "2" if reorder > 0 else "0"]
    args += ["-flags", "+cgop", "-sc_threshold", "1000000000"]
    if not full:
        args += ["-g", "600"]
    return tuple(args)


def _prores(facts, reorder, full) -> CodecPlan:
    profile = PRORES_PROFILES.get(facts.profile.lower().replace(" ", "")) or PRORES_TAGS.get(facts.codec_tag or "")
    if profile is None:  # neither name nor tag known: the 4:4:4 or 4:2:2 profile its pixel format needs
        profile = "4" if "444" in facts.pix_fmt else "3"
    enc, out = interlace_args("prores", facts.field_order, facts.top_field_first)
    args = ["-profile:v", profile, "-vendor", "apl0", *enc]
    if "a" in facts.pix_fmt.split("p")[0][3:]:  # yuva...: keep the alpha channel at full precision
        args += ["-alpha_bits", "16"]
    return CodecPlan("prores_ks", tuple(args), None, out)


def _dnxhd(facts, reorder, full) -> CodecPlan:
    enc, out = interlace_args("dnxhd", facts.field_order, facts.top_field_first)
    profile = DNXHR_PROFILES.get(facts.profile.lower())
    if profile:
        return CodecPlan("dnxhd", ("-profile:v", profile, *enc), None, out)
    # DNxHD: the bit rate picks the compression ID; take the listed rate nearest the measured one (which
    # counts container overhead).
    rate = (facts.bit_rate or 0) / 1_000_000
    mbps = min(DNXHD_MBPS, key=lambda m: abs(m - rate))
    return CodecPlan("dnxhd", ("-profile:v", "dnxhd", "-b:v", f"{mbps}M", *enc), None, out)


def _dv(facts, reorder, full) -> CodecPlan:
    enc, out = interlace_args("dvvideo", facts.field_order, facts.top_field_first)
    return CodecPlan("dvvideo", enc, None, out)


def _hap(facts, reorder, full) -> CodecPlan:
    kind = {"Hap5": "hap_alpha", "HapY": "hap_q"}.get(facts.codec_tag or "", "hap")
    return CodecPlan("hap", ("-format", kind))


def _ffv1(facts, reorder, full) -> CodecPlan:
    # Version 3 keeps its settings in the stream's extradata, which re-encoded frames would have to match;
    # versions 0/1 carry them in every keyframe. Either way FFV1 is lossless.
    if facts.extradata:
        return CodecPlan("ffv1", ("-level", "3", "-g", "1", "-slicecrc", "1"))
    return CodecPlan("ffv1", ("-g", "1"))  # the version ffmpeg picks for the format, as it did for the source


def _mjpeg(facts, reorder, full) -> CodecPlan:
    return CodecPlan("mjpeg", ("-q:v", "1", "-qmin", "1", "-huffman", "optimal"))


def _mpeg2(facts, reorder, full) -> CodecPlan:
    enc, out = interlace_args("mpeg2video", facts.field_order, facts.top_field_first)
    args = [*_mpeg_family(facts, reorder, full), *enc, "-intra_vlc", "1", "-b:v", "50M", "-maxrate", "80M",
            "-bufsize", "20M"]  # fmt: skip
    if facts.pix_fmt.startswith("yuv422"):
        args += ["-profile:v", "0"]  # 4:2:2 profile
    return CodecPlan("mpeg2video", tuple(args), _frame_clock(facts), out)


def _mpeg4(facts, reorder, full) -> CodecPlan:
    enc, out = interlace_args("mpeg4", facts.field_order, facts.top_field_first)
    advanced = facts.profile.lower().startswith("advanced simple")
    # AVI keeps no presentation times, so the B-frame delay is not measurable there: an Advanced Simple
    # source re-encoded whole gets B-frames (and keeps its profile).
    depth = reorder if reorder or not (advanced and full) else 1
    args = [*_mpeg_family(facts, depth, full), *enc, "-profile:v", "15" if advanced else "0"]
    return CodecPlan("mpeg4", tuple(args), _frame_clock(facts), out)


def _msmpeg4(encoder: str) -> Callable:
    def plan(facts, reorder, full) -> CodecPlan:
        args = ["-q:v", "1", "-qmin", "1", "-qmax", "4"]
        if not full:
            args += ["-g", "600", "-sc_threshold", "1000000000"]
        return CodecPlan(encoder, tuple(args), _frame_clock(facts))

    return plan


def _hevc(facts, reorder, full) -> CodecPlan:
    params = "log-level=error:repeat-headers=1:crf=8"
    if not full:
        params += f":keyint=600:min-keyint=1:scenecut=0:open-gop=0:bframes={min(max(reorder, 0) * 2, 4)}"
    params += _x265_hdr10(facts)
    if facts.preferred_transfer in TRANSFER_NUMBERS:
        params += f":atc-sei={TRANSFER_NUMBERS[facts.preferred_transfer]}"
    args = ["-preset", "medium", "-x265-params", params]
    enc, out = interlace_args("hevc", facts.field_order, facts.top_field_first)
    return CodecPlan("libx265", tuple(args), None, out)


def _x265_hdr10(facts) -> str:
    """x265 parameters repeating the source's HDR10 metadata (SEI at each keyframe, as the source has it):
    without them re-encoded GOPs had none, and players that read it per keyframe lost it there."""
    params = ""
    if facts.mastering_display is not None:
        rx, ry, gx, gy, bx, by, wx, wy, low, high = facts.mastering_display
        xy = lambda x, y: f"({round(x * 50000)},{round(y * 50000)})"  # noqa: E731 - units of 0.00002
        params += f":master-display=G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}"
        params += f"L({round(high * 10000)},{round(low * 10000)})"  # units of 0.0001 cd/m2
    if facts.content_light is not None:
        params += f":max-cll={facts.content_light[0]},{facts.content_light[1]}"
    return f":hdr10=1{params}" if params else ""


def _svtav1_hdr10(facts) -> str:
    """SVT-AV1 parameters repeating the source's HDR10 metadata (metadata OBUs at each keyframe, as SVT-AV1
    and other AV1 encoders write it): without them re-encoded GOPs had none. SVT-AV1 takes decimal values."""
    params = ""
    if facts.mastering_display is not None:
        rx, ry, gx, gy, bx, by, wx, wy, low, high = (f"{float(v):.10g}" for v in facts.mastering_display)
        params += f":mastering-display=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({high},{low})"
    if facts.content_light is not None:
        params += f":content-light={facts.content_light[0]},{facts.content_light[1]}"
    return params


def _av1(facts, reorder, full) -> CodecPlan:
    from semfi_batch.media.encode import available_encoders, encoder_pix_fmt

    # SVT-AV1 is the faster, but takes 4:2:0 at 8 or 10 bits only: libaom for 4:4:4, 4:2:2 and 12 bits.
    svt = encoder_pixel_formats("libsvtav1")
    if "libsvtav1" in available_encoders() and (not svt or encoder_pix_fmt(facts) in svt):
        gop = "-1" if full else "600"
        params = "scd=0" + _svtav1_hdr10(facts)
        return CodecPlan("libsvtav1", ("-qp", "4", "-preset", "8", "-g", gop, "-svtav1-params", params))
    # No temporal filtering of the alt-ref frames: with it, untouched frames of 12-bit 4:2:0 came back at 32 dB.
    return CodecPlan("libaom-av1", ("-crf", "3", "-b:v", "0", "-arnr-strength", "0", "-cpu-used", "6", "-g", "600"))


def _jpeg2000(facts, reorder, full) -> CodecPlan:
    """libopenjpeg where ffmpeg has it: lossless (its default, the reversible 5/3 wavelet) at every depth, as
    a raw codestream like the source's packets. ffmpeg's own encoder (-pred 1, also 5/3) only without it: at
    16 bits (rgb48) ffmpeg 5.1's is not lossless (a frame came back at 19 dB)."""
    from semfi_batch.media.encode import available_encoders

    if "libopenjpeg" in available_encoders():
        return CodecPlan("libopenjpeg", ("-format", "j2k"))
    return CodecPlan("jpeg2000", ("-pred", "1"))


def _simple(encoder: str, *args: str) -> Callable:
    def plan(facts, reorder, full) -> CodecPlan:
        extra = () if full or encoder in ("ffv1",) else ("-g", "600")
        return CodecPlan(encoder, (*args, *extra))

    return plan


def _frame_clock(facts) -> Fraction | None:
    """MPEG-1/2/4 encoders count time in frame periods (and at most 65535 per second)."""
    return 1 / facts.frame_rate if facts.frame_rate else None


CODEC_PLANS: dict[str, Callable] = {
    "prores": _prores,
    "dnxhd": _dnxhd,
    "ffv1": _ffv1,
    "mjpeg": _mjpeg,
    "mpeg2video": _mpeg2,
    "mpeg1video": lambda f, r, full: CodecPlan("mpeg1video", _mpeg_family(f, r, full), _frame_clock(f)),
    "mpeg4": _mpeg4,
    "msmpeg4v3": _msmpeg4("msmpeg4"),
    "msmpeg4v2": _msmpeg4("msmpeg4v2"),
    "hevc": _hevc,
    "av1": _av1,
    "cinepak": _simple("cinepak"),
    "qtrle": _simple("qtrle"),
    "huffyuv": _simple("huffyuv"),
    "ffvhuff": _simple("ffvhuff"),
    "utvideo": _simple("utvideo"),
    "png": _simple("png"),
    "theora": _simple("libtheora", "-q:v", "10"),
    "h263": _simple("h263", "-q:v", "1"),
    "flv1": _simple("flv", "-q:v", "1"),
    "wmv2": _simple("wmv2", "-q:v", "1"),
    "wmv1": _simple("wmv1", "-q:v", "1"),
    "dvvideo": _dv,
    "hap": _hap,
    "jpeg2000": _jpeg2000,
}  # fmt: skip
# The other intra codecs (v210, rawvideo, TIFF, DPX, CineForm, ...) go through their own encoder with its
# defaults: `codec_plan`'s rule for any codec without one here.


def codec_plan(facts, *, reorder: int, full: bool) -> CodecPlan | None:
    """Encoder settings that produce the source's codec: this module's rule for it, else the encoder of the
    codec's own name with its defaults, where ffmpeg has one (None: neither)."""
    from semfi_batch.media.encode import available_encoders

    rule = CODEC_PLANS.get(facts.codec)
    if rule is not None:
        return rule(facts, reorder, full)
    return CodecPlan(facts.codec, ()) if facts.codec in available_encoders() else None
