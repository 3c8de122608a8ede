"""The format matrix for frame-exactness tests: tiny clips made with ffmpeg lavfi in every container and
codec an archive holds. Every clip's frame n shows n (the numbered pattern of `conftest.numbered_clip`, read
back with `conftest.frame_number`), has a texture band top and bottom (so no frame is flat), and frame
`BLACK_AT` is planted black (what `detect --mode damage` must find at that index)."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

BLACK_AT = 20
FRAMES = 32
# Frame n: left half 16*(n % 14) + 16, right half 16*(n // 14) + 16; rows in the top and bottom eighth a
# horizontal ramp; frame BLACK_AT all black.
_NUMBERED = "if(lt(X,W/2),16*mod(N,14)+16,16*floor(N/14)+16)"
_LUM = f"if(eq(N,{BLACK_AT}),16,if(lt(Y,H/8)+gt(Y,7*H/8),16+200*X/W,{_NUMBERED}))"
# Alpha: a vertical ramp that moves with the frame number (so it is checkable per frame).
_ALPHA = "mod(64+255*Y/H+4*N,256)"


@dataclass(frozen=True)
class ClipFormat:
    """One cell of the matrix: container (by file suffix), encoder arguments and what the source holds."""

    name: str
    suffix: str
    encode: tuple[str, ...]
    size: str = "64x48"
    fps: str = "25"
    frames: int = FRAMES
    alpha: bool = False
    deep: bool = False  # above 8 bits
    field_order: str = "progressive"
    # Extra filters after the pattern (timestamps, field order), and arguments after the encoder.
    filters: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    packed_bframes: bool = False  # rewrite the AVI as DivX does: P+B in one chunk, then an N-VOP
    edit_list: bool = False  # cut the start off a copy: an MP4 whose edit list skips decoded frames
    rotate: int = 0  # display rotation metadata, set on a stream copy

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.suffix}"


X264 = ("-c:v", "libx264", "-crf", "8", "-g", "12", "-bf", "2", "-pix_fmt", "yuv420p")
MPEG2 = ("-c:v", "mpeg2video", "-q:v", "2", "-g", "12", "-bf", "2")
VP9_ALPHA = ("-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-crf", "10", "-b:v", "0", "-auto-alt-ref", "0")

FORMATS: tuple[ClipFormat, ...] = (
    ClipFormat("h264_mp4", "mp4", X264),
    ClipFormat("h264_mov", "mov", X264),
    ClipFormat("h264_mkv_opengop", "mkv", (*X264, "-x264-params", "open-gop=1:keyint=8:min-keyint=8")),
    ClipFormat("h264_avi_bframes", "avi", X264),
    ClipFormat("h264_ts", "ts", X264),
    ClipFormat(
        "h264_10bit_mov", "mov", ("-c:v", "libx264", "-crf", "8", "-bf", "2", "-pix_fmt", "yuv420p10le"), deep=True
    ),
    ClipFormat(
        "hevc_10bit_mp4",
        "mp4",
        (
            "-c:v",
            "libx265",
            "-crf",
            "10",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error:keyint=12:bframes=2",
        ),
        deep=True,
    ),
    ClipFormat(
        "vp9_webm",
        "webm",
        ("-c:v", "libvpx-vp9", "-crf", "10", "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8", "-g", "12"),
    ),
    ClipFormat("av1_mkv", "mkv", ("-c:v", "libsvtav1", "-crf", "20", "-preset", "12", "-g", "12"), size="64x64"),
    ClipFormat("mpeg2_mpg", "mpg", MPEG2),
    ClipFormat(
        "mpeg2_ts_tff",
        "ts",
        (*MPEG2, "-flags", "+ilme+ildct", "-top", "1"),
        size="64x64",
        filters=("setfield=tff",),
        field_order="tt",
    ),
    ClipFormat(
        "mpeg2_ts_bff",
        "ts",
        (*MPEG2, "-flags", "+ilme+ildct", "-top", "0"),
        size="64x64",
        filters=("setfield=bff",),
        field_order="bb",
    ),
    ClipFormat("mpeg4_avi_bframes", "avi", ("-c:v", "mpeg4", "-q:v", "2", "-bf", "2", "-g", "12", "-vtag", "DX50")),
    ClipFormat(
        "mpeg4_avi_packed",
        "avi",
        ("-c:v", "mpeg4", "-q:v", "2", "-bf", "2", "-g", "12", "-vtag", "DX50"),
        packed_bframes=True,
    ),
    ClipFormat("msmpeg4v3_avi", "avi", ("-c:v", "msmpeg4", "-q:v", "2")),
    ClipFormat("prores_hq_mov", "mov", ("-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"), deep=True),
    ClipFormat(
        "prores_4444_alpha_mov",
        "mov",
        ("-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"),
        alpha=True,
        deep=True,
    ),
    ClipFormat("qtrle_alpha_mov", "mov", ("-c:v", "qtrle", "-pix_fmt", "argb"), alpha=True),
    # VP9's alpha rides beside the picture (WebM BlockAdditional): ffmpeg's own decoder drops it, libvpx reads it.
    ClipFormat("vp9_alpha_webm", "webm", (*VP9_ALPHA, "-g", "12"), alpha=True),
    # DNxHR needs at least 256x120; DNxHD only its broadcast sizes and bit rates.
    ClipFormat(
        "dnxhr_hq_mxf", "mxf", ("-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"), size="256x144"
    ),
    ClipFormat("dnxhd_mov", "mov", ("-c:v", "dnxhd", "-b:v", "60M", "-pix_fmt", "yuv422p"), size="1280x720", frames=12),
    ClipFormat("ffv1_mkv_odd", "mkv", ("-c:v", "ffv1", "-pix_fmt", "yuv420p"), size="67x45"),
    ClipFormat("mjpeg_avi", "avi", ("-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p")),
    # Frames 5-7 and 24 dropped (VFR timestamps): the AVI muxer writes empty chunks in their place.
    ClipFormat(
        "cinepak_avi_sparse",
        "avi",
        ("-c:v", "cinepak", "-fps_mode", "passthrough"),
        filters=("select='not(between(n,5,7)+eq(n,24))'",),
    ),
    ClipFormat("h264_mp4_editlist", "mp4", X264, edit_list=True),
    ClipFormat(
        "h264_mp4_vfr",
        "mp4",
        (*X264, "-fps_mode", "passthrough"),
        filters=("settb=1/1000", "setpts='N*40+if(gt(N,9),15,0)+if(gt(N,22),10,0)'"),
        post=("-enc_time_base", "1/1000"),
    ),
    ClipFormat("h264_mp4_rotated", "mp4", X264, rotate=90),
)


def make_clip(fmt: ClipFormat, folder: Path) -> Path:
    """Encode `fmt`'s clip into `folder` (once: an existing file is reused)."""
    out = folder / fmt.filename
    if out.exists():
        return out
    pix = "yuva444p" if fmt.alpha else "yuv444p"
    graph = f"format={pix},geq=lum='{_LUM}':cb=128:cr=128" + (f":a='{_ALPHA}'" if fmt.alpha else "")
    if not fmt.alpha and "-pix_fmt" not in fmt.encode:
        graph += ",format=yuv420p"
    graph = ",".join([graph, *fmt.filters])
    frames = fmt.frames + (12 if fmt.edit_list else 0)
    src = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"nullsrc=s={fmt.size}:r={fmt.fps}"]
    target = out.with_name(f"full-{out.name}") if (fmt.edit_list or fmt.packed_bframes or fmt.rotate) else out
    subprocess.run([*src, "-vf", graph, "-frames:v", str(frames), *fmt.encode, *fmt.post, str(target)], check=True)
    if fmt.edit_list:
        # A stream copy cut between keyframes: the MP4 keeps the GOP before and an edit list hides its start.
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "0.3", "-i", str(target), "-c", "copy", str(out)],
            check=True,
        )
    if fmt.rotate:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(target), "-c", "copy",
             "-metadata:s:v:0", f"rotate={fmt.rotate}", str(out)],
            check=True,
        )  # fmt: skip
    if fmt.packed_bframes:
        pack_bframes(target, out)
    return out


