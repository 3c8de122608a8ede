"""The backend interface: constructed once per worker (loads its model once), then asked for frames per pair."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np

from semfi_batch.errors import BackendUnavailable


def package_marker(name: str) -> Path:
    """A file whose identity says whether package `name` is installed, and which: its __init__.py, or, when
    it is not installed, the folder packages are installed into (installing one changes it)."""
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.origin:
        return Path(spec.origin)
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


@dataclass(frozen=True)
class Constraints:
    """What a backend needs of a job. `frame_rule` is "any" or "4k+1" (of the total generated count)."""

    frame_rule: str = "any"
    size_multiple: int = 1
    max_gap_frames: int | None = None


# Where `make install` puts model files and the README asks for the others: the checkout's models/ and ckpts/
# (beside this package), whatever the current directory. Relative to it, a run started from another folder
# found no RIFE weights, and `auto` chose flow instead of rife without a word.
INSTALL_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = INSTALL_ROOT / "models"
DEFAULT_SEMFI_CKPT = INSTALL_ROOT / "ckpts" / "semfi.ckpt"


@dataclass(frozen=True)
class BackendOptions:
    """Options from the command line that backends may use; each backend reads the ones it knows."""

    device: str = "auto"
    models_dir: Path = DEFAULT_MODELS_DIR
    semfi_ckpt: Path = DEFAULT_SEMFI_CKPT
    vram_limit_gb: float | None = None
    ckpt_every: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class InterpolationRequest:
    """One keyframe pair to fill, already at the job's output size. Frames are arrays of shape
    (height, width, channels): RGB (3) or RGBA (4, when the source has alpha), uint8 for 8-bit sources and
    uint16 (0-65535) for deeper ones; both keys share one layout. A backend whose `deep_frames` is False gets
    RGB uint8 only (see `Backend.generate`). `work_dir` is a job-private folder that survives a killed run
    (for step checkpoints)."""

    pair_id: str
    start: np.ndarray
    end: np.ndarray
    gap_frames: int
    seed: int
    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    cfg_scale: float | None = None
    work_dir: Path | None = None
    # Where each frame to make falls between the keys (in (0, 1), increasing), from the source's own frame
    # times where they are uneven (variable frame rate: run/job.uneven_inbetween_times); None: evenly.
    times: tuple[float, ...] | None = None

    def inbetween_times(self) -> list[float]:
        """The times of the frames to make, in (0, 1): `times`, else evenly spaced."""
        from semfi_batch.plan import inbetween_times

        return list(self.times) if self.times is not None else inbetween_times(self.gap_frames)

    def inbetween_fractions(self) -> list[Fraction]:
        """`inbetween_times` as exact fractions (i/(gap+1) when evenly spaced)."""
        from semfi_batch.plan import inbetween_fractions

        if self.times is None:
            return inbetween_fractions(self.gap_frames)
        return [Fraction(t).limit_denominator(1_000_000) for t in self.times]


@dataclass
class JobNotes:
    """What a backend tells the engine about the job it just ran; copied into the job's record."""

    values: dict = field(default_factory=dict)


def resolve_torch_device(device: str | None):
    """A torch device for `--device`: "auto" -> the first CUDA device when there is one, else the CPU; a CUDA
    device asked for where torch sees none is BackendUnavailable. (torch is imported here, not at module level:
    the registry imports every backend to list them.)"""
    import torch

    if device in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device!r} was asked for but torch sees no CUDA device")
    return dev


