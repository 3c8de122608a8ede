"""The format matrix: numbered test clips in every codec and container an archive holds, made with ffmpeg,
and the checks a spliced result must pass. Used by tests/test_splice_formats.py (a subset) and
bench/formats_matrix.py (`make formats`, all of it).

Every clip's frame n shows n (tests/conftest.py `numbered_clip` pattern: luma levels in the left and right
halves), so a decoded frame says which source frame it is."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np

from semfi_batch.media.frame_pipes import exact_rgb_graph

# The numbered pattern (see tests/conftest.py): left half 16*(n % 14) + 16, right half 16*(n // 14) + 16.
LUMA = "if(lt(X,W/2),16*mod(N,14)+16,16*floor(N/14)+16)"
SINE = "sine=f=440:r=48000"
# Alpha of the clips that have it: opaque above, translucent below (a splice that drops it shows).
ALPHA = "if(lt(Y,H/2),255,96)"


@dataclass(frozen=True)
class Recipe:
    """One cell of the matrix: a clip made by ffmpeg, and what its splice must keep."""

    name: str
    ext: str
    video: tuple[str, ...]  # ffmpeg output options for the video stream
    size: str = "96x64"
    fps: str = "25"
    frames: int = 30
    audio: tuple[str, ...] = ()  # ffmpeg output options for a sine tone; empty: no audio
    pix: str = "yuv420p"  # pixel format the pattern is drawn in before the encoder's conversion
    filters: tuple[str, ...] = ()  # extra filters after the pattern (VFR timing, dropped frames)
    extra: tuple[str, ...] = ()  # other output options (timecode, rotation, field order)
    remux: tuple[str, ...] = ()  # a second pass with -c copy and these input options (edit lists)
    retag: tuple[str, ...] = ()  # output options of that second pass (a display rotation tagged on a copy)
    intra: bool = False  # every untouched frame must come back bit-identical (packets copied)
    lossless_frames: bool = False  # intra and lossless: decoded frames equal the source's exactly
    needs: tuple[str, ...] = ()  # encoders the clip needs (the cell is skipped without them)
    notes: str = ""


def _x264(*more: str, pix_fmt: str = "yuv420p") -> tuple[str, ...]:
    return ("-c:v", "libx264", "-crf", "8", "-g", "12", "-bf", "2", "-pix_fmt", pix_fmt, *more)


AAC = ("-c:a", "aac", "-b:a", "96k")
PCM = ("-c:a", "pcm_s16le")
OPUS = ("-c:a", "libopus", "-b:a", "64k")
MP2 = ("-c:a", "mp2", "-b:a", "128k")
MP3 = ("-c:a", "libmp3lame", "-b:a", "96k")
FLAC = ("-c:a", "flac")

RECIPES: tuple[Recipe, ...] = (
    Recipe("h264-mp4", "mp4", _x264(), audio=AAC),
    Recipe("h264-10bit-mkv", "mkv", _x264(pix_fmt="yuv420p10le"), audio=AAC),
    Recipe("h264-opengop-mov", "mov", _x264("-x264-params", "open-gop=1:keyint=12:bframes=3"), audio=AAC),
    Recipe("h264-avi", "avi", _x264("-bf", "0"), audio=MP3),
    Recipe("h264-ts", "ts", _x264(), audio=AAC),
    # At 24 fps the stream starts at 1.4 s + 2/24 s (the B-frame delay): a time no millisecond clock holds.
    Recipe("h264-24p-ts", "ts", _x264(), fps="24", audio=AAC),
    Recipe(
        "hevc-10bit-mp4",
        "mp4",
        (
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "keyint=12:min-keyint=12:bframes=2:log-level=error:lossless=1",
            "-tag:v",
            "hvc1",
        ),
        audio=AAC,
        needs=("libx265",),
    ),  # fmt: skip
    Recipe(
        "vp9-webm",
        "webm",
        ("-c:v", "libvpx-vp9", "-lossless", "1", "-g", "12", "-row-mt", "1"),
        audio=OPUS,
        needs=("libvpx-vp9",),
    ),  # fmt: skip
    Recipe(
        "av1-mkv",
        "mkv",
        ("-c:v", "libsvtav1", "-qp", "10", "-g", "12", "-preset", "10"),
        size="128x72",
        audio=OPUS,
        needs=("libsvtav1",),
    ),  # fmt: skip
    Recipe("mpeg2-ts", "ts", ("-c:v", "mpeg2video", "-q:v", "1", "-qmin", "1", "-g", "12", "-bf", "2"), audio=MP2),
    Recipe(
        "mpeg2-tff-ts",
        "ts",
        ("-c:v", "mpeg2video", "-q:v", "1", "-qmin", "1", "-g", "12", "-bf", "2", "-flags", "+ilme+ildct", "-top", "1"),
        size="176x144",
        fps="30000/1001",
        filters=("setfield=tff",),
        extra=("-field_order", "tt"),
        audio=MP2,
    ),  # fmt: skip
    Recipe(
        "mpeg2-bff-mxf",
        "mxf",
        (
            "-c:v",
            "mpeg2video",
            "-q:v",
            "1",
            "-qmin",
            "1",
            "-g",
            "12",
            "-bf",
            "2",
            "-flags",
            "+ilme+ildct",
            "-top",
            "0",
            "-pix_fmt",
            "yuv422p",
        ),
        size="176x144",
        filters=("setfield=bff",),
        extra=("-field_order", "bb", "-timecode", "10:00:00:00"),
        audio=PCM,
    ),  # fmt: skip
    Recipe(
        "mpeg4-bframes-avi",
        "avi",
        ("-c:v", "mpeg4", "-q:v", "1", "-g", "12", "-bf", "2", "-vtag", "DIVX"),
        audio=MP3,
        notes="B-frames unpacked: no ffmpeg encoder writes packed bitstreams",
    ),  # fmt: skip
    Recipe("msmpeg4v3-avi", "avi", ("-c:v", "msmpeg4", "-q:v", "1", "-g", "12"), audio=MP3),
    Recipe(
        "prores-hq-mov",
        "mov",
        ("-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"),
        extra=("-timecode", "01:00:00:00"),
        audio=PCM,
        intra=True,
    ),  # fmt: skip
    Recipe(
        "prores-4444-alpha-mov",
        "mov",
        ("-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuva444p10le"),
        pix="yuva444p",
        audio=PCM,
        intra=True,
    ),  # fmt: skip
    Recipe(
        "dnxhr-hq-mxf",
        "mxf",
        ("-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"),
        size="256x144",
        extra=("-timecode", "00:59:58:00"),
        audio=PCM,
        intra=True,
    ),  # fmt: skip
    Recipe(
        "dnxhd-mov",
        "mov",
        ("-c:v", "dnxhd", "-b:v", "90M", "-pix_fmt", "yuv422p"),
        size="1280x720",
        frames=24,
        audio=PCM,
        intra=True,
    ),  # fmt: skip
    Recipe(
        "ffv1-odd-mkv", "mkv", ("-c:v", "ffv1", "-g", "1"), size="175x143", audio=FLAC, intra=True, lossless_frames=True
    ),  # fmt: skip
    Recipe("mjpeg-avi", "avi", ("-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"), audio=PCM, intra=True),
    Recipe(
        "qtrle-odd-mov",
        "mov",
        ("-c:v", "qtrle", "-g", "1"),
        size="99x77",
        pix="rgb24",
        intra=True,
        lossless_frames=True,
    ),  # fmt: skip
    Recipe(
        "cinepak-sparse-avi",
        "avi",
        ("-c:v", "cinepak", "-g", "1"),
        size="96x64",
        filters=("select='not(between(n\\,12\\,14))'",),
        extra=("-fps_mode", "passthrough"),
        intra=True,
        notes="frames 12-14 dropped: the AVI holds empty chunks there",
    ),  # fmt: skip
    Recipe(
        "h264-editlist-mp4",
        "mp4",
        _x264(),
        frames=36,
        audio=AAC,
        remux=("-ss", "0.2"),
        notes="cut with -ss on a stream copy: an edit list hides the GOP's first frames",
    ),  # fmt: skip
    Recipe(
        "h264-vfr-mkv",
        "mkv",
        _x264(),
        filters=("setpts='N/25/TB+gte(N\\,15)*0.1/TB'",),
        extra=("-fps_mode", "passthrough"),
        audio=AAC,
        notes="a 100 ms hole at frame 15",
    ),  # fmt: skip
    # Rotation tagged on a copy (ffmpeg 5.1 drops the tag while encoding: the cell had no rotation at all).
    Recipe("h264-rotated-mp4", "mp4", _x264(), retag=("-metadata:s:v:0", "rotate=90"), audio=AAC),
    Recipe(
        "prores-xq-alpha-mov",
        "mov",
        ("-c:v", "prores_ks", "-profile:v", "5", "-pix_fmt", "yuva444p10le"),
        pix="yuva444p",
        fps="30000/1001",
        extra=("-timecode", "01:00:00;00"),
        audio=PCM,
        intra=True,
        notes="ProRes 4444 XQ: profile and alpha kept; drop-frame timecode",
    ),  # fmt: skip
    Recipe(
        "prores-hq-bff-mov",
        "mov",
        ("-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-flags", "+ildct", "-top", "0"),
        filters=("setfield=bff",),
        extra=("-field_order", "bb"),
        audio=PCM,
        intra=True,
        notes="interlaced ProRes: generated frames coded interlaced too",
    ),  # fmt: skip
    Recipe(
        "dnxhr-sq-2997-mxf",
        "mxf",
        ("-c:v", "dnxhd", "-profile:v", "dnxhr_sq", "-pix_fmt", "yuv422p"),
        size="256x144",
        fps="30000/1001",
        extra=("-timecode", "01:00:00;00"),
        audio=PCM,
        intra=True,
        notes="MXF at 29.97: its clock is the frame period, 1001/30000",
    ),  # fmt: skip
    Recipe(
        "mpeg2-ps-mpg",
        "mpg",
        ("-c:v", "mpeg2video", "-q:v", "1", "-qmin", "1", "-g", "12", "-bf", "2"),
        size="176x144",
        audio=MP2,
        notes="a program stream: frames that share a PES carry no presentation time",
    ),  # fmt: skip
    Recipe(
        "v210-mov",
        "mov",
        (
            "-c:v",
            "v210",
        ),
        pix="yuv422p10le",
        audio=PCM,
        intra=True,
        lossless_frames=True,
    ),
    Recipe(
        "raw-yuv422p-avi",
        "avi",
        ("-c:v", "rawvideo", "-pix_fmt", "yuv422p"),
        audio=PCM,
        intra=True,
        lossless_frames=True,
        notes="planar 4:2:2 raw (Y42B): MOV cannot carry it, so it is re-encoded whole",
    ),  # fmt: skip
    Recipe(
        "dv-pal-avi",
        "avi",
        ("-c:v", "dvvideo", "-pix_fmt", "yuv420p", "-flags", "+ildct", "-top", "0"),
        size="720x576",
        frames=26,
        filters=("setfield=bff",),
        audio=PCM,
        intra=True,
        notes="DV: AVI says no field order, the decoder says bottom first",
    ),  # fmt: skip
    Recipe(
        "dv-ntsc-avi",
        "avi",
        ("-c:v", "dvvideo", "-pix_fmt", "yuv411p", "-flags", "+ildct", "-top", "0"),
        size="720x480",
        fps="30000/1001",
        frames=26,
        filters=("setfield=bff",),
        audio=PCM,
        intra=True,
        notes="DV NTSC: AVI's clock is the frame period (the pieces' MOV clock made it 59.94)",
    ),  # fmt: skip
    Recipe(
        "ffv1-rgb-mkv",
        "mkv",
        ("-c:v", "ffv1", "-level", "3", "-g", "1", "-pix_fmt", "gbrp10le"),
        pix="gbrp",
        audio=FLAC,
        intra=True,
        lossless_frames=True,
        notes="an RGB source: its matrix is tagged gbr",
    ),  # fmt: skip
    Recipe(
        "vp9-alpha-webm",
        "webm",
        ("-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-crf", "10", "-b:v", "0", "-g", "12", "-auto-alt-ref", "0"),
        pix="yuva420p",
        audio=OPUS,
        needs=("libvpx-vp9",),
        notes="alpha beside the picture (BlockAdditional, AlphaMode): read by libvpx, kept",
    ),  # fmt: skip
    Recipe(
        "vp8-webm", "webm", ("-c:v", "libvpx", "-crf", "4", "-b:v", "4M", "-g", "12"), audio=OPUS, needs=("libvpx",)
    ),
    Recipe(
        "vp8-alpha-webm",
        "webm",
        ("-c:v", "libvpx", "-pix_fmt", "yuva420p", "-crf", "4", "-b:v", "4M", "-g", "12", "-auto-alt-ref", "0"),
        pix="yuva420p",
        needs=("libvpx",),
        notes="as VP9: alpha beside the picture",
    ),  # fmt: skip
)


def recipe(name: str) -> Recipe:
    """The recipe called `name`."""
    return next(r for r in RECIPES if r.name == name)


def make_clip(r: Recipe, folder: Path) -> Path:
    """Write the recipe's clip into `folder` (once: an existing clip is reused)."""
    out = folder / f"{r.name}.{r.ext}"
    if out.exists():
        return out
    tmp = folder / f".{r.name}.tmp.{r.ext}"
    chain = [f"geq=lum='{LUMA}':cb=128:cr=128" + (f":a='{ALPHA}'" if "yuva" in r.pix else ""), *r.filters]
    base = "yuva444p" if "yuva" in r.pix else "yuv444p"
    chain.insert(0, f"format={base}")
    if r.pix == "rgb24":
        chain.append("format=rgb24")
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"nullsrc=s={r.size}:r={r.fps}"]
    if r.audio:
        args += ["-f", "lavfi", "-i", SINE]
    args += ["-vf", ",".join(chain), "-frames:v", str(r.frames), "-map", "0:v"]
    if r.audio:
        seconds = r.frames / float(eval_rate(r.fps))
        args += ["-map", "1:a", *r.audio, "-t", f"{seconds:.3f}"]
    args += [*r.video, *r.extra]
    subprocess.run([*args, str(tmp)], check=True, capture_output=True)
    if r.remux or r.retag:
        cut = folder / f".{r.name}.cut.{r.ext}"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", *r.remux, "-i", str(tmp), "-map", "0", "-c", "copy",
             *r.retag, str(cut)],
            check=True,
        )  # fmt: skip
        cut.replace(tmp)
    tmp.replace(out)
    return out


