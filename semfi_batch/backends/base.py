"""The backend interface: constructed once per worker (loads its model once), then asked for frames per pair."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from semfi_batch.errors import BackendUnavailable


@dataclass(frozen=True)
class Constraints:
    """What a backend needs of a job. `frame_rule` is "any" or "4k+1" (of the total generated count)."""

    frame_rule: str = "any"
    size_multiple: int = 1
    max_gap_frames: int | None = None


@dataclass(frozen=True)
class BackendOptions:
    """Options from the command line that backends may use; each backend reads the ones it knows."""

    device: str = "auto"
    models_dir: Path = Path("models")
    semfi_ckpt: Path = Path("ckpts/semfi.ckpt")
    vram_limit_gb: float | None = None
    ckpt_every: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class InterpolationRequest:
    """One keyframe pair to fill. Frames are RGB uint8 arrays of shape (height, width, 3), already at the
    job's output size. `work_dir` is a job-private folder that survives a killed run (for step checkpoints)."""

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


@dataclass
class JobNotes:
    """What a backend tells the engine about the job it just ran; copied into the job's record."""

    values: dict = field(default_factory=dict)


class Backend(ABC):
    """An interpolator. Subclasses set `name`, `description`, `constraints` and optionally
    `requires` (importable module names), and implement `interpolate`."""

    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    constraints: ClassVar[Constraints] = Constraints()

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
    def key_params(cls, options: BackendOptions) -> dict:
        """Settings that change this backend's output, from the options alone (no model is loaded):
        part of every job's key, so changing one re-runs the jobs it affects. Bump `version` when the
        algorithm itself changes."""
        return {}

    @abstractmethod
    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        """Yield exactly `request.gap_frames` frames, in time order, each shaped like `request.start`."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release models and devices."""
