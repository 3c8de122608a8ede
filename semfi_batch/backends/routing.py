"""Which backend runs a row: `auto` routing, and the refusal to morph across a hard cut.

`auto` (from --backend or a row's `backend` column) picks per row: `semfi` when its model files and a CUDA
device are here and the row needs new content (it bridges a cut, or its gap is at least --semantic-gap
frames), else `rife` when its weights are here, else `flow`.

A row that bridges a hard cut (`reason` = cut, as `detect --mode cuts` writes) needs content neither
keyframe holds; a flow or blending backend can only morph one shot into the other, so such rows are refused
before anything runs unless --allow-morph."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from semfi_batch.backends.base import BackendOptions
from semfi_batch.errors import SemfiError

AUTO = "auto"
GENERATIVE_BACKENDS = ("semfi", "wan-flf2v")
DEFAULT_SEMANTIC_GAP = 12


class CutMorphRefused(SemfiError):
    """Rows across a hard cut were given to a backend that can only morph."""

    exit_code = 2


def bridges_cut(pair) -> bool:
    """The row's keyframes lie on both sides of a hard cut (detect's `reason` column says `cut`)."""
    return str(pair.extras.get("reason") or "").strip().lower() == "cut"


class BackendRouter:
    """Resolves a row's backend name; `auto` is decided per row, with what can run here worked out once."""

    def __init__(self, default_backend: str, options: BackendOptions):
        self.default_backend = default_backend
        self.options = options
        self.semantic_gap = int((options.extra or {}).get("semantic_gap") or DEFAULT_SEMANTIC_GAP)
        self._available: dict[str, bool] = {}

    def wants_new_content(self, pair) -> bool:
        """`auto` gives this row to semfi where it can: it bridges a cut, or its gap is --semantic-gap or more."""
        return bridges_cut(pair) or pair.gap_frames >= self.semantic_gap

    def choose(self, pair) -> str:
        """The backend that runs `pair`: its own or the default, with `auto` resolved."""
        requested = pair.backend or self.default_backend
        if requested != AUTO:
            return requested
        if self.wants_new_content(pair) and self._can_run("semfi", need_gpu=True):
            return "semfi"
        if self._can_run("rife"):
            return "rife"
        return "flow"

    def _can_run(self, name: str, need_gpu: bool = False) -> bool:
        if name not in self._available:
            from semfi_batch.backends import backend_class

            ok, _ = backend_class(name).availability(self.options)
            self._available[name] = ok and (not need_gpu or _cuda_available())
        return self._available[name]


def deciding_files(jobs: Iterable, options: BackendOptions) -> list[Path] | None:
    """The files besides the jobs' own inputs whose identity decides which backend runs each of `jobs` and
    their keys (Backend.deciding_files of each backend a row asks for; for `auto`, of rife and flow, which
    it picks between by whether rife's weights and torch are here). None when more than files decides:
    an `auto` row it could give to semfi (whether it does depends on a GPU), or a backend that says so."""
    from semfi_batch.backends import backend_class

    names: set[str] = set()
    router = BackendRouter(AUTO, options)
    for job in jobs:
        requested = job.requested_backend or job.backend
        if requested == AUTO:
            if router.wants_new_content(job.pair):
                return None
            names.update(("rife", "flow"))
        else:
            names.add(requested)
    files: list[Path] = []
    for name in sorted(names):
        found = backend_class(name).deciding_files(options)
        if found is None:
            return None
        files.extend(found)
    return files


def refuse_cut_morphs(jobs: Iterable, options: BackendOptions) -> None:
    """Refuse, in one line naming them, rows across a hard cut bound to a non-generative backend, unless
    --allow-morph. `jobs`: planned jobs (their `pair` and resolved `backend`)."""
    if (options.extra or {}).get("allow_morph"):
        return
    refused = [job for job in jobs if bridges_cut(job.pair) and job.backend not in GENERATIVE_BACKENDS]
    if not refused:
        return
    names = ", ".join(f"{job.pair_id} ({job.backend})" for job in refused[:10])
    more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
    raise CutMorphRefused(
        f"{len(refused)} row(s) bridge a hard cut (reason=cut) and need new content, which "
        f"{', '.join(sorted({j.backend for j in refused}))} cannot make: {names}{more}; "
        f"use --backend semfi or wan-flf2v (auto picks semfi when its models and a GPU are here), "
        "or --allow-morph to morph anyway"
    )


def _cuda_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
