"""Alpha kept beside the picture: VP8 and VP9 in WebM/Matroska store their alpha as a second coded picture in
each block's BlockAdditional, and flag the track with AlphaMode (ffprobe's stream tag alpha_mode=1).
ffmpeg's own VP8/VP9 decoders drop it, and report yuv420p; libvpx's decoders deliver both as yuva420p.

Every decode of such a stream for its pixels (keyframes, splice) goes through the decoder named here, and a
splice writes the flag on its output, so the alpha is neither lost nor silently dropped."""

from __future__ import annotations

from semfi_batch.errors import MediaError
from semfi_batch.media.tools import ffmpeg_codecs

SIDE_ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
SIDE_ALPHA_PIX_FMT = "yuva420p"  # what libvpx decodes such a stream to, and its encoders take
ALPHA_MODE_TAG = "alpha_mode"


def stream_decoding(stream: dict, path) -> tuple[str | None, str]:
    """(the decoder that delivers the alpha of `stream`, an ffprobe stream dict of `path`, or None when the
    stream keeps no alpha beside its picture; the pixel format its pixels are read in). MediaError when this
    ffmpeg has no such decoder."""
    tags = {str(k).lower(): str(v) for k, v in (stream.get("tags") or {}).items()}
    decoder = SIDE_ALPHA_DECODERS.get(str(stream.get("codec_name", "")))
    if decoder is None or tags.get(ALPHA_MODE_TAG) != "1":
        return None, str(stream.get("pix_fmt", ""))
    if decoder not in ffmpeg_codecs("decoders"):
        raise MediaError(
            f"{path} keeps alpha beside its {stream.get('codec_name')} picture, which only the {decoder} decoder "
            f"reads, and this ffmpeg has none: install an ffmpeg built with libvpx"
        )
    return decoder, SIDE_ALPHA_PIX_FMT


def decoder_args(decoder: str | None) -> list[str]:
    """ffmpeg input options that pick `decoder` for the video (none when it is None)."""
    return ["-c:v", decoder] if decoder else []
