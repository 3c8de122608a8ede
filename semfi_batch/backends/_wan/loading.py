"""Loading Wan2.1 models with diffsynth's loader, and placing them on the GPU or under VRAM management.

diffsynth recognises model files by a hash of their keys and shapes. We instead read each component's
config from the shapes in its file (layers from the keys, widths from the tensors; Wan DiTs use 128-wide
attention heads, the CLIP ViT-H 80-wide), so the real 14B files and small test models of the same
architecture go through one loading path: `diffsynth.core.loader.load_model` with the class, that config
and diffsynth's state-dict converters."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from diffsynth.configs import VRAM_MANAGEMENT_MODULE_MAPS
from diffsynth.core.loader import load_model, load_state_dict
from diffsynth.core.vram.layers import AutoTorchModule, enable_vram_management
from diffsynth.models.model_loader import ModelPool
from diffsynth.models.wan_video_dit import WanModel
from diffsynth.models.wan_video_image_encoder import WanImageEncoder, clip_xlm_roberta_vit_h_14
from diffsynth.models.wan_video_text_encoder import HuggingfaceTokenizer, WanTextEncoder
from diffsynth.models.wan_video_vae import VideoVAE_, WanVideoVAE
from diffsynth.pipelines.wan_video import WanVideoPipeline
from diffsynth.utils.state_dict_converters.wan_video_dit import WanVideoDiTStateDictConverter
from diffsynth.utils.state_dict_converters.wan_video_image_encoder import WanImageEncoderStateDictConverter
from diffsynth.utils.state_dict_converters.wan_video_vae import WanVideoVAEStateDictConverter
from safetensors import safe_open

from semfi_batch.backends._wan.layout import ModelFiles
from semfi_batch.errors import BackendUnavailable

DIT_HEAD_DIM = 128
CLIP_HEAD_DIM = 80
TEXT_SEQ_LEN = 512
# GPU memory kept free for activations (720p, 81 frames, bf16) when deciding whether everything fits.
ACTIVATION_HEADROOM_GB = 12.0

_CLASS_PATHS = {
    "dit": "diffsynth.models.wan_video_dit.WanModel",
    "text_encoder": "diffsynth.models.wan_video_text_encoder.WanTextEncoder",
    "image_encoder": "diffsynth.models.wan_video_image_encoder.WanImageEncoder",
    "vae": "diffsynth.models.wan_video_vae.WanVideoVAE",
}


class SizedWanImageEncoder(WanImageEncoder):
    """diffsynth's WanImageEncoder (open-clip XLM-RoBERTa ViT-H/14) with the vision tower's depth and MLP
    width read from the file; with the release's file this is exactly WanImageEncoder."""

    def __init__(self, **vision):
        torch.nn.Module.__init__(self)
        self.model, self.transforms = clip_xlm_roberta_vit_h_14(
            pretrained=False, return_transforms=True, return_tokenizer=False, dtype=torch.float32, device="cpu",
            **vision,
        )  # fmt: skip


class SizedWanVideoVAE(WanVideoVAE):
    """diffsynth's WanVideoVAE with the inner network's base width read from the file (96 in the release)."""

    def __init__(self, z_dim: int = 16, dim: int = 96):
        super().__init__(z_dim=z_dim)
        if dim != self.model.dim:
            self.model = VideoVAE_(dim=dim, z_dim=z_dim).eval().requires_grad_(False)


def _count_layers(keys, prefix: str) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    found = [int(m.group(1)) for k in keys if (m := pat.match(k))]
    return max(found) + 1 if found else 0


def _need(shapes: dict, key: str, path) -> tuple[int, ...]:
    if key not in shapes:
        raise BackendUnavailable(f"{path} does not look like the expected Wan2.1 model: it has no {key!r}")
    return tuple(shapes[key])