def eval_rate(rate: str) -> float:
    num, _, den = rate.partition("/")
    return float(num) / float(den or 1)


# --- what a result is checked for ---------------------------------------------------------------------------


@dataclass
class StreamReport:
    """The facts of a file that a splice must keep."""

    codec: str
    profile: str
    pix_fmt: str
    field_order: str
    timecode: str
    frame_rate: str
    colour: str = "-"  # range/matrix/primaries/transfer as tagged
    tag: str = "-"  # the four-character code
    audio: list[str] = field(default_factory=list)
    frames: int = 0
    time_base: str = "-"  # the video's clock: in AVI and MXF, the frame period the header states


def stream_report(path: Path) -> StreamReport:
    """ffprobe's view of the first video stream and every audio stream."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    meta = json.loads(out)
    streams = meta.get("streams", [])
    video = next(s for s in streams if s.get("codec_type") == "video")
    timecode = (
        (video.get("tags") or {}).get("timecode")
        or (meta.get("format", {}).get("tags") or {}).get("timecode")
        or next(((s.get("tags") or {}).get("timecode") for s in streams if (s.get("tags") or {}).get("timecode")), "")
    )
    audio = [f"{s['codec_name']}/{s.get('channels')}ch/{s.get('sample_rate')}" for s in streams
             if s.get("codec_type") == "audio"]  # fmt: skip
    return StreamReport(
        codec=video.get("codec_name", ""),
        profile=str(video.get("profile", "")),
        pix_fmt="yuva420p" if _side_alpha(video) else video.get("pix_fmt", ""),
        field_order=video.get("field_order", "unknown") if video.get("field_order") not in (None, "unknown") else "-",
        timecode=timecode or "-",
        frame_rate=video.get("r_frame_rate", ""),
        colour="/".join(
            str(video.get(k, "unknown")) for k in ("color_range", "color_space", "color_primaries", "color_transfer")
        ),  # fmt: skip
        audio=audio,
        tag=video.get("codec_tag_string", "-"),
        time_base=video.get("time_base", "-"),
    )


def avi_index_flags_every_frame_key(path: Path) -> None:
    """Rewrite an AVI's idx1 so that it calls every video chunk a keyframe, as some old writers did."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"idx1")
    (size,) = struct.unpack_from("<I", data, at + 4)
    for entry in range(at + 8, at + 8 + size, 16):
        if data[entry : entry + 2] == b"00":
            (flags,) = struct.unpack_from("<I", data, entry + 4)
            struct.pack_into("<I", data, entry + 4, flags | 0x10)  # AVIIF_KEYFRAME
    path.write_bytes(bytes(data))


