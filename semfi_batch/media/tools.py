"""Locating and running ffmpeg/ffprobe. Always argument lists, never a shell."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

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
