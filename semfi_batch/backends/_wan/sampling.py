"""Conditioning, the flow-matching denoise loop with resumable step checkpoints, and decoding.

SemFi's conditioning follows the reference's `encode_image` step by step (`semfi_condition`): keyframes
scaled to [-1, 1] in float32, CLIP features of start and end (CLIP in float32) added, the VAE condition
encoded whole (untiled), the mask of the two known frames, UMT5 prompt and negative prompt (the negative
only when guidance is on). `wan-flf2v` runs diffsynth's own WanVideoPipeline units (`condition`).

The denoise loop is ours so that it can checkpoint and resume: every K steps it writes the latents, the
number of steps done and the noise generator's state to one safetensors file (atomically); a run that finds
a checkpoint with the same job fingerprint continues from it, and since every step is a pure function of the
latents, its result equals an uninterrupted run's."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffsynth.diffusion.flow_match import FlowMatchScheduler
from diffsynth.pipelines.wan_video import WanVideoPipeline, WanVideoUnit_PromptEmbedder
from PIL import Image
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from semfi_batch.atomic_write import write_atomic
from semfi_batch.backends._wan.defaults import SIGMA_SHIFT
from semfi_batch.errors import SemfiError

CHECKPOINT_NAME = "denoise.safetensors"
CHECKPOINT_FORMAT = "semfi-batch/denoise/1"
# VAE tiles (latent units) of the reference's decode and of diffsynth's pipeline defaults. The reference
# decodes tiled (a frame that fits in one tile is decoded whole, which is the same result) and encodes the
# SemFi condition untiled; tiled encoding is only our fallback when the whole encode runs out of memory.
TILE_SIZE, TILE_STRIDE = (30, 52), (15, 26)


def _tiled(height: int, width: int) -> bool:
    return height // 8 > TILE_SIZE[0] or width // 8 > TILE_SIZE[1]


def reference_pixels(frame: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> (1, 3, H, W) float32 in [-1, 1], computed in float32 as the reference's
    `preprocess_image` does (diffsynth's rounds to the pipeline's bf16 before scaling)."""
    return torch.from_numpy(np.asarray(frame, dtype=np.float32) * (2 / 255) - 1).permute(2, 0, 1).unsqueeze(0)


@torch.no_grad()
def encode_prompt(pipe: WanVideoPipeline, prompt: str) -> torch.Tensor:
    """UMT5 embedding of `prompt`, padding positions zeroed (the reference's and diffsynth's encoder step)."""
    pipe.load_models_to_device(["text_encoder"])
    return WanVideoUnit_PromptEmbedder().encode_prompt(pipe, prompt)


