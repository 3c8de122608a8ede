"""`minterpolate`: ffmpeg's motion-compensated frame-rate conversion, as an external reference backend.

How exactly `gap_frames` in-betweens come out (checked by tests/test_eval.py):

- The two keyframes are fed as raw video at 1 fps: start at t=0, end at t=1, and the end again at t=2.
  ffmpeg's minterpolate keeps a window of four frames and only emits output up to the third newest
  input, and it has no end-of-stream flush, so without the extra frame nothing after t=0 comes out.
  The extra frame does not change the in-betweens: they are byte-identical to the first gap's frames
  when the same filter runs the usual way over a whole stream of keyframes.
- `fps=gap_frames+1` puts output frames at t = k / (gap_frames+1) for k = 0..gap_frames+1: the start
  key, the gap_frames in-betweens in time order, and the end key. The first and the last are dropped.
- Scene-change detection is off (`scd=none`): with it on, minterpolate silently duplicates keyframes
  whenever they differ a lot, and a pair handed to a backend is by definition inside one shot.
- minterpolate works on YUV only: frames go RGB -> full-range yuv444p (no chroma subsampling) -> RGB,
  which changes a pixel by at most 1 level.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from semfi_batch.backends.base import Backend, BackendOptions, InterpolationRequest
from semfi_batch.errors import MediaError, ToolMissing
from semfi_batch.media.tools import run_tool, tool_path
from semfi_batch.media.video_frames import read_exact

# minterpolate's own defaults, spelled out so they are part of the job key and of the documentation.
MI_SETTINGS = {
    "mi_mode": "mci",
    "mc_mode": "obmc",
    "me_mode": "bilat",
    "me": "epzs",
    "mb_size": 16,
    "search_param": 32,
    "vsbmc": 0,
    "scd": "none",
}
# ffmpeg refuses smaller frames ("Height or width < 32").
MIN_SIDE = 32
# Full-range BT.601 both ways, accurate rounding: the colour round trip stays within 1 level.
_TO_YUV = "scale=out_range=full:out_color_matrix=bt601:flags=accurate_rnd+full_chroma_int,format=yuv444p"
_TO_RGB = "scale=in_range=full:in_color_matrix=bt601:flags=accurate_rnd+full_chroma_int,format=rgb24"


def minterpolate_filter(gap_frames: int) -> str:
    """The ffmpeg filter chain that turns 1-fps input into `gap_frames + 1` fps (see the module doc)."""
    settings = ":".join(f"{k}={v}" for k, v in MI_SETTINGS.items())
    return f"{_TO_YUV},minterpolate=fps={gap_frames + 1}:{settings},{_TO_RGB}"


@lru_cache(maxsize=1)
def _ffmpeg_facts() -> tuple[bool, str]:
    """(has the minterpolate filter, first line of `ffmpeg -version`)."""
    version = run_tool(["ffmpeg", "-version"], what="cannot run ffmpeg").decode(errors="replace")
    filters = run_tool(["ffmpeg", "-hide_banner", "-filters"], what="cannot list ffmpeg filters")
    has = any(line.split()[1:2] == ["minterpolate"] for line in filters.decode(errors="replace").splitlines())
    first = version.splitlines()[0] if version else "ffmpeg"
    return has, first.split(" Copyright")[0]


class MinterpolateBackend(Backend):
    """ffmpeg minterpolate (motion-compensated interpolation) between two keyframes."""

    scales_with_workers = True

    name = "minterpolate"
    description = "ffmpeg minterpolate, motion-compensated (external reference; CPU, no weights)"
    version = "1"

    @classmethod
    def availability(cls, options: BackendOptions) -> tuple[bool, str]:
        try:
            tool_path("ffmpeg")
            has_filter, _ = _ffmpeg_facts()
        except (ToolMissing, MediaError) as exc:
            return False, str(exc)
        if not has_filter:
            return False, "this ffmpeg build has no minterpolate filter"
        return True, ""

    @classmethod
    def deciding_files(cls, options: BackendOptions) -> list[Path]:
        return [Path(tool_path("ffmpeg"))]  # its build is part of the key (PATH is part of the stamp too)

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        # The ffmpeg build is part of the key: another version may estimate motion differently.
        return {**MI_SETTINGS, "ffmpeg": _ffmpeg_facts()[1]}

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        h, w = request.start.shape[:2]
        if request.end.shape != request.start.shape:
            raise MediaError(f"keyframes differ in size: {request.start.shape} vs {request.end.shape}")
        if w < MIN_SIDE or h < MIN_SIDE:
            raise MediaError(
                f"minterpolate needs frames of at least {MIN_SIDE}x{MIN_SIDE}; {request.pair_id} is {w}x{h}"
            )
        gap = request.gap_frames
        cmd = [
            tool_path("ffmpeg"), "-nostdin", "-v", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "1", "-i", "pipe:0",
            "-vf", minterpolate_filter(gap), "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        ]  # fmt: skip
        frame_bytes = w * h * 3
        payload = b"".join(np.ascontiguousarray(f).tobytes() for f in (request.start, request.end, request.end))
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Write from a thread: ffmpeg may block on a full stdout pipe before it has read all input.
        writer = threading.Thread(target=_feed, args=(proc, payload), daemon=True)
        writer.start()
        try:
            index = 0  # output frame k sits at t = k / (gap + 1); 1..gap are the in-betweens
            while index <= gap + 1:
                data = read_exact(proc.stdout, frame_bytes)
                if not data:
                    break
                if len(data) < frame_bytes:
                    got = len(data)
                    raise MediaError(f"ffmpeg minterpolate output ended inside a frame ({got} of {frame_bytes} bytes)")
                if 1 <= index <= gap:
                    yield np.frombuffer(data, np.uint8).reshape(h, w, 3).copy()
                index += 1
            rest = proc.stdout.read()
            writer.join()
            err = proc.stderr.read().decode(errors="replace").strip()
            code = proc.wait()
            if code != 0:
                first = err.splitlines()[0] if err else f"exit status {code}"
                raise MediaError(f"ffmpeg minterpolate failed for {request.pair_id}: {first}")
            if index != gap + 2 or rest:
                got = index + len(rest) // frame_bytes
                raise MediaError(
                    f"ffmpeg minterpolate gave {got} frames for {request.pair_id}, expected {gap + 2} "
                    "(start key, in-betweens, end key)"
                )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                stream.close()


def _feed(proc: subprocess.Popen, payload: bytes) -> None:
    # A broken pipe means ffmpeg stopped early; its exit status and stderr say why.
    with contextlib.suppress(BrokenPipeError, ValueError):
        proc.stdin.write(payload)
    with contextlib.suppress(BrokenPipeError, ValueError):
        proc.stdin.close()
