"""Decoding a video for analysis: frames at analysis size through an ffmpeg pipe, and placing them in
the probed frame list."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from semfi_batch.errors import MediaError
from semfi_batch.media.probe import VIDEO_STREAM_MAP, VideoInfo, video_file_stat
from semfi_batch.media.tools import tool_path

# --- decoding -----------------------------------------------------------------------------------------


_CONFIG_RE = re.compile(r"config in time_base: (\d+)/(\d+)")
_FRAME_RE = re.compile(r"\bn:\s*\d+\s+pts:\s*(\S+)")
_OUTPUT_RE = re.compile(r"^\s*Stream #0:0.*Video: rawvideo.*?, (\d+)x(\d+)(?:.*?, ([\d.]+)(k?) fps)?")
_END = object()


class AnalysisFrames:
    """A video's frames as ffmpeg decodes them (presentation order) at analysis size: (time, BGR uint8).

    ffmpeg decodes, scales and pipes raw frames; the frame size is read from its log, so nothing about the
    video needs to be known before decoding starts and the probe can run alongside. With `timestamps`, its
    showinfo filter also reports each frame's presentation time (relative to the container start, as
    `probe_video`'s frame_times), which places frames exactly even when some fail to decode; that logging
    costs about a third more decoding work, so without it the times are None (frames in order)."""

    def __init__(self, path: Path, analysis_width: int, *, sampling: str = "area", timestamps: bool = False):
        self.path = Path(path)
        self.analysis_width = analysis_width
        self.sampling = sampling
        self.timestamps = timestamps
        self._proc: subprocess.Popen | None = None
        self._items: queue.Queue = queue.Queue()
        self._log: deque[str] = deque(maxlen=20)
        self._reader: threading.Thread | None = None
        self.frame_rate = 0.0  # the nominal rate ffmpeg reports (known once the first frame is out)

    def __enter__(self) -> AnalysisFrames:
        if self._proc is not None:
            return self  # already started (see open_frames)
        video_file_stat(self.path)
        aw = self.analysis_width
        scale = f"scale=w='if(gt(iw,{aw}),{aw},iw)':h=-1:flags={self.sampling}" if aw > 0 else "null"
        graph = f"{scale},format=bgr24" + (",showinfo=checksum=0" if self.timestamps else "")
        cmd = [
            tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
            # Deblocking only smooths block edges that the downscale averages away anyway; skipping it
            # saves 5-30% of the decoding (the cut lists of the benchmark clips stay the same).
            "-skip_loop_filter", "all", "-noautorotate", "-i", str(self.path),
            "-map", VIDEO_STREAM_MAP, "-an", "-sn", "-dn", "-fps_mode", "passthrough", "-enc_time_base", "-1",
            "-vf", graph, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop ffmpeg (if still running) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        proc.stderr.close()

    def _read_log(self) -> None:
        # Items: ("size", w, h) once, when ffmpeg describes its output; then with timestamps one
        # ("time", seconds) per frame. showinfo logs a frame before the frame reaches the pipe; its integer pts
        # in the filter's time base is exact, where pts_time is printed to 6 significant digits only.
        time_base: Fraction | None = None
        output = False
        assert self._proc is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace")
            if self.timestamps and "showinfo" in line:
                if (m := _CONFIG_RE.search(line)) is not None:
                    time_base = Fraction(int(m.group(1)), int(m.group(2)))
                elif (m := _FRAME_RE.search(line)) is not None:
                    pts = m.group(1)
                    known = time_base is not None and pts.lstrip("-").isdigit()
                    self._items.put(("time", float(int(pts) * time_base) if known else None))
                continue
            if line.startswith("Output #0"):
                output = True
            elif output and (m := _OUTPUT_RE.match(line)) is not None:
                if m.group(3):
                    self.frame_rate = float(m.group(3)) * (1000 if m.group(4) else 1)
                self._items.put(("size", int(m.group(1)), int(m.group(2))))
                output = False
            elif line.strip() and not line.startswith(" "):
                self._log.append(line.strip())
        self._items.put(_END)

    def __iter__(self) -> Iterator[tuple[float | None, np.ndarray]]:
        assert self._proc is not None, "use AnalysisFrames as a context manager"
        proc = self._proc
        size: tuple[int, int] | None = None
        stamps: deque[float | None] = deque()
        while True:
            if size is None or (self.timestamps and not stamps):
                item = self._items.get()
                if item is _END:
                    break
                if item[0] == "size":
                    size = item[1], item[2]
                else:
                    stamps.append(item[1])
                continue
            width, height = size
            data = proc.stdout.read(width * height * 3)
            if len(data) < width * height * 3:
                break
            yield (
                (stamps.popleft() if self.timestamps else None),
                np.frombuffer(data, np.uint8).reshape(height, width, 3),
            )
        if proc.wait() != 0:
            detail = self._log[-1] if self._log else f"ffmpeg exited with status {proc.returncode}"
            raise MediaError(f"cannot decode {self.path}: {detail}")


def place_frames(times: Sequence[float | None], info: VideoInfo) -> np.ndarray:
    """Index in `info.frame_times` of each decoded frame, matched by timestamp; -1 for a frame that repeats an
    earlier one's time. A frame without a reported time takes the next index. MediaError if a decoded time
    is not among the probed ones."""
    ft = info.frame_times
    steps = np.diff(ft)
    steps = steps[steps > 0]
    tolerance = max(1e-4, 0.25 * float(steps.min())) if steps.size else 1e-3
    out = np.full(len(times), -1, dtype=np.int64)
    last = -1
    for k, stamp in enumerate(times):
        if stamp is None:
            index = last + 1
        else:
            j = int(np.searchsorted(ft, stamp))
            near = [i for i in (j - 1, j) if 0 <= i < ft.shape[0]]
            index = min(near, key=lambda i: abs(ft[i] - stamp))
            if abs(ft[index] - stamp) > tolerance:
                raise MediaError(
                    f"cannot place a decoded frame of {info.path}: its time {stamp:.6f}s is not among the "
                    "probed frame times"
                )
        if last < index < ft.shape[0]:
            out[k] = last = index
    return out


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two gray frames (0-255)."""
    return cv2.norm(a, b, cv2.NORM_L1) / a.size