@torch.no_grad()
def clip_context(pipe: WanVideoPipeline, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """CLIP features of the start and end frames, added element-wise, in CLIP's own precision (float32
    for SemFi), then cast to the DiT's."""
    pipe.load_models_to_device(["image_encoder"])
    encoder = pipe.image_encoder
    dtype = next(encoder.parameters()).dtype
    feats = [encoder.encode_image([px.to(device=pipe.device, dtype=dtype)]) for px in (start, end)]
    return (feats[0] + feats[1]).to(dtype=pipe.torch_dtype, device=pipe.device)


@torch.no_grad()
def vae_condition(pipe: WanVideoPipeline, start: torch.Tensor, end: torch.Tensor, n_frames: int,
                  tiled: bool = False) -> torch.Tensor:  # fmt: skip
    """The 20-channel condition y: 4 mask channels (frames 0 and N-1 known) + the VAE latents of
    [start, N-2 black frames, end]."""
    height, width = start.shape[-2:]
    device = pipe.device
    mask = torch.ones(1, n_frames, height // 8, width // 8, device=device)
    mask[:, 1 : n_frames - 1] = 0
    mask = torch.concat([torch.repeat_interleave(mask[:, 0:1], repeats=4, dim=1), mask[:, 1:]], dim=1)
    mask = mask.view(1, mask.shape[1] // 4, 4, height // 8, width // 8).transpose(1, 2)[0]
    start, end = start.to(device), end.to(device)
    gap = torch.zeros(3, n_frames - 2, height, width, device=device)
    video = torch.concat([start.transpose(0, 1), gap, end.transpose(0, 1)], dim=1)
    pipe.load_models_to_device(["vae"])
    with _quiet_progress():
        latents = pipe.vae.encode(
            [video.to(dtype=pipe.torch_dtype, device=device)], device=device,
            tiled=tiled, tile_size=TILE_SIZE, tile_stride=TILE_STRIDE,
        )[0]  # fmt: skip
    return torch.concat([mask, latents]).unsqueeze(0).to(dtype=pipe.torch_dtype, device=device)


@torch.no_grad()
def semfi_condition(pipe: WanVideoPipeline, start: np.ndarray, end: np.ndarray, n_frames: int, prompt: str,
                    negative_prompt: str, cfg_scale: float, notes: dict | None = None) -> Conditioning:  # fmt: skip
    """SemFi's conditioning for keyframes already at the model size (multiples of 16). The VAE condition is
    encoded whole as the reference does; only if that runs out of GPU memory is it encoded in tiles, and
    `notes["y_tiled"]` says so."""
    height, width = start.shape[:2]
    start_px, end_px = reference_pixels(start), reference_pixels(end)
    posi = {"context": encode_prompt(pipe, prompt)}
    nega = {"context": encode_prompt(pipe, negative_prompt)} if cfg_scale != 1.0 else {}
    clip = clip_context(pipe, start_px, end_px)
    try:
        y, fallback = vae_condition(pipe, start_px, end_px, n_frames), False
    except torch.cuda.OutOfMemoryError:
        fallback = True
    if fallback:  # outside the except block, so the failed attempt's tensors can be freed
        torch.cuda.empty_cache()
        y = vae_condition(pipe, start_px, end_px, n_frames, tiled=True)
    if notes is not None:
        notes["y_tiled"] = "memory fallback (CUDA out of memory encoding it whole)" if fallback else False
    shape = (1, 16, (n_frames - 1) // 4 + 1, height // 8, width // 8)
    return Conditioning(shared={"clip_feature": clip, "y": y}, posi=posi, nega=nega, latent_shape=shape)


@contextlib.contextmanager
def _quiet_progress():
    """diffsynth's tiled VAE draws tqdm bars on stderr; a batch run has its own progress display."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


# Inputs the pipeline keeps per CFG side; everything else in its signature is shared.
_SIDE_KEYS = {"prompt", "negative_prompt", "vap_prompt", "negative_vap_prompt", "tea_cache_l1_thresh",
              "tea_cache_model_id", "num_inference_steps", "progress_bar_cmd", "output_type"}  # fmt: skip


@dataclass
class Conditioning:
    """What the DiT needs besides the latents: shared inputs and the per-side (CFG) inputs."""

    shared: dict
    posi: dict
    nega: dict
    latent_shape: tuple[int, ...]


@torch.no_grad()
def condition(pipe: WanVideoPipeline, start: np.ndarray, end: np.ndarray, n_frames: int, prompt: str,
              negative_prompt: str, cfg_scale: float, steps: int, seed: int) -> Conditioning:  # fmt: skip
    """Run the pipeline's units for a first/last-frame job at the frames' size (multiples of 16)."""
    height, width = start.shape[:2]
    args = {k: p.default for k, p in inspect.signature(type(pipe).__call__).parameters.items() if k != "self"}
    args.update(
        prompt=prompt, negative_prompt=negative_prompt, input_image=Image.fromarray(start),
        end_image=Image.fromarray(end), seed=seed, rand_device="cpu", height=height, width=width,
        num_frames=n_frames, cfg_scale=cfg_scale, num_inference_steps=steps, sigma_shift=SIGMA_SHIFT,
        tiled=_tiled(height, width), tile_size=TILE_SIZE, tile_stride=TILE_STRIDE,
    )  # fmt: skip
    pipe.scheduler.set_timesteps(steps, denoising_strength=1.0, shift=SIGMA_SHIFT)
    side = {"tea_cache_l1_thresh": None, "tea_cache_model_id": "", "num_inference_steps": steps}
    posi = {"prompt": prompt, "positive": True, "vap_prompt": " ", **side}
    nega = {"negative_prompt": negative_prompt, "positive": False, "negative_vap_prompt": " ", **side}
    shared = {k: v for k, v in args.items() if k not in _SIDE_KEYS}
    with _quiet_progress():
        for unit in pipe.units:
            shared, posi, nega = pipe.unit_runner(unit, pipe, shared, posi, nega)
    latents = shared.pop("latents")
    shared.pop("noise", None)
    return Conditioning(shared=shared, posi=posi, nega=nega, latent_shape=tuple(latents.shape))


def make_predictor(pipe: WanVideoPipeline, cond: Conditioning, cfg_scale: float, batch_cfg: bool = False) -> Callable:
    """(latents, timestep) -> guided velocity, the DiT called through diffsynth's `model_fn_wan_video`.
    Guidance runs the positive and the negative pass one after the other, as the reference does; with
    `batch_cfg` both go through the DiT as one batch of two (faster on a GPU; matmuls of another shape may
    round differently, so it is not the default)."""
    models = {name: getattr(pipe, name) for name in pipe.in_iteration_models}
    return make_guided(lambda **kw: pipe.model_fn(**models, **kw), cond, cfg_scale, batch_cfg)


def make_guided(model_fn: Callable, cond: Conditioning, cfg_scale: float, batch_cfg: bool = False) -> Callable:
    """Classifier-free guidance around `model_fn(latents=, timestep=, **conditioning)`."""
    if batch_cfg and cfg_scale != 1.0:
        # Tensors twice, one per pass; the rest (diffsynth's shared inputs include PIL images) as they are.
        both = {k: torch.concat([v, v]) if isinstance(v, torch.Tensor) else v for k, v in cond.shared.items()}
        both["context"] = torch.concat([cond.posi["context"], cond.nega["context"]])

    def predict(latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if cfg_scale == 1.0:
            return model_fn(**cond.shared, **cond.posi, latents=latents, timestep=timestep)
        if batch_cfg:
            posi, nega = model_fn(**both, latents=latents, timestep=timestep).chunk(2)
        else:
            posi = model_fn(**cond.shared, **cond.posi, latents=latents, timestep=timestep)
            nega = model_fn(**cond.shared, **cond.nega, latents=latents, timestep=timestep)
        return nega + cfg_scale * (posi - nega)

    return predict


class DenoiseCheckpoint:
    """The step checkpoint of one job: latents, steps done and generator state, in one safetensors file.
    A checkpoint is only used by a job with the same fingerprint (inputs, settings and model)."""

    def __init__(self, folder: Path, fingerprint: str):
        self.path = Path(folder) / CHECKPOINT_NAME
        self.fingerprint = fingerprint

    def load(self) -> tuple[int, torch.Tensor, torch.Tensor] | None:
        """(steps done, latents, generator state), or None when there is no usable checkpoint."""
        if not self.path.is_file():
            return None
        try:
            data = self.path.read_bytes()
            tensors = st_load(data)
            header_len = int.from_bytes(data[:8], "little")
            meta = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
        except Exception:  # a torn or foreign file is ignored: the job starts over
            return None
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("fingerprint") != self.fingerprint:
            return None
        return int(meta["step"]), tensors["latents"], tensors["generator_state"]

    def save(self, step: int, latents: torch.Tensor, generator: torch.Generator) -> None:
        """Write the checkpoint atomically (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"latents": latents.detach().contiguous().cpu(), "generator_state": generator.get_state()}
        meta = {"format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, "step": str(step)}
        write_atomic(self.path, st_save(tensors, metadata=meta))


@torch.no_grad()
def denoise(predict: Callable, latent_shape: tuple[int, ...], seed: int, steps: int, device, dtype,
            checkpoint: DenoiseCheckpoint | None = None, ckpt_every: int = 0,
            on_step: Callable[[int], None] | None = None) -> tuple[torch.Tensor, int]:  # fmt: skip
    """Flow-matching sampling (Wan schedule, shift 5) from noise drawn by a CPU generator seeded with
    `seed`, resuming from `checkpoint` when it holds one. Returns (latents, step resumed from)."""
    scheduler = FlowMatchScheduler("Wan")
    scheduler.set_timesteps(steps, denoising_strength=1.0, shift=SIGMA_SHIFT)
    generator = torch.Generator("cpu").manual_seed(seed)
    start = 0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None and tuple(saved[1].shape) == tuple(latent_shape) and saved[0] <= steps:
        start, latents, state = saved
        generator.set_state(state)
        latents = latents.to(device=device, dtype=dtype)
    else:
        noise = torch.randn(latent_shape, generator=generator, device="cpu", dtype=torch.float32)
        latents = noise.to(device=device, dtype=dtype)
    for i in range(start, steps):
        t = scheduler.timesteps[i]
        velocity = predict(latents, t.unsqueeze(0).to(dtype=dtype, device=device))
        latents = scheduler.step(velocity, t, latents)
        if checkpoint is not None and ckpt_every > 0 and ((i + 1) % ckpt_every == 0 or i + 1 == steps):
            checkpoint.save(i + 1, latents, generator)
        if on_step is not None:
            on_step(i + 1)
    return latents, start


@torch.no_grad()
def decode(pipe: WanVideoPipeline, latents: torch.Tensor) -> np.ndarray:
    """Latents -> (N, H, W, 3) uint8 frames, quantised as diffsynth's pipeline does."""
    pipe.load_models_to_device(["vae"])
    tiled = _tiled(latents.shape[-2] * 8, latents.shape[-1] * 8)
    with _quiet_progress():
        video = pipe.vae.decode(latents, device=pipe.device, tiled=tiled, tile_size=TILE_SIZE, tile_stride=TILE_STRIDE)
    pipe.load_models_to_device([])
    video = video[0].permute(1, 2, 3, 0).float()  # (N, H, W, C) in [-1, 1]
    # NaN would become 0 in uint8: black frames that look made.
    require_finite(
        video, "the VAE decoded non-finite pixels (NaN or infinity) from finite latents: its weights are broken"
    )
    return ((video + 1) * 127.5).clip(0, 255).to(device="cpu", dtype=torch.uint8).numpy()


def require_finite(values: torch.Tensor, problem: str) -> None:
    """Raise SemfiError(`problem`) when `values` hold a NaN or an infinity (the job fails, no frames kept)."""
    if not bool(torch.isfinite(values).all()):
        raise SemfiError(problem)
