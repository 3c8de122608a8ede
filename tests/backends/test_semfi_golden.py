"""The golden test: the `semfi` backend's frames against an independent plain implementation of the
reference's sampling (tests/backends/semfi_reference.py), on a tiny random model in bf16, and mutations of the
backend that the comparison must catch.

Tolerance: none. On the CPU with one thread the backend computes the same operations in the same order and
precision as the reference (bf16 DiT with the two active LoRA branches added to each layer's output, fp32 CLIP,
untiled VAE condition, the reference's sigmas, CPU noise, truncating quantisation), so its frames are
identical, bit for bit. On a GPU, kernels chosen by shape may differ between two programs, which is why
the comparison runs here, where it can be exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import MOL_RANK, TINY_CLIP, TINY_DIT, TINY_TEXT, TINY_VAE_DIM, keyframes
from PIL import Image
from semfi_reference import load_reference

from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class

GAP, STEPS, CFG, SEED = 3, 3, 5.0, 1234
WIDTH, HEIGHT = 48, 32  # multiples of 16: no resize on either side, the frames compare directly
PROMPT, NEGATIVE = "a red ball rolls", "blurry, still"


@pytest.fixture(scope="module")
def golden(tiny_semfi):
    """The reference's frames for the test pair (all N = 5 of them)."""
    assert MOL_RANK == 16
    ref = load_reference(
        tiny_semfi.models_dir, tiny_semfi.ckpt, TINY_TEXT, TINY_CLIP, TINY_VAE_DIM,
        num_heads=TINY_DIT["num_heads"], freq_dim=TINY_DIT["freq_dim"],
    )  # fmt: skip
    start, end = keyframes(WIDTH, HEIGHT, seed=9)
    frames = ref(PROMPT, NEGATIVE, Image.fromarray(start), Image.fromarray(end), HEIGHT, WIDTH, GAP + 2, STEPS, CFG,
                 SEED)  # fmt: skip
    return np.stack(frames)


@pytest.fixture(scope="module")
def bf16_backend(tiny_semfi):
    options = BackendOptions(
        device="cpu", models_dir=tiny_semfi.models_dir, semfi_ckpt=tiny_semfi.ckpt, extra={"dtype": "bfloat16"}
    )
    backend = backend_class("semfi")(options)
    yield backend
    backend.close()


def run_backend(backend) -> np.ndarray:
    start, end = keyframes(WIDTH, HEIGHT, seed=9)
    request = InterpolationRequest(
        pair_id="golden", start=start, end=end, gap_frames=GAP, seed=SEED, prompt=PROMPT,
        negative_prompt=NEGATIVE, steps=STEPS, cfg_scale=CFG,
    )  # fmt: skip
    return np.stack(list(backend.interpolate(request)))


def deviation(frames: np.ndarray, golden: np.ndarray) -> tuple[int, float]:
    """(largest, mean) absolute difference in 8-bit levels between the delivered in-betweens and the
    reference's frames 1..N-2 (the in-betweens at t = 1/4, 2/4, 3/4 of a 5-frame clip)."""
    diff = np.abs(frames.astype(np.int16) - golden[1:-1].astype(np.int16))
    return int(diff.max()), float(diff.mean())


def test_backend_frames_equal_the_reference_bit_for_bit(bf16_backend, golden):
    frames = run_backend(bf16_backend)
    notes = bf16_backend.notes.values
    assert notes["dtype"] == "bfloat16" and notes["mol"] == "branches" and notes["y_tiled"] is False
    assert notes["n_generated"] == 5 and notes["delivered_from"] == ["0[1]", "0[2]", "0[3]"]
    assert frames.shape == golden[1:-1].shape
    assert deviation(frames, golden) == (0, 0.0)
    # The reference's frames are a real result, not a degenerate one: they differ from frame to frame.
    assert len({f.tobytes() for f in golden}) == len(golden)


# --- mutations: each changes one thing the reference does; the golden comparison must catch every one ------
def _clip_concatenated(monkeypatch, backend):
    from semfi_batch.backends._wan import sampling

    def concatenated(pipe, start, end):
        encoder = pipe.image_encoder
        feats = [encoder.encode_image([px.to(torch.float32)]) for px in (start, end)]
        return torch.concat(feats, dim=1).to(pipe.torch_dtype)

    monkeypatch.setattr(sampling, "clip_context", concatenated)


def _y_tiled(monkeypatch, backend):
    from semfi_batch.backends._wan import sampling

    original = sampling.vae_condition
    # The production tiles (30x52 latents) hold a whole 48x32 frame; these split it as they split 720p.
    monkeypatch.setattr(sampling, "TILE_SIZE", (2, 4))
    monkeypatch.setattr(sampling, "TILE_STRIDE", (1, 2))
    monkeypatch.setattr(sampling, "vae_condition", lambda *a, **kw: original(*a, **{**kw, "tiled": True}))


def _shift_3(monkeypatch, backend):
    from semfi_batch.backends._wan import sampling

    monkeypatch.setattr(sampling, "SIGMA_SHIFT", 3.0)


def _q_k_lora_swapped(monkeypatch, backend):
    from semfi_batch.backends._wan.mol import MolBranches

    original = MolBranches._branch_tensors

    def swapped(self, layer, branch):
        other = {"q": "k", "k": "q"}.get(layer[-1], layer[-1]) if ".self_attn." in layer else layer[-1]
        return original(self, layer[:-1] + other, branch)

    monkeypatch.setattr(MolBranches, "_branch_tensors", swapped)
    backend.folder.restore()  # the next clip attaches its branches again, through the mutated function


def _wrong_bucket(monkeypatch, backend):
    from semfi_batch.backends import semfi

    original = semfi.mol_branch
    monkeypatch.setattr(semfi, "mol_branch", lambda n: original(n) % 6 + 1)


def _folded_into_bf16_weights(monkeypatch, backend):
    from semfi_batch.backends._wan.mol import MolFolder

    backend.folder.restore()
    monkeypatch.setattr(backend, "folder", MolFolder(backend.pipe.dit, backend.mol))


def _clip_in_bf16(monkeypatch, backend):
    from semfi_batch.backends._wan import sampling

    def bf16(pipe, start, end):
        encoder = pipe.image_encoder.to(torch.bfloat16)
        try:
            feats = [encoder.encode_image([px.to(torch.bfloat16)]) for px in (start, end)]
        finally:
            encoder.to(torch.float32)
        return (feats[0] + feats[1]).to(pipe.torch_dtype)

    monkeypatch.setattr(sampling, "clip_context", bf16)


MUTATIONS = {
    "clip_concatenated": _clip_concatenated,
    "y_tiled": _y_tiled,
    "shift_3": _shift_3,
    "q_k_lora_swapped": _q_k_lora_swapped,
    "wrong_bucket": _wrong_bucket,
    "mol_folded_into_bf16": _folded_into_bf16_weights,
    "clip_in_bf16": _clip_in_bf16,
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_golden_comparison_fails_for_a_mutated_backend(bf16_backend, golden, monkeypatch, mutation):
    MUTATIONS[mutation](monkeypatch, bf16_backend)
    try:
        frames = run_backend(bf16_backend)
    finally:
        if hasattr(bf16_backend.folder, "_base"):  # a folder: put the base weights back
            bf16_backend.folder.restore()
        monkeypatch.undo()
        bf16_backend.folder.restore()
    largest, mean = deviation(frames, golden)
    print(f"\nmutation {mutation}: largest deviation {largest} levels, mean {mean:.3f}")
    assert largest > 0, f"the golden comparison did not catch {mutation}"
