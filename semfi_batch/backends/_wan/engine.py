"""The body the `semfi` and `wan-flf2v` backends share: load once per worker, frame times, gaps of any length,
size policy, step-checkpoint resume, and one retry with offloading after a CUDA out-of-memory error.

Frames at exact times: in-between i of a gap of g frames is delivered at t = i/(g+1) exactly. A generated
clip of N frames has frames at m/(N-1); where one of them is at t it is delivered as it is, otherwise the
frame at t is made from the two generated frames around it by the best non-generative backend here
(`rife` when it is registered and its weights are there, else `flow`).

Gaps of any length, coarse to fine: one clip has at most `max_clip_frames` (81) frames. A longer gap gets one
clip spanning all of it at a coarser time step; every space between two of its frames that holds at least
FINE_MIN_FRAMES delivered frames is filled by the model again (a clip from those two frames), the others by
the non-generative backend. Each clip keeps its own step checkpoint in the job's work folder (the final
latents always, for jobs of several clips), so a killed job resumes clip by clip.

This module imports no torch at module level (the registry imports backends to list them); everything
heavy is imported when a backend is constructed."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np

from semfi_batch.backends._wan.defaults import DEFAULT_CFG_SCALE, DEFAULT_STEPS, SIGMA_SHIFT
from semfi_batch.backends._wan.geometry import DEFAULT_MAX_AREA, plan_geometry
from semfi_batch.backends._wan.layout import TOKENIZER_FILES, ModelFiles, WanLayout, missing_report
from semfi_batch.backends.base import (
    Backend,
    BackendOptions,
    Constraints,
    InterpolationRequest,
    package_marker,
    resolve_torch_device,
)
from semfi_batch.errors import BackendUnavailable, UnknownBackend
from semfi_batch.plan import (
    MAX_CLIP_FRAMES,
    clip_frame_count,
    content_key,
    default_seed,
    place_times,
)
from semfi_batch.run.identity import content_digest

# A space between two generated frames that holds at least this many delivered frames is generated again
# (only happens in gaps longer than one clip); fewer are made by the non-generative backend.
FINE_MIN_FRAMES = 4
# Non-generative backends for frames between two generated ones, best first.
FILL_BACKENDS = ("rife", "flow")
# Notes that add up over the calls of one job (a job made per field calls `interpolate` once per field).
_SUMMED_NOTES = ("condition_s", "denoise_s", "decode_s", "clips", "generated_frames")


@dataclass
class _Job:
    """One request's settings and what its clips report."""

    request: InterpolationRequest
    steps: int
    cfg: float
    notes: dict
    multi_clip: bool
    clips: list[dict] = field(default_factory=list)
    filled_by: str | None = None  # the backend that made frames between generated ones, when one did


