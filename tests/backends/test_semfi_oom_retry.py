"""The one retry after a CUDA out-of-memory error re-places the models under VRAM management, which replaces
the DiT's linear layers with wrappers: the Mixture-of-LoRA must be on the new layers for the retried clip and
every later one. Simulated on the CPU: the first denoise raises OutOfMemoryError."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from conftest import keyframes

from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends._wan import loading, sampling


def _request() -> InterpolationRequest:
    start, end = keyframes(40, 24, seed=2)
    return InterpolationRequest(
        pair_id="x", start=start, end=end, gap_frames=3, seed=7, prompt="a ball", steps=2, cfg_scale=1.0
    )


def _as_if_on_a_gpu(backend, monkeypatch) -> None:
    """A GPU-resident worker whose next denoise runs out of memory once."""
    backend.placement = loading.Placement("gpu")
    cuda = types.SimpleNamespace(
        OutOfMemoryError=torch.cuda.OutOfMemoryError,
        empty_cache=lambda: None,
        is_available=lambda: False,
        get_device_properties=lambda device: types.SimpleNamespace(total_memory=80 * 2**30),
    )
    monkeypatch.setattr(backend, "_torch", types.SimpleNamespace(cuda=cuda))
    real, calls = sampling.denoise, []

    def out_of_memory_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "denoise", out_of_memory_once)


@pytest.mark.parametrize("mol", ["branches", "fold"])
def test_the_lora_stays_applied_after_an_out_of_memory_retry(tiny_semfi, monkeypatch, mol):
    options = BackendOptions(
        device="cpu", models_dir=tiny_semfi.models_dir, semfi_ckpt=tiny_semfi.ckpt, extra={"mol": mol}
    )
    backend = backend_class("semfi")(options)
    try:
        request = _request()
        with_lora = np.stack(list(backend.interpolate(request)))
        backend.folder.restore()
        bare = np.stack(list(_bare_frames(backend, request, monkeypatch)))
        assert not np.array_equal(with_lora, bare)

        _as_if_on_a_gpu(backend, monkeypatch)
        retried = np.stack(list(backend.interpolate(request)))
        notes = backend.notes.values
        assert notes["oom_retry"] is True and notes["memory"] == "offload"
        assert notes["mol_branch"] == 1 and notes["mol"] == mol
        assert backend.placement.mode == "offload"
        np.testing.assert_array_equal(retried, with_lora)
        # The next job of the same bucket (no switch) still runs with the LoRA on the wrapped layers.
        np.testing.assert_array_equal(np.stack(list(backend.interpolate(request))), with_lora)
    finally:
        backend.close()


def _bare_frames(backend, request, monkeypatch):
    """The frames of the DiT without its LoRA (for comparison)."""
    with monkeypatch.context() as patch:
        patch.setattr(backend.folder, "apply", lambda branch: 0.0)
        return list(backend.interpolate(request))
