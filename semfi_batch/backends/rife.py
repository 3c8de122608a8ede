"""`rife`: Practical-RIFE's IFNet (4.2x weights), a learned flow interpolator, on the CPU or a CUDA GPU.

Each in-between is one forward at its own time t in (0, 1); the frames of a pair (and with `frames_at`,
those of several pairs of one size) are stacked in one batch. Frames are padded on the right and bottom
to the network's multiple and cropped back. On a GPU the network runs in fp16, on the CPU in fp32 with
channels-last tensors. `--rife-ensemble` averages four passes: as is, mirrored left-right, and both with
the keyframes swapped at 1 - t.

Keys of any layout are taken as they are: 16-bit colour goes into the network as floats at its own depth, and
alpha is warped by the flow and blended by the mask made from the colour, so it moves with the picture.

Keyframes that look like two different shots (see _rife/shots.py) fail the job instead of being morphed
into each other, unless `--allow-morph`.

Options read from `extra`: rife_model (path), rife_scale (float, 1.0; 0.5 for 4K as Practical-RIFE
advises), rife_ensemble (bool), allow_morph (bool); and `device`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from semfi_batch.backends._rife.shots import DIFFERENT_SHOTS_SSIM, same_shot
from semfi_batch.backends._rife.weights import INSTALL_HINT, WEIGHTS_SHA256, load_ifnet, weights_path
from semfi_batch.backends.base import (
    Backend,
    BackendOptions,
    InterpolationRequest,
    package_marker,
    resolve_torch_device,
)
from semfi_batch.errors import OptionError, SemfiError
from semfi_batch.run.identity import content_digest

# Samples (frame times) per forward are capped by padded pixels: about 8 at 720p on a CPU, where larger
# batches only cost memory. On a GPU, four padded 1080p frames: on an H200 (bench/rife_gpu.py) 2-4 samples
# per forward gave 114-120 frames/s in fp16, 8 gave 109 and 14-15 gave 94, with memory growing all along.
_BATCH_PIXELS = {"cpu": 8 * 768 * 1280, "cuda": 4 * 1152 * 1920}
VALID_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


class DifferentShots(SemfiError):
    """The keyframes of a pair belong to different shots: interpolating would morph one into the other."""


def rife_settings(options: BackendOptions) -> dict:
    """The rife options from `options.extra`, with defaults, checked."""
    extra = options.extra or {}
    scale = float(extra.get("rife_scale") or 1.0)
    if scale not in VALID_SCALES:
        raise OptionError(f"--rife-scale must be one of {', '.join(map(str, VALID_SCALES))}, got {scale}")
    return {
        "model": weights_path(extra),
        "scale": scale,
        "ensemble": bool(extra.get("rife_ensemble")),
        "allow_morph": bool(extra.get("allow_morph")),
    }


class RifeBackend(Backend):
    """Practical-RIFE 4.2x IFNet interpolation."""

    name = "rife"
    description = "RIFE (Practical-RIFE 4.2x IFNet, learned optical flow; CPU or GPU, weights from `make install`)"
    version = "2"  # 2: 16-bit and RGBA keys at their own depth, alpha moved with the picture (8-bit RGB as in 1)
    requires = ("torch",)
    # 16-bit keys go into the network as floats at their own depth, and alpha is moved by the flow and mask
    # made from the colour (_rife/ifnet.py): 8-bit RGB keys give the frames they gave before.
    deep_frames = True

    @classmethod
    def availability(cls, options: BackendOptions) -> tuple[bool, str]:
        ok, why = super().availability(options)
        if not ok:
            return ok, why
        path = rife_settings(options)["model"]
        if not path.is_file():
            return False, f"RIFE weights not found at {path}; {INSTALL_HINT}, or pass --rife-model PATH"
        return True, ""

    @classmethod
    def deciding_files(cls, options: BackendOptions) -> list[Path]:
        """The weights (their content is part of the key; their presence is what `auto` asks) and torch's
        package (whether it is installed), or where it would be."""
        return [rife_settings(options)["model"], package_marker("torch")]

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        # --allow-morph is not part of the key: it changes no frame, only whether a job across shots fails
        # (such a job is retried with --retry-failed, like any failure).
        # The weights by content (hashed once per version of the file on this machine): other weights of
        # the same name and size, fine-tuned ones say, must not pass for the frames of these.
        settings = rife_settings(options)
        path: Path = settings["model"]
        return {
            "model": path.name, "model_sha256": content_digest(path) if path.is_file() else None,
            "scale": settings["scale"], "ensemble": settings["ensemble"],
        }  # fmt: skip

    def __init__(self, options: BackendOptions | None = None):
        super().__init__(options)
        import torch

        self._torch = torch
        self.settings = rife_settings(self.options)
        self.device = resolve_torch_device(self.options.device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        model = load_ifnet(self.settings["model"])
        self.model = model.to(self.device, self.dtype, memory_format=torch.channels_last)

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        same, similarity = same_shot(request.start, request.end)
        self.notes.values.update(shot_ssim=round(similarity, 4))
        if not same and not self.settings["allow_morph"]:
            raise DifferentShots(
                f"keyframes belong to different shots (32x32 SSIM {similarity:.3f} < {DIFFERENT_SHOTS_SSIM}); "
                "use --backend semfi or wan-flf2v for new content, or --allow-morph to morph anyway"
            )
        times = request.inbetween_times()
        frames = self.frames_at([(request.start, request.end, t) for t in times])
        if self.device.type == "cuda":
            self.notes.values["peak_gpu_mb"] = round(self._torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        yield from frames

    def frames_at(self, samples: Sequence[tuple[np.ndarray, np.ndarray, float]]) -> list[np.ndarray]:
        """The frame at time t between start and end, for each (start, end, t); all frames of one size.
        Samples are stacked into as few forwards as the batch budget allows (keyframes shared by several
        samples are converted once)."""
        torch = self._torch
        h, w = samples[0][0].shape[:2]
        top = float(np.iinfo(samples[0][0].dtype).max)  # 255 or 65535
        multiple = _size_multiple(self.settings["scale"])
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        passes = 4 if self.settings["ensemble"] else 1
        per_batch = max(1, _BATCH_PIXELS[self.device.type] // (ph * pw * passes))
        cache: dict[int, object] = {}

        def tensor(image: np.ndarray):
            if id(image) not in cache:
                array = np.ascontiguousarray(image)
                if array.dtype == np.uint8:
                    array = array if array.flags.writeable else array.copy()  # torch wants writable memory
                    x = torch.from_numpy(array).to(self.device).permute(2, 0, 1)
                    x = x.to(self.dtype).div_(255.0)
                else:  # scaled in float32: 65535 is past fp16's range
                    x = torch.from_numpy(array.astype(np.float32) / top).to(self.device).permute(2, 0, 1)
                    x = x.to(self.dtype)
                padding = (0, pw - w, 0, ph - h)
                colour = torch.nn.functional.pad(x[:3], padding)  # zeros, as Practical-RIFE pads
                if x.shape[0] > 3:  # alpha padded with its edge: a warp that reaches the padding keeps it opaque
                    alpha = torch.nn.functional.pad(x[None, 3:].float(), padding, mode="replicate")[0]
                    colour = torch.cat((colour, alpha.to(self.dtype)))
                cache[id(image)] = colour
            return cache[id(image)]

        out: list[np.ndarray] = []
        with torch.inference_mode():
            for i in range(0, len(samples), per_batch):
                chunk = samples[i : i + per_batch]
                img0 = torch.stack([tensor(s[0]) for s in chunk])
                img1 = torch.stack([tensor(s[1]) for s in chunk])
                t = torch.tensor([s[2] for s in chunk], device=self.device, dtype=self.dtype)
                result = self._forward(img0, img1, t)[:, :, :h, :w]
                result = result.float().clamp_(0, 1).mul_(top).round_()
                result = result.to(torch.uint8) if top == 255 else result.to(torch.int32)
                out.extend(f.astype(samples[0][0].dtype, copy=False) for f in result.permute(0, 2, 3, 1).cpu().numpy())
        return out

    def _forward(self, img0, img1, t):
        torch = self._torch
        scale = self.settings["scale"]
        if not self.settings["ensemble"]:
            return self.model(_cl(torch, img0), _cl(torch, img1), t, scale)
        # Four views in one batch: as is, mirrored, reversed in time, mirrored and reversed.
        m0, m1 = img0.flip(3), img1.flip(3)
        a = torch.cat((img0, m0, img1, m1))
        b = torch.cat((img1, m1, img0, m0))
        times = torch.cat((t, t, 1 - t, 1 - t))
        y = self.model(_cl(torch, a), _cl(torch, b), times, scale)
        n = img0.shape[0]
        views = (y[:n], y[n : 2 * n].flip(3), y[2 * n : 3 * n], y[3 * n :].flip(3))
        return sum(v.float() for v in views) / 4.0

    def close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()


def _cl(torch, x):
    return x.contiguous(memory_format=torch.channels_last)


def _size_multiple(scale: float) -> int:
    from semfi_batch.backends._rife.ifnet import size_multiple

    return size_multiple(scale)


__all__ = ["RifeBackend", "DifferentShots", "WEIGHTS_SHA256", "rife_settings"]
