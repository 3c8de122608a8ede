"""What to evaluate and how: which frames are held out (DropSpec, the `--drop` option), EvalSettings, and
EvalError, raised when an evaluation cannot start."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from semfi_batch.backends import BackendOptions
from semfi_batch.errors import SemfiError


class EvalError(SemfiError):
    """Evaluation cannot start: bad option, unusable clip, or a backend that cannot take these frames."""

    exit_code = 2


@dataclass(frozen=True)
class DropSpec:
    """Which frames are held out: `every:K` (keep every K-th frame, rebuild the K-1 between) or
    `gaps:N` (N consecutive frames at spread-out positions)."""

    kind: str
    n: int

    @classmethod
    def parse(cls, text: str) -> DropSpec:
        """Parse "every:K" (K >= 2) or "gaps:N" (N >= 1)."""
        m = re.fullmatch(r"\s*(every|gaps):(\d+)\s*", text or "")
        if not m:
            raise EvalError(f"--drop {text!r}: expected every:K (e.g. every:2) or gaps:N (e.g. gaps:3)")
        kind, n = m.group(1), int(m.group(2))
        if kind == "every" and n < 2:
            raise EvalError(f"--drop {text!r}: every:K needs K >= 2 (every:2 drops every second frame)")
        if kind == "gaps" and n < 1:
            raise EvalError(f"--drop {text!r}: gaps:N needs N >= 1")
        return cls(kind, n)

    @property
    def gap_frames(self) -> int:
        return self.n - 1 if self.kind == "every" else self.n

    def __str__(self) -> str:
        return f"{self.kind}:{self.n}"


@dataclass
class EvalSettings:
    """What to evaluate and how. `size` (width, height) resizes every clip; `max_frames` reads only the
    first frames of each clip."""

    backends: list[str]
    drop: DropSpec
    max_gaps: int | None = None
    size: tuple[int, int] | None = None
    max_frames: int | None = None
    options: BackendOptions = field(default_factory=BackendOptions)

    def describe(self) -> dict:
        return {
            "backends": self.backends,
            "drop": str(self.drop),
            "max_gaps": self.max_gaps,
            "size": list(self.size) if self.size else None,
            "max_frames": self.max_frames,
        }
