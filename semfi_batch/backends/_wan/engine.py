"""The body the `semfi` and `wan-flf2v` backends share: load once per worker, frame math, size policy,
step-checkpoint resume, and one retry with offloading after a CUDA out-of-memory error.

This module imports no torch at module level (the registry imports backends to list them); everything
heavy is imported when a backend is constructed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from semfi_batch.backends._wan.defaults import DEFAULT_CFG_SCALE, DEFAULT_STEPS, SIGMA_SHIFT
from semfi_batch.backends._wan.geometry import DEFAULT_MAX_AREA, plan_geometry
from semfi_batch.backends._wan.layout import ModelFiles, WanLayout, missing_report
from semfi_batch.backends.base import Backend, BackendOptions, Constraints, InterpolationRequest, JobNotes
from semfi_batch.errors import BackendUnavailable
from semfi_batch.plan import content_key, even_selection, semfi_frame_count


class WanBackend(Backend):
    """A first/last-frame video model from the Wan2.1 family, run through diffsynth.

    Options read: device, models_dir, vram_limit_gb, ckpt_every, and from `extra`: "memory" ("auto",
    "gpu" or "offload"), "max_area" (pixels the model generates at most, default 1280*720)."""

    layout: ClassVar[WanLayout]
    file_options: ClassVar[str] = "--models-dir"
    requires = ("torch", "diffsynth")
    constraints = Constraints(frame_rule="4k+1", size_multiple=16)

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
    def availability(cls, options: BackendOptions) -> tuple[bool, str]:
        ok, why = super().availability(options)
        if not ok:
            return ok, why
        report = missing_report(cls.model_files(options), cls.extra_files(options))
        if report:
            return False, f"{report}. Point {cls.file_options} at them; see README 'SemFi backend'"
        return True, ""

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        return {
            "model": cls.layout.folder,
            "shift": SIGMA_SHIFT,
            "default_steps": DEFAULT_STEPS,
            "default_cfg_scale": DEFAULT_CFG_SCALE,
            "max_area": int(options.extra.get("max_area", DEFAULT_MAX_AREA)),
        }

    # --- loading (once per worker) --------------------------------------------------------------------
    def __init__(self, options: BackendOptions | None = None):
        super().__init__(options)
        import torch

        from semfi_batch.backends._wan import loading

        self._torch = torch
        self.device = loading.resolve_device(self.options.device)
        self.dtype = loading.default_dtype(self.device)
        self.max_area = int(self.options.extra.get("max_area", DEFAULT_MAX_AREA))
        t0 = time.perf_counter()
        self.pipe, self.placement = loading.load_pipeline(
            self.model_files(self.options), self.device, self.dtype,
            memory=str(self.options.extra.get("memory", "auto")), vram_limit_gb=self.options.vram_limit_gb,
        )  # fmt: skip
        self._setup()
        self.load_s = time.perf_counter() - t0
        self._jobs = 0

    def _setup(self) -> None:
        """Backend-specific preparation after loading (checks, MoL)."""

    def _before_job(self, n_frames: int, notes: dict) -> None:
        """Backend-specific preparation of the DiT for a clip of `n_frames` (MoL folding)."""

    def _identity(self) -> dict:
        """What, besides the job's inputs, decides the result (goes into the checkpoint fingerprint)."""
        return {"backend": self.name, "version": self.version, "model": self.layout.folder, "dtype": str(self.dtype)}

    # --- one job --------------------------------------------------------------------------------------
    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        gap = request.gap_frames
        n = semfi_frame_count(gap)
        picks = even_selection(n, gap)
        height, width = request.start.shape[:2]
        geo = plan_geometry(width, height, self.max_area)
        start, end = geo.to_model(request.start), geo.to_model(request.end)
        steps = request.steps or DEFAULT_STEPS
        cfg = DEFAULT_CFG_SCALE if request.cfg_scale is None else float(request.cfg_scale)
        notes = {
            "model": self.layout.folder,
            "n_generated": n,
            "picked": picks,
            "model_size": f"{geo.model_size[0]}x{geo.model_size[1]}",
            "steps": steps,
            "cfg_scale": cfg,
            "memory": self.placement.mode,
            "oom_retry": False,
        }
        if self._jobs == 0:
            notes["load_s"] = round(self.load_s, 3)
        self._jobs += 1
        self.notes = JobNotes(notes)
        on_gpu = self.device.type == "cuda"
        if on_gpu:
            self._torch.cuda.reset_peak_memory_stats(self.device)
        try:
            video = self._generate(start, end, n, steps, cfg, request, notes)
            retry = False
        except self._torch.cuda.OutOfMemoryError:
            if self.placement.mode != "gpu":
                raise BackendUnavailable(
                    f"CUDA out of memory with offloading (vram limit {self.placement.vram_limit_gb} GB) for "
                    f"{geo.model_size[0]}x{geo.model_size[1]}, {n} frames; lower --vram-limit or the size"
                ) from None
            retry = True
        if retry:  # outside the except block, so the failed attempt's tensors can be freed
            self._switch_to_offload(notes)
            video = self._generate(start, end, n, steps, cfg, request, notes)
        if on_gpu:
            notes["peak_gpu_mb"] = round(self._torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        for i in picks:
            yield geo.from_model(video[i])

    def _switch_to_offload(self, notes: dict) -> None:
        from semfi_batch.backends._wan import loading

        self._torch.cuda.empty_cache()
        total = self._torch.cuda.get_device_properties(self.device).total_memory / 1024**3
        limit = self.options.vram_limit_gb or max(1.0, total - loading.ACTIVATION_HEADROOM_GB)
        self.placement = loading.Placement("offload", limit, "CUDA out of memory on the GPU-resident path")
        loading.place(self.pipe, self.placement)
        notes.update(oom_retry=True, memory="offload")

    def _generate(self, start, end, n, steps, cfg, request, notes) -> np.ndarray:
        from semfi_batch.backends._wan import sampling

        self._before_job(n, notes)
        t0 = time.perf_counter()
        cond = sampling.condition(
            self.pipe, start, end, n, request.prompt or "", request.negative_prompt or "", cfg, steps, request.seed
        )
        checkpoint = None
        if request.work_dir is not None:
            fingerprint = content_key({
                **self._identity(), "n": n, "steps": steps, "cfg": cfg, "seed": request.seed,
                "prompt": request.prompt or "", "negative_prompt": request.negative_prompt or "",
                "start": _digest(start), "end": _digest(end),
            })  # fmt: skip
            checkpoint = sampling.DenoiseCheckpoint(Path(request.work_dir), fingerprint)
        self.pipe.load_models_to_device(self.pipe.in_iteration_models)
        t1 = time.perf_counter()
        latents, resumed = sampling.denoise(
            sampling.make_predictor(self.pipe, cond, cfg), cond.latent_shape, request.seed, steps,
            self.device, self.dtype, checkpoint, int(self.options.ckpt_every or 0),
        )  # fmt: skip
        t2 = time.perf_counter()
        frames = sampling.decode(self.pipe, latents)
        notes.update(
            resumed_from_step=resumed,
            condition_s=round(t1 - t0, 3),
            denoise_s=round(t2 - t1, 3),
            decode_s=round(time.perf_counter() - t2, 3),
        )
        return frames

    def close(self) -> None:
        self.pipe = None
        torch = getattr(self, "_torch", None)
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _digest(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).tobytes() + str(frame.shape).encode()).hexdigest()
