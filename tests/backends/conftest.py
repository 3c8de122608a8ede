"""Tiny random Wan2.1 models with the real architectures and key names, written in the real file formats
(sharded safetensors for the DiT, .pth for the UMT5 encoder, CLIP and VAE, a tokenizer folder saved with
save_pretrained, a pickled .ckpt for the SemFi Mixture-of-LoRA), so the backends load them through the
same path as the 14B release."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.backends._wan.layout import FLF2V_14B_720P, I2V_14B_720P, WanLayout

# Wan2.1 architecture at toy widths: 2 heads of 128, 2 blocks; text width 32; the CLIP tower keeps its
# 1280 width and 257 tokens (the DiT's image projection and cross-attention depend on them) but has one
# layer, which Wan drops anyway (it reads the penultimate layer's features).
TINY_DIT = dict(
    dim=256, in_dim=36, ffn_dim=512, out_dim=16, text_dim=32, freq_dim=256, eps=1e-6,
    patch_size=(1, 2, 2), num_heads=2, num_layers=2, has_image_input=True,
)  # fmt: skip
TINY_TEXT = dict(vocab=128, dim=32, dim_attn=32, dim_ffn=64, num_heads=2, num_layers=1, num_buckets=8)
TINY_CLIP = dict(vision_layers=1, vision_mlp_ratio=0.25)
TINY_VAE_DIM = 8
MOL_RANK = 16


@dataclass(frozen=True)
class TinyWan:
    models_dir: Path
    ckpt: Path | None
    layout: WanLayout


def _save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in chars] + [("\u2581" + c, -2.5) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    fast = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0)
    fast.save_pretrained(str(folder))


def write_dit_shards(state_dict: dict, folder: Path, shards: int = 7) -> list[Path]:
    """Write a DiT state dict as `shards` safetensors files plus the index, as the release does."""
    from safetensors.torch import save_file

    keys = sorted(state_dict)
    paths, weight_map = [], {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state_dict[k].contiguous() for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
        paths.append(folder / name)
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return paths


def write_tiny_wan(models_dir: Path, layout: WanLayout, seed: int = 0) -> Path:
    """Write every file of `layout` under `models_dir` at toy size."""
    import torch
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.models.wan_video_image_encoder import clip_xlm_roberta_vit_h_14
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder
    from diffsynth.models.wan_video_vae import VideoVAE_

    files = layout.files(models_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dit = WanModel(**TINY_DIT, has_image_pos_emb=layout is FLF2V_14B_720P)
    if layout is FLF2V_14B_720P:
        torch.nn.init.normal_(dit.img_emb.emb_pos, std=0.02)
    write_dit_shards(dit.state_dict(), files.root, layout.dit_shards)
    text = WanTextEncoder(**TINY_TEXT)
    torch.save({k: v.to(torch.bfloat16) for k, v in text.state_dict().items()}, files.text_encoder)
    clip = clip_xlm_roberta_vit_h_14(pretrained=False, return_transforms=False, **TINY_CLIP)
    clip_sd = dict(clip.state_dict())
    clip_sd["textual.token_embedding.weight"] = torch.zeros(4, 8)  # the release file carries the text tower too
    torch.save(clip_sd, files.image_encoder)
    torch.save(VideoVAE_(dim=TINY_VAE_DIM, z_dim=16).state_dict(), files.vae)
    _save_tokenizer(files.tokenizer)
    return models_dir


def mol_state_dict(dit_config: dict = TINY_DIT, seed: int = 1, std: float = 0.05) -> dict:
    """Random Mixture-of-LoRA weights with SemFi's key names: 7 branches of rank 16 on every adapted layer."""
    import torch

    g = torch.Generator().manual_seed(seed)
    dim, ffn = dit_config["dim"], dit_config["ffn_dim"]
    layers = []
    for i in range(dit_config["num_layers"]):
        for attn in ("self_attn", "cross_attn"):
            layers += [(f"blocks.{i}.{attn}.lora_{p}", dim, dim) for p in "qkvo"]
        layers += [(f"blocks.{i}.lora_ffn_0", dim, ffn), (f"blocks.{i}.lora_ffn_2", ffn, dim)]
    sd = {}
    for prefix, fan_in, fan_out in layers:
        for j in range(7):
            sd[f"{prefix}.{j}.lora_A.weight"] = torch.randn(MOL_RANK, fan_in, generator=g) * std
            sd[f"{prefix}.{j}.lora_A.bias"] = torch.randn(MOL_RANK, generator=g) * std
            sd[f"{prefix}.{j}.lora_B.weight"] = torch.randn(fan_out, MOL_RANK, generator=g) * std
            sd[f"{prefix}.{j}.lora_B.bias"] = torch.randn(fan_out, generator=g) * std
    return sd


@pytest.fixture(scope="session")
def tiny_semfi(tmp_path_factory) -> TinyWan:
    """A models folder with a tiny Wan2.1-I2V-14B-720P and a tiny SemFi checkpoint."""
    import torch

    root = tmp_path_factory.mktemp("semfi-models")
    write_tiny_wan(root / "models", I2V_14B_720P)
    ckpt = root / "ckpts" / "semfi.ckpt"
    ckpt.parent.mkdir()
    torch.save(mol_state_dict(), ckpt)
    return TinyWan(models_dir=root / "models", ckpt=ckpt, layout=I2V_14B_720P)


@pytest.fixture(scope="session")
def tiny_flf2v(tmp_path_factory) -> TinyWan:
    """A models folder with a tiny Wan2.1-FLF2V-14B-720P."""
    root = tmp_path_factory.mktemp("flf2v-models")
    write_tiny_wan(root / "models", FLF2V_14B_720P, seed=2)
    return TinyWan(models_dir=root / "models", ckpt=None, layout=FLF2V_14B_720P)


def keyframes(width: int = 40, height: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two smooth, different RGB keyframes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(1, width - 1), y * 255 / max(1, height - 1), (x + y) % 64 * 4], -1)
    start = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    end = np.clip(base[:, ::-1] + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    return start, end


@pytest.fixture(scope="session")
def semfi_backend(tiny_semfi):
    """One SemfiBackend on the tiny models, loaded once for the session (as a worker would)."""
    from semfi_batch.backends import BackendOptions, backend_class

    options = BackendOptions(device="cpu", models_dir=tiny_semfi.models_dir, semfi_ckpt=tiny_semfi.ckpt)
    backend = backend_class("semfi")(options)
    yield backend
    backend.close()


@pytest.fixture(scope="session", autouse=True)
def weight_digest_cache(tmp_path_factory):
    """The weights' content digests are kept in a cache of these tests' own, not in the user's."""
    import os

    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield Path(os.environ["XDG_CACHE_HOME"]) / "semfi-batch"
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Torch on one thread in these tests: on a shared 2-core machine, OpenMP barriers between two threads
    that the scheduler keeps preempting make tiny models 10x slower and their timing erratic."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
