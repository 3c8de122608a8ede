"""Synthetic test clips made with ffmpeg lavfi whose frames carry their own number as a barcode.

`barcode()` stamps the frame number (as counted where it is applied) into the bottom 16 rows as 10 bits of
16-pixel black/white blocks; `frame_number(rgb)` reads it back from any decoded frame, whatever was done to the
clip after stamping (frames dropped, repeated or replaced keep or lose their number as they would in real
footage). Frames must be 160 pixels wide or more. Shots are testsrc2 variants, which move every frame.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from semfi_batch.media.frame_pipes import TO_RGB_SCALE_FLAGS

# A reference decode to RGB as extraction converts (media/video_frames.py): tests compare frames bit for bit.
TO_RGB24 = ["-vf", f"scale=flags={TO_RGB_SCALE_FLAGS},format=rgb24", "-f", "rawvideo", "-pix_fmt", "rgb24"]

BITS = 10
CELL = 16


def barcode(first: int = 0) -> str:
    """Filters that stamp each frame's number (`first` + frames counted where they are applied) into the
    bottom 16 rows as 10 bits of 16-pixel black/white blocks."""
    boxes = ["drawbox=x=0:y=ih-16:w=iw:h=16:color=black:t=fill"]
    for b in range(BITS):
        on = f"mod(floor((n+{first})/{2**b}),2)"
        boxes.append(f"drawbox=x={CELL * b}:y=ih-{CELL}:w={CELL}:h={CELL}:color=white:t=fill:enable='{on}'")
    return ",".join(boxes)


BARCODE = barcode()


def shot(frames: int, *, rate: str = "25", size: str = "160x120", look: str = "", first: int | None = None) -> str:
    """A lavfi source of exactly `frames` frames of moving test content; `look` is extra filters that make it a
    different shot; with `first`, its frames are stamped first, first+1, ... (before any fade the caller adds,
    so black frames of a fade stay black)."""
    seconds = frames / float(Fraction(rate)) + 1
    chain = [f"testsrc2=s={size}:r={rate}:d={seconds:.3f}", f"trim=end_frame={frames}", "setpts=PTS-STARTPTS"]
    chain += [look] if look else []
    chain += [barcode(first)] if first is not None else []
    return ",".join([*chain, "format=yuv420p"])


# Looks different enough that any detector sees a cut between them.
LOOKS = ("", "negate", "hflip,hue=h=120", "vflip,hue=h=240:s=2", "negate,hue=h=60")


def make_clip(path: Path, graph: str, *, keep_timestamps: bool = False, crf: int = 12) -> Path:
    """Render a filter graph whose output pad is [out] to an H.264 file. `keep_timestamps` passes frame times
    through unchanged (frames dropped by a select filter then leave holes in the timestamps)."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_complex", graph, "-map", "[out]"]
    if keep_timestamps:
        args += ["-fps_mode", "passthrough", "-enc_time_base", "-1"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", str(crf), "-g", "30", "-pix_fmt", "yuv420p"]
    subprocess.run([*args, str(path)], check=True)
    return path


def concat_shots(shots: Sequence[str]) -> str:
    """Graph text that plays `shots` (lavfi source strings) back to back, output pad [cat]."""
    parts = [f"{s}[s{i}]" for i, s in enumerate(shots)]
    pads = "".join(f"[s{i}]" for i in range(len(shots)))
    return ";".join(parts) + f";{pads}concat=n={len(shots)}:v=1:a=0[cat]"


def frame_number(rgb: np.ndarray) -> int:
    """The number `BARCODE` stamped on a decoded RGB frame."""
    h = rgb.shape[0]
    strip = rgb[h - CELL + 4 : h - 4].mean(axis=2)
    bits = [strip[:, CELL * b + 4 : CELL * b + CELL - 4].mean() > 128 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def decode_all(path: Path) -> np.ndarray:
    """Every frame of a (small) clip decoded sequentially as RGB, in presentation order: (n, h, w, 3)."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of",
         "csv=p=0", str(path)], capture_output=True, text=True, check=True,
    ).stdout.split(",")  # fmt: skip
    w, h = int(probe[0]), int(probe[1])
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
    raw = subprocess.run([*args, *TO_RGB24, "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def spliced_replace(tmp_path: Path, source: Path, suffix: str, name: str = "run") -> Path:
    """`source` with frames 6-8 replaced by a blend of frames 5 and 9 (run, then spliced into `name`-out`suffix`):
    the spliced file. Of a still, the blend is the still itself: what a splice changes is then its own doing."""
    from semfi_batch.cli import main
    from semfi_batch.manifest import write_manifest
    from semfi_batch.splice import splice_run

    rows = [{"pair_id": "r", "source": str(source), "start_frame": 5, "end_frame": 9, "mode": "replace"}]
    manifest = write_manifest(rows, tmp_path / f"{name}.parquet")
    run = tmp_path / name
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    summary = splice_run(run, output=tmp_path / f"{name}-out{suffix}")
    assert not summary.failed, summary.failed
    return summary.results[0].output


def decoded_samples(path: Path) -> int:
    """How many samples the first audio stream of `path` decodes to (mixed to one channel)."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return len(out) // 2