# --- DivX packed B-frames -----------------------------------------------------------------------------

_VOP = b"\x00\x00\x01\xb6"
_DIVX_USERDATA = b"\x00\x00\x01\xb2DivX503b1393p"


def _vop_type(payload: bytes) -> int:
    pos = payload.find(_VOP)
    return payload[pos + 4] >> 6 if pos >= 0 else -1  # 0 I, 1 P, 2 B, 3 S


def _n_vop(template: bytes, time_bits: int) -> bytes:
    """A not-coded VOP (N-VOP) with the header of `template` (a P-VOP): vop_coded set to 0."""
    pos = template.find(_VOP) + 4
    bits = "".join(f"{b:08b}" for b in template[pos : pos + 8])
    i = 2  # vop_coding_type
    while bits[i] == "1":  # modulo_time_base
        i += 1
    i += 1 + 1 + time_bits + 1  # its closing 0, marker, vop_time_increment, marker
    header = "01" + bits[2:i] + "0"  # P type, vop_coded = 0
    header += "0" + "1" * ((8 - (len(header) + 1) % 8) % 8)  # stuffing: a 0 then 1s to the byte boundary
    return _VOP + int(header, 2).to_bytes(len(header) // 8, "big")


def pack_bframes(src: Path, dst: Path, time_bits: int = 5) -> None:
    """Rewrite an MPEG-4 Part 2 AVI (B-frames, one VOP per chunk, as ffmpeg writes it) the way DivX 5 and
    Xvid wrote "packed bitstream" files: each P or I frame followed by B-frames shares its chunk with the
    first B-frame, the other B-frames move up one chunk, and a not-coded N-VOP fills the last slot; the user
    data says "p". `time_bits`: bits of vop_time_increment (5 for ffmpeg's 25 fps time base)."""
    data = src.read_bytes()
    movi = data.index(b"movi") - 8
    movi_size = struct.unpack_from("<I", data, movi + 4)[0]
    chunks, off = [], movi + 12
    while off < movi + 8 + movi_size:
        size = struct.unpack_from("<I", data, off + 4)[0]
        chunks.append(data[off + 8 : off + 8 + size])
        off += 8 + size + (size & 1)
    out: list[bytes] = []
    i = 0
    while i < len(chunks):
        bs = []
        j = i + 1
        while j < len(chunks) and _vop_type(chunks[j]) == 2:
            bs.append(chunks[j])
            j += 1
        if bs:
            out += [chunks[i] + bs[0], *bs[1:], _n_vop(chunks[i], time_bits)]
        else:
            out.append(chunks[i])
        i = j
    first = out[0].find(_VOP)
    out[0] = out[0][:first] + _DIVX_USERDATA + out[0][first:]
    assert len(out) == len(chunks)
    body, index = bytearray(b"movi"), bytearray()
    for payload in out:
        flags = 0x10 if _vop_type(payload) == 0 else 0
        index += struct.pack("<4sIII", b"00dc", flags, len(body), len(payload))
        body += struct.pack("<4sI", b"00dc", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")
    head = bytearray(data[:movi])
    riff = head + struct.pack("<4sI", b"LIST", len(body)) + body + struct.pack("<4sI", b"idx1", len(index)) + index
    struct.pack_into("<I", riff, 4, len(riff) - 8)
    dst.write_bytes(bytes(riff))