class Backend(ABC):
    """An interpolator. Subclasses set `name`, `description`, `constraints` and optionally
    `requires` (importable module names), and implement `interpolate`."""

    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    constraints: ClassVar[Constraints] = Constraints()
    # True when `interpolate` takes and returns every frame layout (uint16, RGBA) itself; else it sees RGB
    # uint8 and `generate` converts at its boundary.
    deep_frames: ClassVar[bool] = False
    # True for single-threaded CPU backends, whose throughput grows with worker processes (`--workers auto`
    # gives them one per physical core); model backends use all cores (or the GPU) in one process.
    scales_with_workers: ClassVar[bool] = False

    def __init__(self, options: BackendOptions | None = None):
        ok, why = type(self).availability(options or BackendOptions())
        if not ok:
            raise BackendUnavailable(f"backend {self.name!r} cannot run here: {why}")
        self.options = options or BackendOptions()
        self.notes = JobNotes()

    @classmethod
    def availability(cls, options: BackendOptions) -> tuple[bool, str]:
        """(True, "") when this backend can run here, else (False, a reason a user can act on)."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"missing Python package(s): {', '.join(missing)}"
        return True, ""

    def order_key(self, gap_frames: int) -> tuple:
        """Sort key that groups jobs a worker should run together (e.g. by model bucket)."""
        return ()

    @classmethod
    def deciding_files(cls, options: BackendOptions) -> list[Path] | None:
        """The files, besides a job's own inputs, whose identity (or absence) decides whether this backend
        can run here and its jobs' keys: a finished run's stamp holds them, and a resume that finds any
        changed takes the normal path (run/finished.py). None (the default, for a backend that does not
        say) when more than files may decide: no stamp is written for such a run."""
        return None

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        """Settings that change this backend's output, from the options alone (no model is loaded):
        part of every job's key, so changing one re-runs the jobs it affects. Bump `version` when the
        algorithm itself changes."""
        return {}

    @abstractmethod
    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        """Yield exactly `request.gap_frames` frames, in time order, each shaped like `request.start`. Each
        frame is a new array, never changed after it is yielded: the engine writes it on other threads while
        the backend goes on (run/frame_io.FrameWriter)."""

    def generate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        """`interpolate`, with frames in the keys' own layout whatever the backend handles. Keys with partial
        alpha are interpolated premultiplied (media/premultiplied.py) and their frames given back straight.
        A backend without `deep_frames` (the video models, minterpolate) is given RGB uint8 keys; its frames
        are widened back to 16 bits (x257), and alpha, which it cannot see, is cross-faded between the keys'
        alpha. What was converted is noted in the job's record (notes.frames_converted)."""
        from dataclasses import replace

        from semfi_batch.media import premultiplied as pm

        if not pm.has_partial_alpha(request.start, request.end):
            yield from self._frames_in_layout(request, request)
            return
        keys = replace(request, start=pm.premultiplied(request.start), end=pm.premultiplied(request.end))
        for frame in self._frames_in_layout(keys, request):
            yield pm.straight(frame, request.start.dtype)

    def _frames_in_layout(self, request: InterpolationRequest, given: InterpolationRequest) -> Iterator[np.ndarray]:
        """`interpolate` of `request`, its frames in its keys' layout (see `generate`); `given`: the keys as the
        job gave them, which the record's note describes."""
        start = request.start
        if self.deep_frames or (start.dtype == np.uint8 and start.shape[2] == 3):
            yield from self.interpolate(request)
            return
        from dataclasses import replace

        deep, alpha = start.dtype == np.uint16, start.shape[2] == 4
        self.notes.values["frames_converted"] = (
            f"{'16-bit ' if given.start.dtype == np.uint16 else ''}{'RGBA' if alpha else 'RGB'} keys given to "
            f"{self.name} as 8-bit RGB"
            + (", frames widened to 16 bits" if given.start.dtype == np.uint16 else "")
            + (", alpha cross-faded between the keys" if alpha else "")
        )
        narrow = replace(request, start=_rgb8(request.start), end=_rgb8(request.end))
        times = request.inbetween_times()
        for k, frame in enumerate(self.interpolate(narrow)):
            out = frame.astype(np.uint16) * 257 if deep else frame
            if alpha:
                t = times[min(k, len(times) - 1)]
                a = (1.0 - t) * request.start[..., 3].astype(np.float32) + t * request.end[..., 3].astype(np.float32)
                a = np.clip(a + 0.5, 0, 65535 if deep else 255).astype(out.dtype)
                out = np.dstack([out, a])
            yield out

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release models and devices."""


def _rgb8(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 of a key (alpha left out: `Backend.generate` carries it itself; 16 bits rounded to 8)."""
    rgb = frame[..., :3]
    if rgb.dtype == np.uint16:
        rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.ascontiguousarray(rgb)
