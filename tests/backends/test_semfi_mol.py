"""Mixture-of-LoRA folding is exact: the folded DiT equals the unfolded per-branch forward for every bucket,
and switching buckets restores the base weights bit for bit. Checkpoint problems name the key."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import mol_state_dict
from diffsynth.pipelines.wan_video import model_fn_wan_video

from semfi_batch.backends._wan.mol import (
    MixtureLoRALinear,
    MolBranches,
    MolFolder,
    attach_unfolded,
    load_mixture_lora,
    set_unfolded_branch,
)
from semfi_batch.errors import BackendUnavailable


def _dit_inputs(dit, seed=0):
    g = torch.Generator().manual_seed(seed)
    text_dim = dit.text_embedding[0].in_features
    return dict(
        latents=torch.randn(1, 16, 3, 4, 6, generator=g),
        timestep=torch.tensor([700.0]),
        context=torch.randn(1, 12, text_dim, generator=g),
        clip_feature=torch.randn(1, 257, 1280, generator=g),
        y=torch.randn(1, 20, 3, 4, 6, generator=g),
    )


@torch.no_grad()
def test_active_branches_equal_the_seven_branch_forward_for_every_bucket(semfi_backend):
    """The default (branch outputs added, the reference's way) against the reference's all-branches layer."""
    dit, branches = semfi_backend.pipe.dit, semfi_backend.folder
    assert isinstance(branches, MolBranches)
    branches.restore()
    base_state = {k: v.clone() for k, v in dit.state_dict().items()}
    unfolded = copy.deepcopy(dit)
    attach_unfolded(unfolded, semfi_backend.mol)
    inputs = _dit_inputs(dit)
    base_out = model_fn_wan_video(dit=dit, **inputs)
    for branch in range(1, 7):
        branches.apply(branch)
        set_unfolded_branch(unfolded, branch)
        ours = model_fn_wan_video(dit=dit, **inputs)
        torch.testing.assert_close(ours, model_fn_wan_video(dit=unfolded, **inputs), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(ours, base_out, atol=1e-3)
    branches.restore()  # the weights were never touched, and without the hooks the DiT is bare again
    assert all(torch.equal(v, base_state[k]) for k, v in dit.state_dict().items())
    torch.testing.assert_close(model_fn_wan_video(dit=dit, **inputs), base_out, rtol=0, atol=0)


@torch.no_grad()
def test_folded_dit_equals_the_per_branch_forward_for_every_bucket(semfi_backend):
    semfi_backend.folder.restore()
    dit = copy.deepcopy(semfi_backend.pipe.dit)
    folder = MolFolder(dit, semfi_backend.mol)
    base_state = {k: v.clone() for k, v in dit.state_dict().items()}
    unfolded = copy.deepcopy(dit)
    attach_unfolded(unfolded, semfi_backend.mol)
    assert sum(isinstance(m, MixtureLoRALinear) for m in unfolded.modules()) == 2 * 10  # 2 blocks x 10 layers
    inputs = _dit_inputs(dit)
    base_out = model_fn_wan_video(dit=dit, **inputs)
    outs = {}
    for branch in range(1, 7):
        folder.apply(branch)
        set_unfolded_branch(unfolded, branch)
        folded = model_fn_wan_video(dit=dit, **inputs)
        reference = model_fn_wan_video(dit=unfolded, **inputs)
        torch.testing.assert_close(folded, reference, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(folded, base_out, atol=1e-3)  # the LoRA changes the output
        outs[branch] = folded
    assert not torch.allclose(outs[1], outs[6], atol=1e-3)  # and each bucket differently

    # Back and forth many times: folds are recomputed from the kept base, restore is bit-exact.
    first = {k: v.clone() for k, v in dit.state_dict().items()}  # bucket 6 folded
    for branch in [1, 6, 3, 2, 6, 5, 4, 1] * 5:
        folder.apply(branch)
    folder.apply(6)
    assert all(torch.equal(v, first[k]) for k, v in dit.state_dict().items())
    folder.restore()
    assert all(torch.equal(v, base_state[k]) for k, v in dit.state_dict().items())
    torch.testing.assert_close(model_fn_wan_video(dit=dit, **inputs), base_out, rtol=0, atol=0)


def test_checkpoint_key_with_a_wrong_shape_is_named(semfi_backend, tmp_path):
    sd = mol_state_dict()
    sd["blocks.1.cross_attn.lora_v.4.lora_B.weight"] = torch.zeros(255, 16)
    path = tmp_path / "bad.ckpt"
    torch.save(sd, path)
    with pytest.raises(BackendUnavailable, match=r"'blocks\.1\.cross_attn\.lora_v\.4\.lora_B\.weight' has shape"):
        load_mixture_lora(path, semfi_backend.pipe.dit)


def test_checkpoint_missing_a_branch_tensor_is_named(semfi_backend, tmp_path):
    sd = mol_state_dict()
    del sd["blocks.0.lora_ffn_2.3.lora_A.bias"]
    path = tmp_path / "partial.safetensors"
    from safetensors.torch import save_file

    save_file(sd, str(path))
    with pytest.raises(BackendUnavailable, match=r"'blocks\.0\.lora_ffn_2\.3\.lora_A\.bias' is missing"):
        load_mixture_lora(path, semfi_backend.pipe.dit)


def test_checkpoint_with_code_in_the_pickle_is_refused(semfi_backend, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": mol_state_dict(), "hook": copy.deepcopy}, path)
    with pytest.raises(BackendUnavailable, match="weights only"):
        load_mixture_lora(path, semfi_backend.pipe.dit)


def test_wrapped_checkpoint_with_prefix_and_base_keys_loads(semfi_backend, tmp_path):
    dit = semfi_backend.pipe.dit
    sd = {f"pipe.dit.{k}": v for k, v in mol_state_dict().items()}
    sd["head.head.bias"] = torch.full_like(dit.head.head.bias, 0.5)  # a base key, applied like load_state_dict
    sd["unrelated.step"] = torch.tensor(3)  # a scalar: metadata, not weights
    path = tmp_path / "wrapped.ckpt"
    torch.save({"state_dict": sd}, path)
    mol = load_mixture_lora(path, dit)
    assert len(mol.layers) == 20 and mol.rank == 16
    assert set(mol.base_overrides) == {"head.head.bias"}
    fresh = copy.deepcopy(dit)
    MolFolder(fresh, mol)
    assert torch.equal(fresh.head.head.bias, torch.full_like(fresh.head.head.bias, 0.5))