def interlaced_frames(path: Path) -> list[bool]:
    """Whether each decoded frame is coded interlaced (the decoder's flag)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=interlaced_frame", "-of",
         "csv=p=0", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return [line.strip().startswith("1") for line in out.splitlines() if line.strip()]


def _side_alpha(video: dict) -> bool:
    """Whether a VP8/VP9 stream keeps alpha beside its picture (Matroska AlphaMode): only libvpx decodes it."""
    tags = {k.lower(): v for k, v in (video.get("tags") or {}).items()}
    return video.get("codec_name") in ("vp8", "vp9") and tags.get("alpha_mode") == "1"


def _first_video(path: Path) -> Mapping:
    """ffprobe's description of `path`'s first video stream (probed once per version of the file: each check
    decodes a file several ways)."""
    st = path.stat()
    return _first_video_of(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


@lru_cache(maxsize=64)
def _first_video_of(path: str, size: int, mtime_ns: int, inode: int) -> Mapping:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json", path],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return MappingProxyType(json.loads(out)["streams"][0])


def _decoder_args(video: dict) -> list[str]:
    if not _side_alpha(video):
        return []
    return ["-c:v", "libvpx-vp9" if video["codec_name"] == "vp9" else "libvpx"]


def decoder(path: Path) -> list[str]:
    """Input options that pick the decoder reading all of `path`'s first video stream (its alpha included)."""
    return _decoder_args(_first_video(path))