class WanBackend(Backend):
    """A first/last-frame video model from the Wan2.1 family, run through diffsynth.

    Options read: device, models_dir, vram_limit_gb, ckpt_every, and from `extra`: "memory" ("auto",
    "gpu" or "offload"), "max_area" (pixels the model generates at most, default 1280*720), "dtype"
    ("auto", "bfloat16" or "float32"), "max_clip_frames" (default 81), "batch_cfg" (both guidance passes as
    one batch; default off, as the reference)."""

    layout: ClassVar[WanLayout]
    file_options: ClassVar[str] = "--models-dir"
    requires = ("torch", "diffsynth")
    constraints = Constraints(frame_rule="4k+1", size_multiple=16)
    # CLIP's precision when it differs from the DiT's ("float32" for SemFi, as its reference).
    image_encoder_dtype: ClassVar[str | None] = None

    # --- checks that need no model -------------------------------------------------------------------
    @classmethod
    def model_files(cls, options: BackendOptions) -> ModelFiles:
        """The files this backend loads, under --models-dir."""
        return cls.layout.files(Path(options.models_dir).expanduser().absolute())

    @classmethod
    def extra_files(cls, options: BackendOptions) -> list[tuple[Path, str]]:
        """Files besides the base model's (the SemFi checkpoint)."""
        return []

    @classmethod
    def weight_files(cls, options: BackendOptions) -> list[Path]:
        """The files whose weights the backend loads: DiT shards, text and image encoders, VAE, and the extra
        files (the SemFi checkpoint)."""
        files = cls.model_files(options)
        paths = [*files.dit, files.text_encoder, files.image_encoder, files.vae]
        return paths + [Path(path) for path, _ in cls.extra_files(options)]

    @classmethod
    def weight_digests(cls, options: BackendOptions) -> dict[str, str | None]:
        """File name -> SHA-256 of each weight file (None where it cannot be read): what says which weights
        made a job's frames, in its key, its step checkpoints' fingerprint and its record. Each file is
        hashed once per version on this machine (run/identity.content_digest)."""
        return {path.name: content_digest(path) for path in cls.weight_files(options)}

    @classmethod
    def availability(cls, options: BackendOptions) -> tuple[bool, str]:
        ok, why = super().availability(options)
        if not ok:
            return ok, why
        report = missing_report(cls.model_files(options), cls.extra_files(options))
        if report:
            return False, f"{report}. Point {cls.file_options} at them; see README 'SemFi backend'"
        return True, ""

    @classmethod
    def deciding_files(cls, options: BackendOptions) -> list[Path] | None:
        """Every model file (whether they are all there decides availability; the weights' digests are in the
        key), the packages this backend needs (whether they are installed), and the files that decide
        which backend fills frames between generated ones (`rife`'s weights)."""
        files = cls.model_files(options)
        paths = [path for path, _ in files.expected()] + [files.tokenizer / name for name in TOKENIZER_FILES]
        paths += [Path(path) for path, _ in cls.extra_files(options)]
        paths += [package_marker(name) for name in cls.requires]
        # Which backend fills frames between generated ones, and with what weights, decides frames too.
        for _, filler in _fill_candidates():
            files = [] if filler is None else filler.deciding_files(options)
            if files is None:
                return None
            paths += files
        return paths

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        return {
            "model": cls.layout.folder,
            "shift": SIGMA_SHIFT,
            "default_steps": DEFAULT_STEPS,
            "default_cfg_scale": DEFAULT_CFG_SCALE,
            "max_area": int(options.extra.get("max_area", DEFAULT_MAX_AREA)),
            "max_clip_frames": int(options.extra.get("max_clip_frames", MAX_CLIP_FRAMES)),
            "dtype": str(options.extra.get("dtype", "auto")),
            "batch_cfg": bool(options.extra.get("batch_cfg", False)),
            "filler": _filler_key(options),
            "weights": cls.weight_digests(options),
        }

    # --- loading (once per worker) --------------------------------------------------------------------
    def __init__(self, options: BackendOptions | None = None):
        super().__init__(options)
        import torch

        from semfi_batch.backends._wan import loading

        self._torch = torch
        extra = self.options.extra
        self.device = resolve_torch_device(self.options.device)
        self.dtype = loading.default_dtype(self.device, extra.get("dtype"))
        self.max_area = int(extra.get("max_area", DEFAULT_MAX_AREA))
        self.max_clip_frames = int(extra.get("max_clip_frames", MAX_CLIP_FRAMES))
        clip_frame_count(1, self.max_clip_frames)  # checks the limit
        self.batch_cfg = bool(extra.get("batch_cfg", False))
        clip_dtype = getattr(torch, self.image_encoder_dtype) if self.image_encoder_dtype else None
        t0 = time.perf_counter()
        # Before loading: the files this worker loads, by content (a file replaced later is not what it runs).
        self.weights = self.weight_digests(self.options)
        self.pipe, self.placement = loading.load_pipeline(
            self.model_files(self.options), self.device, self.dtype,
            memory=str(extra.get("memory", "auto")), vram_limit_gb=self.options.vram_limit_gb,
            image_encoder_dtype=clip_dtype,
        )  # fmt: skip
        self._setup()
        self.load_s = time.perf_counter() - t0
        self._jobs = 0
        self._filler: Backend | None = None

    def _setup(self) -> None:
        """Backend-specific preparation after loading (checks, MoL)."""

    def _before_clip(self, n_frames: int, notes: dict) -> None:
        """Backend-specific preparation of the DiT for a clip of `n_frames` (MoL branches)."""

    def _after_placement(self) -> None:
        """Backend-specific repair after the models were placed anew (VRAM management replaces the DiT's
        linear layers with wrappers: what was attached to the old ones must be attached to the new)."""

    def _condition(self, start: np.ndarray, end: np.ndarray, n_frames: int, job: _Job, seed: int, notes: dict):
        """The DiT's conditioning for one clip (diffsynth's pipeline units; SemFi overrides this)."""
        from semfi_batch.backends._wan import sampling

        request = job.request
        return sampling.condition(
            self.pipe, start, end, n_frames, request.prompt or "", request.negative_prompt or "", job.cfg,
            job.steps, seed,
        )  # fmt: skip

    def _identity(self) -> dict:
        """What, besides the job's inputs, decides the result (goes into the checkpoint fingerprint)."""
        return {
            "backend": self.name, "version": self.version, "model": self.layout.folder, "dtype": str(self.dtype),
            "batch_cfg": self.batch_cfg, "weights": self.weights,
        }  # fmt: skip

    def _weights_named(self) -> str:
        """Where the weights come from, for a message."""
        files = [str(self.model_files(self.options).root)] + [str(path) for path, _ in self.extra_files(self.options)]
        return ", ".join(files)

    # --- one job --------------------------------------------------------------------------------------
    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        gap = request.gap_frames
        height, width = request.start.shape[:2]
        geo = plan_geometry(width, height, self.max_area)
        start, end = geo.to_model(request.start), geo.to_model(request.end)
        steps = request.steps or DEFAULT_STEPS
        cfg = DEFAULT_CFG_SCALE if request.cfg_scale is None else float(request.cfg_scale)
        # The job's notes, added to what is there: a job may call this more than once (once per field) and
        # others write its notes too (Backend.generate, the engine); the engine starts them afresh per job.
        notes = self.notes.values
        notes.update(
            model=self.layout.folder,
            model_size=f"{geo.model_size[0]}x{geo.model_size[1]}",
            steps=steps,
            cfg_scale=cfg,
            dtype=str(self.dtype).removeprefix("torch."),
            memory=self.placement.mode,
            weights=self.weights,
        )
        notes.setdefault("oom_retry", False)
        for key in _SUMMED_NOTES:
            notes.setdefault(key, 0)
        if self._jobs == 0:
            notes["load_s"] = round(self.load_s, 3)
        self._jobs += 1
        on_gpu = self.device.type == "cuda"
        if on_gpu:
            self._torch.cuda.reset_peak_memory_stats(self.device)
        job = _Job(request, steps, cfg, notes, multi_clip=gap + 2 > self.max_clip_frames)
        times = request.inbetween_fractions()
        frames, sources = self._fill(start, end, times, job, request.work_dir, "0", request.seed)
        top = job.clips[0]
        notes.update({k: v for k, v in top.items() if k not in ("id", "frames", "seed")})
        notes.update(n_generated=top["frames"], delivered_times=[str(t) for t in times], delivered_from=sources)
        notes["clips"] += len(job.clips)
        notes["generated_frames"] += sum(c["frames"] for c in job.clips)
        if job.filled_by is not None:
            notes["filled_by"] = job.filled_by
        if len(job.clips) > 1:
            notes.setdefault("clip_list", []).extend(job.clips)
        for key in ("condition_s", "denoise_s", "decode_s"):
            notes[key] = round(notes[key], 3)
        if on_gpu:
            peak = round(self._torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            notes["peak_gpu_mb"] = max(peak, notes.get("peak_gpu_mb", 0))
        for frame in frames:
            yield geo.from_model(frame)

    def _fill(self, start, end, times: list[Fraction], job: _Job, work: Path | None, clip_id: str,
              seed: int) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
        """Frames at `times` (in (0, 1)) between `start` and `end`, and where each came from."""
        n = clip_frame_count(len(times), self.max_clip_frames)
        clip = self._clip(start, end, n, job, work, clip_id, seed)
        out: list = [None] * len(times)
        sources: list = [None] * len(times)
        between: dict[int, list[tuple[int, Fraction]]] = {}
        for k, (m, frac) in enumerate(place_times(times, n)):
            if frac == 0:
                out[k], sources[k] = clip[m], f"{clip_id}[{m}]"
            else:
                between.setdefault(m, []).append((k, frac))
        for m, items in sorted(between.items()):
            fracs = [frac for _, frac in items]
            if len(items) >= FINE_MIN_FRAMES:
                sub_id = f"{clip_id}.{m}"
                sub_work = None if work is None else Path(work) / f"clip-{sub_id}"
                sub_seed = default_seed(f"{seed}/{sub_id}")
                made, made_from = self._fill(clip[m], clip[m + 1], fracs, job, sub_work, sub_id, sub_seed)
            else:
                made = self._between(clip[m], clip[m + 1], fracs, job)
                made_from = [f"{job.filled_by}({clip_id}[{m}],{clip_id}[{m + 1}])@{f}" for f in fracs]
            for (k, _), frame, src in zip(items, made, made_from):
                out[k], sources[k] = frame, src
        return out, sources

    # --- frames between two generated ones (non-generative) -------------------------------------------
    def _fill_backend(self) -> Backend:
        """The best non-generative backend here (`_fill_class`), made once per worker."""
        if self._filler is None:
            self._filler = _fill_class(self.options)(_fill_options(self.options))
        return self._filler

    def _between(self, a: np.ndarray, b: np.ndarray, fracs: list[Fraction], job: _Job) -> list[np.ndarray]:
        """Frames at `fracs` of the way from `a` to `b`, made by the filler at exactly those times (one request
        per side, so the cost is per frame delivered, whatever the fractions' denominators). A frame past the
        middle is made from `b` back towards `a`, from the nearer generated frame."""
        filler = self._fill_backend()
        job.filled_by = filler.name
        near_a = [f for f in fracs if 2 * f <= 1]
        near_b = [f for f in fracs if 2 * f > 1]
        out = self._made_by(filler, a, b, near_a)
        out += self._made_by(filler, b, a, [1 - f for f in reversed(near_b)])[::-1]
        return out

    @staticmethod
    def _made_by(filler: Backend, start: np.ndarray, end: np.ndarray, fracs: list[Fraction]) -> list[np.ndarray]:
        if not fracs:
            return []
        times = tuple(float(f) for f in fracs)
        request = InterpolationRequest("between", start, end, gap_frames=len(times), seed=0, times=times)
        return list(filler.interpolate(request))

    # --- one generated clip ---------------------------------------------------------------------------
    def _clip(self, start, end, n, job: _Job, work, clip_id: str, seed: int) -> np.ndarray:
        """A generated clip of `n` frames (model size), with one retry offloaded after a CUDA OOM."""
        try:
            return self._generate(start, end, n, job, work, clip_id, seed)
        except self._torch.cuda.OutOfMemoryError:
            if self.placement.mode != "gpu":
                w, h = start.shape[1], start.shape[0]
                raise BackendUnavailable(
                    f"CUDA out of memory with offloading (vram limit {self.placement.vram_limit_gb} GB) for "
                    f"{w}x{h}, {n} frames; lower --vram-limit or the size"
                ) from None
        # outside the except block, so the failed attempt's tensors can be freed
        self._switch_to_offload(job.notes)
        return self._generate(start, end, n, job, work, clip_id, seed)

    def _switch_to_offload(self, notes: dict) -> None:
        from semfi_batch.backends._wan import loading

        self._torch.cuda.empty_cache()
        total = self._torch.cuda.get_device_properties(self.device).total_memory / 1024**3
        limit = self.options.vram_limit_gb or max(1.0, total - loading.ACTIVATION_HEADROOM_GB)
        self.placement = loading.Placement("offload", limit, "CUDA out of memory on the GPU-resident path")
        loading.place(self.pipe, self.placement)
        self._after_placement()
        notes.update(oom_retry=True, memory="offload")

    def _generate(self, start, end, n, job: _Job, work, clip_id: str, seed: int) -> np.ndarray:
        from semfi_batch.backends._wan import sampling

        request, notes = job.request, job.notes
        info = {"id": clip_id, "frames": n, "seed": seed}
        self._before_clip(n, info)
        t0 = time.perf_counter()
        cond = self._condition(start, end, n, job, seed, notes)
        checkpoint = None
        if work is not None:
            fingerprint = content_key({
                **self._identity(), "n": n, "steps": job.steps, "cfg": job.cfg, "seed": seed,
                "prompt": request.prompt or "", "negative_prompt": request.negative_prompt or "",
                "start": _digest(start), "end": _digest(end),
            })  # fmt: skip
            checkpoint = sampling.DenoiseCheckpoint(Path(work), fingerprint)
        # A job of several clips always keeps each clip's final latents, so a killed job resumes clip by clip.
        every = int(self.options.ckpt_every or 0) or (job.steps if job.multi_clip else 0)
        self.pipe.load_models_to_device(self.pipe.in_iteration_models)
        t1 = time.perf_counter()
        latents, resumed = sampling.denoise(
            sampling.make_predictor(self.pipe, cond, job.cfg, self.batch_cfg), cond.latent_shape, seed, job.steps,
            self.device, self.dtype, checkpoint, every,
        )  # fmt: skip
        t2 = time.perf_counter()
        sampling.require_finite(
            latents, f"the model made non-finite latents (NaN or infinity) for clip {clip_id} ({n} frames): "
            f"its weights are broken ({self._weights_named()})",
        )  # fmt: skip
        frames = sampling.decode(self.pipe, latents)
        info["resumed_from_step"] = resumed
        job.clips.append(info)
        notes["condition_s"] += t1 - t0
        notes["denoise_s"] += t2 - t1
        notes["decode_s"] += time.perf_counter() - t2
        return frames

    def close(self) -> None:
        self.pipe = None
        filler = getattr(self, "_filler", None)
        if filler is not None:
            filler.close()
        torch = getattr(self, "_torch", None)
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _digest(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).tobytes() + str(frame.shape).encode()).hexdigest()


