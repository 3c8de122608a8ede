"""A Mixture-of-LoRA checkpoint is taken whole or refused: it must cover every layer SemFi adapts in the DiT,
use every key it holds, and hold finite values; the refusal names the file and what is wrong."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import mol_state_dict
from safetensors.torch import save_file

from semfi_batch.backends._wan.mol import adapted_layers, load_mixture_lora
from semfi_batch.errors import BackendUnavailable


def _saved(sd: dict, path):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


def test_the_adapted_layers_are_every_blocks_attention_and_ffn(semfi_backend):
    layers = adapted_layers(semfi_backend.pipe.dit)
    assert len(layers) == 2 * 10  # 2 blocks x (q, k, v, o of both attentions + the FFN's 2 linears)
    assert "blocks.1.cross_attn.o" in layers and "blocks.0.ffn.2" in layers
    assert not any("k_img" in name or "v_img" in name for name in layers)


@pytest.mark.parametrize(
    ("name", "keep", "shown"),
    [
        ("one_block", lambda k: k.startswith("blocks.0."), r"10 of 20 layers .*'blocks\.1\.self_attn\.q'"),
        ("no_ffn", lambda k: "ffn" not in k, r"4 of 20 layers .*'blocks\.0\.ffn\.0'"),
        ("one_layer", lambda k: k.startswith("blocks.0.self_attn.lora_q."), r"19 of 20 layers"),
    ],
)
def test_a_checkpoint_that_misses_layers_is_refused(semfi_backend, tmp_path, name, keep, shown):
    path = _saved({k: v for k, v in mol_state_dict().items() if keep(k)}, tmp_path / f"{name}.ckpt")
    with pytest.raises(BackendUnavailable, match=rf"{re.escape(str(path))} does not cover every layer.*{shown}"):
        load_mixture_lora(path, semfi_backend.pipe.dit)


def test_a_checkpoint_with_unused_keys_is_refused(semfi_backend, tmp_path):
    # Another naming of the attention keys (448 of 560 keys), as a PEFT-style export would have.
    renamed = {
        re.sub(r"\.(self_attn|cross_attn)\.lora_([qkvo])\.", r".\1.\2.lora_", k): v for k, v in mol_state_dict().items()
    }
    path = _saved(renamed, tmp_path / "renamed.ckpt")
    with pytest.raises(BackendUnavailable, match=r"renamed\.ckpt: 448 of 560 keys are not used .*'blocks\.0\."):
        load_mixture_lora(path, semfi_backend.pipe.dit)
    path = _saved({**mol_state_dict(), "lora_unet_down.weight": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    with pytest.raises(BackendUnavailable, match=r"foreign\.ckpt: 1 of 561 keys are not used .*'lora_unet_down"):
        load_mixture_lora(path, semfi_backend.pipe.dit)


def test_a_checkpoint_with_non_finite_values_is_refused(semfi_backend, tmp_path):
    sd = mol_state_dict()
    sd["blocks.1.lora_ffn_0.3.lora_B.bias"][2] = float("nan")
    path = _saved(sd, tmp_path / "nan.ckpt")
    with pytest.raises(BackendUnavailable, match=r"nan\.ckpt: 1 tensors .*non-finite.*'blocks\.1\.lora_ffn_0\.3"):
        load_mixture_lora(path, semfi_backend.pipe.dit)


@pytest.mark.parametrize(
    ("name", "wrap"),
    [
        ("plain.ckpt", lambda sd: sd),
        ("nested.ckpt", lambda sd: {"state_dict": sd}),
        ("prefixed.ckpt", lambda sd: {f"dit.{k}": v for k, v in sd.items()}),
        ("bf16.safetensors", lambda sd: {k: v.to(torch.bfloat16) for k, v in sd.items()}),
    ],
)
def test_complete_checkpoints_load(semfi_backend, tmp_path, name, wrap):
    mol = load_mixture_lora(_saved(wrap(mol_state_dict()), tmp_path / name), semfi_backend.pipe.dit)
    assert len(mol.layers) == 20 and mol.rank == 16 and not mol.base_overrides
