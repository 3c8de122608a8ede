"""Locating and running ffmpeg/ffprobe. Always argument lists, never a shell."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache

from semfi_batch.errors import MediaError, ToolMissing


def tool_path(name: str) -> str:
    """Absolute path of `name` (ffmpeg, ffprobe) on PATH, or ToolMissing with the install hint."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found on PATH; install it (Debian: apt-get install -y ffmpeg)")
    return path


def run_tool(args: Sequence[str], *, what: str, input_bytes: bytes | None = None) -> bytes:
    """Run a tool given as an argument list (args[0] is the tool name); return stdout or raise MediaError
    whose message is `what` plus the tool's last line of stderr."""
    cmd = [tool_path(args[0]), *args[1:]]
    proc = subprocess.run(cmd, input=input_bytes, capture_output=True, check=False)
    if proc.returncode != 0:
        raise MediaError(f"{what}: {_last_line(proc.stderr)}")
    return proc.stdout


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no error output"


def ffmpeg_codecs(kind: str) -> frozenset[str]:
    """Names of the encoders or decoders (`kind`: "encoders", "decoders") this ffmpeg build has."""
    return _codecs(tool_path("ffmpeg"), kind)


def encoder_pixel_formats(encoder: str) -> frozenset[str]:
    """The pixel formats this ffmpeg's `encoder` takes (empty: it lists none, so any it is given). ffmpeg
    would convert a frame of any other format to one of these, silently."""
    return _pixel_formats(tool_path("ffmpeg"), encoder)


@lru_cache(maxsize=32)
def _pixel_formats(ffmpeg: str, encoder: str) -> frozenset[str]:
    out = subprocess.run([ffmpeg, "-hide_banner", "-h", f"encoder={encoder}"], capture_output=True, check=False)
    for line in out.stdout.decode(errors="replace").splitlines():
        if line.strip().startswith("Supported pixel formats:"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=8)
def _codecs(ffmpeg: str, kind: str) -> frozenset[str]:
    out = subprocess.run([ffmpeg, "-hide_banner", f"-{kind}"], capture_output=True, check=False).stdout.decode()
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def ffmpeg_filters() -> frozenset[str]:
    """Names of the filters this ffmpeg build has (zscale only where it was built with libzimg)."""
    return _filters(tool_path("ffmpeg"))


@lru_cache(maxsize=8)
def _filters(ffmpeg: str) -> frozenset[str]:
    out = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, check=False).stdout.decode()
    # " TSC scale             V->V       Scale the input video..." after a legend and a "---" line
    return frozenset(parts[1] for line in out.splitlines() if len(parts := line.split()) >= 3 and "->" in parts[2])