def decode_frames(path: Path, pix_fmt: str = "rgb24", *, rotated: bool = False, keep_alpha: bool = False) -> np.ndarray:
    """Every frame as decoded in presentation order (stored orientation, or as displayed with `rotated`;
    no frame-rate conversion)."""
    st = _first_video(path)
    w, h = (int(st["height"]), int(st["width"])) if rotated else (int(st["width"]), int(st["height"]))
    # Deep YUV read at 16 bits as the run reads it (zscale: ffmpeg's own scaler puts its levels up to 255 codes low).
    exact = exact_rgb_graph(st.get("pix_fmt", ""), st.get("color_space"), st.get("color_range"))
    graph = ["-vf", exact] if pix_fmt == "rgb48le" and exact else []
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *([] if rotated else ["-noautorotate"]), *_decoder_args(st), "-i",
         str(path), "-map", "0:v:0", *graph, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    channels = 4 if pix_fmt == "rgba" else 3
    dtype = np.uint16 if pix_fmt == "rgb48le" else np.uint8
    frames = np.frombuffer(raw, dtype).reshape(-1, h, w, channels)
    return frames if keep_alpha else frames[..., :3]


def frame_hashes(path: Path) -> list[str]:
    """MD5 of each decoded frame in its own pixel format (ffmpeg framemd5), presentation order."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-noautorotate", *decoder(path), "-i", str(path), "-map", "0:v:0",
         "-fps_mode", "passthrough", "-f", "framemd5", "-"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return [ln.rsplit(",", 1)[1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]


def _rgb8(picture: np.ndarray) -> np.ndarray:
    rgb = picture[..., :3]
    return (rgb.astype(np.float64) / 257.0).round().astype(np.uint8) if rgb.dtype == np.uint16 else rgb


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@dataclass
class CellResult:
    """One row of the matrix table."""

    name: str
    method: str = ""
    codec: str = ""
    profile: str = ""
    pix_fmt: str = ""
    field_order: str = ""
    timecode: str = ""
    audio: str = ""
    frames: str = ""
    untouched: str = ""
    generated: str = ""
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_splice(
    r: Recipe,
    source: Path,
    output: Path,
    expected: Sequence[int],
    gen_frames: dict[int, np.ndarray],
    rotation: int = 0,
    reencoded: bool = False,
) -> CellResult:
    """Compare a spliced `output` with its `source`: `expected[j]` is the source frame output frame j shows
    (-1 for a generated one) and `gen_frames[j]` the RGB picture generated frame j should look like.
    `reencoded`: the whole video was re-encoded on purpose (--reencode), so untouched frames need >= 45 dB,
    not bit identity."""
    res = CellResult(r.name)
    want, got = stream_report(source), stream_report(output)
    for key in ("codec", "profile", "pix_fmt", "field_order", "timecode"):
        a, b = getattr(want, key), getattr(got, key)
        setattr(res, key, b if a == b else f"{b} (src {a})")
        if a != b:
            res.problems.append(f"{key} {b} != {a}")
    clock = ("time_base",) if output.suffix.lower() in (".avi", ".mxf") else ()  # the frame period as stated
    for key in ("frame_rate", "colour", "tag", *clock):  # checked, not shown
        a, b = getattr(want, key), getattr(got, key)
        if a != b:
            res.problems.append(f"{key} {b} != {a}")
    coded = interlaced_frames(source)
    if coded and all(coded):  # an interlaced source: so must every frame of the output be
        progressive = interlaced_frames(output).count(False)
        if progressive:
            res.problems.append(f"{progressive} frames coded progressive in an interlaced source")
    res.audio = ",".join(got.audio) or "-"
    if want.audio != got.audio:
        res.problems.append(f"audio {got.audio} != {want.audio}")
    src_rgb, out_rgb = decode_frames(source), decode_frames(output)
    res.frames = f"{len(out_rgb)}/{len(expected)}"
    if len(out_rgb) != len(expected):
        res.problems.append(f"{len(out_rgb)} frames, expected {len(expected)}")
        return res
    untouched = [j for j, s in enumerate(expected) if s >= 0]
    if r.intra and not reencoded:
        src_h, out_h = frame_hashes(source), frame_hashes(output)
        same = sum(src_h[expected[j]] == out_h[j] for j in untouched)
        res.untouched = f"{same}/{len(untouched)} identical"
        if same != len(untouched):
            res.problems.append(f"{len(untouched) - same} untouched frames differ")
    else:
        worst = min(psnr(src_rgb[expected[j]], out_rgb[j]) for j in untouched)
        res.untouched = f">= {worst:.1f} dB"
        if worst < 45.0:
            res.problems.append(f"untouched frames down to {worst:.1f} dB")
    if frame_format(want.pix_fmt)[1]:  # the source has alpha: so must the untouched frames, as they were
        src_a = decode_frames(source, "rgba", keep_alpha=True)[..., 3]
        out_a = decode_frames(output, "rgba", keep_alpha=True)[..., 3]
        error = max(float(np.abs(src_a[expected[j]].astype(float) - out_a[j]).mean()) for j in untouched)
        if error > 2.0:
            res.problems.append(f"alpha of untouched frames lost (error {error:.1f})")
    gen = [j for j, s in enumerate(expected) if s < 0]
    if rotation in (90, 270):
        out_rgb = decode_frames(output, rotated=True)
    worst_gen = min((psnr(_rgb8(gen_frames[j]), out_rgb[j]) for j in gen), default=100.0)
    res.generated = f"{len(gen)} at >= {worst_gen:.1f} dB"
    if worst_gen < 30.0:
        res.problems.append(f"generated frames not in place ({worst_gen:.1f} dB)")
    deep = [j for j in gen if gen_frames[j].dtype == np.uint16]
    if deep:
        # Deep frames are encoded from their 16 bits: the colour comes back off the 8-bit grid.
        out16 = decode_frames(output, "rgb48le", rotated=rotation in (90, 270))
        error = max(float(np.abs(out16[j].astype(float) - gen_frames[j][..., :3]).mean()) for j in deep)
        res.generated += f", 16-bit error {error:.0f}"
        if error > DEEP_OFFSET / 2:
            res.problems.append(f"deep generated frames went through 8 bits (error {error:.0f} of 65535)")
    with_alpha = [j for j in gen if gen_frames[j].shape[2] == 4]
    if with_alpha:
        alpha = decode_frames(output, "rgba", rotated=rotation in (90, 270), keep_alpha=True)
        scale = 257.0 if gen_frames[with_alpha[0]].dtype == np.uint16 else 1.0
        error = max(abs(float(alpha[j][..., 3].mean()) - float(gen_frames[j][..., 3].mean()) / scale)
                    for j in with_alpha)  # fmt: skip
        res.generated += f", alpha error {error:.1f}"
        if error > 2.0:
            res.problems.append(f"alpha of generated frames lost (error {error:.1f})")
    res.ok = not res.problems
    return res


# --- run folders --------------------------------------------------------------------------------------------

# Rows every cell splices: a replace row early (3 frames) and an insert row later (4 frames).
EDITS = ({"pair_id": "r1", "mode": "replace", "start": 4, "end": 8}, {"pair_id": "i1", "mode": "insert",
         "start": 20, "end": 21, "gap": 4})  # fmt: skip


def expected_order(frame_count: int, edits: Sequence[dict]) -> list[int]:
    """Source frame shown by each output frame (-1: generated), for replace/insert rows in order."""
    order: list[int] = []
    cursor = 0
    for e in sorted(edits, key=lambda e: e["start"]):
        order += list(range(cursor, e["start"] + 1))
        gap = e.get("gap", e["end"] - e["start"] - 1)
        order += [-1] * gap
        cursor = e["end"]
    return order + list(range(cursor, frame_count))


def frame_format(pix_fmt: str) -> tuple[bool, bool]:
    """(more than 8 bits, has alpha) for a source pixel format: what its generated PNGs hold (16-bit RGB for
    deep sources, RGBA for sources with alpha: the contract with frame extraction)."""
    deep = any(t in pix_fmt for t in ("10", "12", "14", "16"))
    alpha = pix_fmt.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya"))
    return deep, alpha


# In deep PNGs the generated colour sits half an 8-bit step off the 8-bit grid, so a path through 8 bits shows.
DEEP_OFFSET = 128


def write_run_folder(
    run_dir: Path, source: Path, edits: Sequence[dict], size: tuple[int, int], pix_fmt: str = "yuv420p"
) -> Path:
    """A run folder as `semfi-batch run` lays it out (manifest copy, run.json, jobs/<pair_id>/frames and
    record.json), with solid-colour generated frames of `size` (width, height: the display size): 16-bit RGB
    PNGs for deep sources, RGBA (alpha 40 + 50 k) for sources with alpha."""
    import cv2

    from semfi_batch.manifest import write_manifest

    deep, alpha = frame_format(pix_fmt)
    rows = []
    for n, e in enumerate(edits):
        gap = e.get("gap", e["end"] - e["start"] - 1)
        rows.append({"pair_id": e["pair_id"], "source": str(source), "start_frame": e["start"],
                     "end_frame": e["end"], "mode": e["mode"], "gap_frames": gap, "reason": "matrix"})  # fmt: skip
        folder = run_dir / "jobs" / e["pair_id"]
        (folder / "frames").mkdir(parents=True, exist_ok=True)
        for k in range(gap):
            colour = [200 - 60 * (n % 3), 40 + 70 * (n % 2), 40 + 30 * k]
            if alpha:
                colour.append(40 + 50 * k)
            picture = np.full((size[1], size[0], len(colour)), colour, np.uint8)
            if deep:
                picture = picture.astype(np.uint16) * 257 + DEEP_OFFSET
            order = cv2.COLOR_RGBA2BGRA if alpha else cv2.COLOR_RGB2BGR
            cv2.imwrite(str(folder / "frames" / f"{k + 1:06d}.png"), cv2.cvtColor(picture, order))
        record = {"pair_id": e["pair_id"], "status": "done", "error": None, "mode": e["mode"],
                  "start_frame": e["start"], "end_frame": e["end"], "gap_frames": gap, "frames": gap}  # fmt: skip
        (folder / "record.json").write_text(json.dumps(record))
    write_manifest(rows, run_dir / "manifest.parquet")
    (run_dir / "run.json").write_text(json.dumps({"manifest": str(run_dir / "manifest.parquet"), "backend": "blend"}))
    return run_dir


def read_png(path: Path) -> np.ndarray:
    """A PNG as RGB or RGBA, 8 or 16 bits, as stored."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def generated_pictures(run_dir: Path, edits: Sequence[dict], order: Sequence[int]) -> dict[int, np.ndarray]:
    """Output frame index -> the picture (RGB or RGBA, 8 or 16 bits) generated for that place."""
    pictures: list[np.ndarray] = []
    for e in sorted(edits, key=lambda e: e["start"]):
        for png in sorted((run_dir / "jobs" / e["pair_id"] / "frames").glob("*.png")):
            pictures.append(read_png(png))
    slots = [j for j, s in enumerate(order) if s < 0]
    return dict(zip(slots, pictures))