def dit_config(shapes: dict[str, tuple[int, ...]], path="DiT") -> dict:
    """WanModel keyword arguments read from the DiT's parameter shapes."""
    dim, in_dim, *patch = _need(shapes, "patch_embedding.weight", path)
    ffn_dim = _need(shapes, "blocks.0.ffn.0.weight", path)[0]
    text_dim = _need(shapes, "text_embedding.0.weight", path)[1]
    freq_dim = _need(shapes, "time_embedding.0.weight", path)[1]
    out_dim = _need(shapes, "head.head.weight", path)[0] // math.prod(patch)
    return {
        "dim": dim,
        "in_dim": in_dim,
        "ffn_dim": ffn_dim,
        "out_dim": out_dim,
        "text_dim": text_dim,
        "freq_dim": freq_dim,
        "eps": 1e-6,
        "patch_size": tuple(patch),
        "num_heads": max(1, dim // DIT_HEAD_DIM),
        "num_layers": _count_layers(shapes, "blocks."),
        "has_image_input": "img_emb.proj.1.weight" in shapes,
        "has_image_pos_emb": "img_emb.emb_pos" in shapes,
    }


def text_encoder_config(shapes: dict, path="text encoder") -> dict:
    """WanTextEncoder (UMT5 encoder) keyword arguments read from its parameter shapes."""
    vocab, dim = _need(shapes, "token_embedding.weight", path)
    shared_pos = "pos_embedding.embedding.weight" in shapes
    pos_key = "pos_embedding.embedding.weight" if shared_pos else "blocks.0.pos_embedding.embedding.weight"
    num_buckets, num_heads = _need(shapes, pos_key, path)
    return {
        "vocab": vocab,
        "dim": dim,
        "dim_attn": _need(shapes, "blocks.0.attn.q.weight", path)[0],
        "dim_ffn": _need(shapes, "blocks.0.ffn.fc1.weight", path)[0],
        "num_heads": num_heads,
        "num_layers": _count_layers(shapes, "blocks."),
        "num_buckets": num_buckets,
        "shared_pos": shared_pos,
    }


def image_encoder_config(shapes: dict, path="image encoder") -> dict:
    """Vision-tower arguments for SizedWanImageEncoder, read from the CLIP file's (unconverted) shapes."""
    vdim, _, patch, _ = _need(shapes, "visual.patch_embedding.weight", path)
    tokens = _need(shapes, "visual.pos_embedding", path)[1]
    side = math.isqrt(tokens - 1)
    mlp = _need(shapes, "visual.transformer.0.mlp.0.weight", path)[0]
    return {
        "vision_dim": vdim,
        "patch_size": patch,
        "image_size": side * patch,
        "vision_layers": _count_layers(shapes, "visual.transformer."),
        "vision_heads": max(1, vdim // CLIP_HEAD_DIM),
        "vision_mlp_ratio": mlp / vdim,
        "embed_dim": _need(shapes, "visual.head", path)[1],
    }


def vae_config(shapes: dict, path="VAE") -> dict:
    """SizedWanVideoVAE arguments read from the VAE file's (unconverted) shapes."""
    return {
        "dim": _need(shapes, "encoder.conv1.weight", path)[0],
        "z_dim": _need(shapes, "conv2.weight", path)[0],
    }


def _shapes(state_dict: dict) -> dict[str, tuple[int, ...]]:
    if "model_state" in state_dict and isinstance(state_dict["model_state"], dict):
        state_dict = state_dict["model_state"]
    return {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def safetensors_shapes(paths) -> dict[str, tuple[int, ...]]:
    """Key -> shape over all shards, read from the headers only."""
    shapes = {}
    for path in paths:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
            raise BackendUnavailable(f"cannot read DiT shard {path}: {exc}") from None
    return WanVideoDiTStateDictConverter(shapes)


def _read(path, dtype) -> dict:
    try:
        return load_state_dict(str(path), torch_dtype=dtype, device="cpu")
    except Exception as exc:  # torch raises several types for unreadable or unsafe pickles
        raise BackendUnavailable(f"cannot load {path} (weights only): {exc}") from None


def _nbytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@dataclass
class Placement:
    """Where the models live: "gpu" (all resident), "offload" (diffsynth VRAM management) or "cpu"."""

    mode: str
    vram_limit_gb: float | None = None
    reason: str = ""


class GuardedWanVideoPipeline(WanVideoPipeline):
    """WanVideoPipeline whose model offloading also runs on CPU devices (diffsynth 2.1.12 calls
    `torch.cpu.empty_cache`, which does not exist)."""

    def load_models_to_device(self, model_names):
        if not self.vram_management_enabled:
            return
        managed = [(n, m) for n, m in self.named_children() if getattr(m, "vram_management_enabled", False)]
        for name, model in managed:
            if name not in model_names:
                for module in model.modules():
                    if isinstance(module, AutoTorchModule):
                        module.offload()
        if self.device_type == "cuda":
            torch.cuda.empty_cache()
        for name, model in managed:
            if name in model_names:
                for module in model.modules():
                    if isinstance(module, AutoTorchModule):
                        module.onload()


_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}


def default_dtype(device: torch.device, asked: str | None = None) -> torch.dtype:
    """The DiT/VAE/text precision: `asked` ("bfloat16" or "float32") when given, else bf16 on GPUs (the
    release's and the reference's precision) and float32 on the CPU, where bf16 matmuls are slow."""
    if asked not in (None, "", "auto"):
        if asked not in _DTYPES:
            raise BackendUnavailable(f"dtype {asked!r} is not one of {', '.join(sorted(_DTYPES))}")
        return _DTYPES[asked]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_pipeline(files: ModelFiles, device: torch.device, dtype: torch.dtype, memory: str = "auto",
                  vram_limit_gb: float | None = None, image_encoder_dtype: torch.dtype | None = None,
                  ) -> tuple[GuardedWanVideoPipeline, Placement]:  # fmt: skip
    """Load the text encoder, image encoder, VAE, DiT and tokenizer of one Wan2.1 release into a pipeline,
    placed by `memory`: "auto" (everything on the GPU when it fits with activation headroom, else VRAM
    management), "gpu", or "offload". A `vram_limit_gb` always means VRAM management with that limit.
    `image_encoder_dtype` keeps CLIP in another precision (SemFi's reference runs it in float32)."""
    pipe = GuardedWanVideoPipeline(device=str(device), torch_dtype=dtype)
    clip_dtype = image_encoder_dtype or dtype

    sd = _read(files.text_encoder, dtype)
    pipe.text_encoder = load_model(
        WanTextEncoder, str(files.text_encoder), config=text_encoder_config(_shapes(sd), files.text_encoder),
        torch_dtype=dtype, device="cpu", state_dict=sd,
    )  # fmt: skip
    sd = _read(files.image_encoder, clip_dtype)
    pipe.image_encoder = load_model(
        SizedWanImageEncoder, str(files.image_encoder), config=image_encoder_config(_shapes(sd), files.image_encoder),
        torch_dtype=clip_dtype, device="cpu", state_dict=WanImageEncoderStateDictConverter(sd),
    )  # fmt: skip
    sd = _read(files.vae, dtype)
    pipe.vae = load_model(
        SizedWanVideoVAE, str(files.vae), config=vae_config(_shapes(sd), files.vae),
        torch_dtype=dtype, device="cpu", state_dict=WanVideoVAEStateDictConverter(sd),
    )  # fmt: skip
    del sd

    shapes = safetensors_shapes(files.dit)
    config = dit_config(shapes, files.dit[0].parent)
    placement = decide_placement(device, dtype, shapes, pipe, memory, vram_limit_gb)
    dit_device = str(device) if placement.mode == "gpu" else "cpu"
    try:
        dit_sd = load_state_dict([str(p) for p in files.dit], torch_dtype=dtype, device=dit_device)
    except Exception as exc:  # unreadable shard
        raise BackendUnavailable(f"cannot load the DiT shards in {files.root}: {exc}") from None
    pipe.dit = load_model(
        WanModel, [str(p) for p in files.dit], config=config, torch_dtype=dtype, device=dit_device,
        state_dict_converter=WanVideoDiTStateDictConverter, state_dict=dit_sd,
    )  # fmt: skip
    del dit_sd
    pipe.tokenizer = HuggingfaceTokenizer(name=str(files.tokenizer), seq_len=TEXT_SEQ_LEN, clean="whitespace")
    pipe.height_division_factor = pipe.width_division_factor = pipe.vae.upsampling_factor * 2
    place(pipe, placement)
    return pipe, placement


def decide_placement(device, dtype, dit_shapes, pipe, memory, vram_limit_gb) -> Placement:
    """The memory policy, decided before the DiT is read (its size comes from the shard headers)."""
    if device.type != "cuda":
        return Placement("offload" if memory == "offload" else "cpu", None, "CPU device")
    if vram_limit_gb is not None:
        return Placement("offload", vram_limit_gb, f"--vram-limit {vram_limit_gb:g} GB")
    total_gb = torch.cuda.get_device_properties(device).total_memory / 1024**3
    default_limit = max(1.0, total_gb - ACTIVATION_HEADROOM_GB)
    if memory == "offload":
        return Placement("offload", default_limit, "asked for")
    if memory == "gpu":
        return Placement("gpu", None, "asked for")
    itemsize = torch.empty((), dtype=dtype).element_size()
    dit_bytes = sum(math.prod(s) for s in dit_shapes.values()) * itemsize
    # Each encoder in its own precision (SemFi's CLIP is float32).
    others = sum(_nbytes(getattr(pipe, n)) for n in ("text_encoder", "image_encoder", "vae"))
    need_gb = (dit_bytes + others) / 1024**3
    free_gb = torch.cuda.mem_get_info(device)[0] / 1024**3
    if need_gb + ACTIVATION_HEADROOM_GB <= free_gb:
        return Placement("gpu", None, f"{need_gb:.1f} GB of weights fit in {free_gb:.1f} GB free")
    return Placement("offload", default_limit, f"{need_gb:.1f} GB of weights do not fit in {free_gb:.1f} GB free")


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def place(pipe: GuardedWanVideoPipeline, placement: Placement) -> None:
    """Move the pipeline's models where `placement` says, wrapping them for VRAM management when offloading.
    Every model keeps the precision it was loaded in (CLIP may be float32 beside a bf16 DiT)."""
    device = pipe.device
    if placement.mode in ("gpu", "cpu"):
        for name in _CLASS_PATHS:
            model = getattr(pipe, name)
            model.to(device=device, dtype=_model_dtype(model))
        pipe.vram_management_enabled = False
        return
    limit = placement.vram_limit_gb if torch.device(device).type == "cuda" else None
    for name, class_path in _CLASS_PATHS.items():
        model = getattr(pipe, name)
        if getattr(model, "vram_management_enabled", False):
            continue
        dtype = _model_dtype(model)
        vram_config = {
            "offload_dtype": dtype, "offload_device": "cpu", "onload_dtype": dtype, "onload_device": "cpu",
            "preparing_dtype": dtype, "preparing_device": device, "computation_dtype": dtype,
            "computation_device": device,
        }  # fmt: skip
        model.to("cpu")
        module_map = ModelPool().fetch_module_map(class_path, vram_config)
        assert class_path in VRAM_MANAGEMENT_MODULE_MAPS
        setattr(pipe, name, enable_vram_management(model, module_map, vram_config=vram_config, vram_limit=limit))
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    pipe.vram_management_enabled = True