def _fill_candidates() -> list[tuple[str, type[Backend] | None]]:
    """FILL_BACKENDS by name with their registered classes (None where not registered), best first; looked up
    in the registry at run time."""
    from semfi_batch.backends import backend_class

    found: list[tuple[str, type[Backend] | None]] = []
    for name in FILL_BACKENDS:
        try:
            found.append((name, backend_class(name)))
        except UnknownBackend:
            found.append((name, None))
    return found


def _fill_options(options: BackendOptions) -> BackendOptions:
    """The options a filler runs with: the worker's own, and no different-shots check (two generated frames of
    one clip are one shot by construction)."""
    return dataclasses.replace(options, extra={**(options.extra or {}), "allow_morph": True})


def _fill_class(options: BackendOptions) -> type[Backend]:
    """The best non-generative backend that can run here; BackendUnavailable says why none can."""
    reasons = []
    for name, cls in _fill_candidates():
        if cls is None:
            reasons.append(f"{name}: not registered")
            continue
        ok, why = cls.availability(_fill_options(options))
        if ok:
            return cls
        reasons.append(f"{name}: {why}")
    raise BackendUnavailable(f"no backend can make frames between generated ones ({'; '.join(reasons)})")


def _filler_key(options: BackendOptions) -> dict | None:
    """The filler's part of a job key: which backend fills, its version and its own key (rife's weights), from
    the options alone; None where none can run (a job that needs one then fails)."""
    try:
        cls = _fill_class(options)
    except BackendUnavailable:
        return None
    return {"backend": cls.name, "version": cls.version, **cls.key_params(_fill_options(options))}
