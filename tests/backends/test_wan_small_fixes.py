"""Guidance as one batch with diffsynth's shared inputs (PIL images among them), and a truncated DiT shard
named in the error."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from semfi_batch.backends._wan import loading, sampling
from semfi_batch.errors import BackendUnavailable


def test_batched_guidance_doubles_tensors_and_passes_other_inputs_as_they_are():
    image = Image.new("RGB", (4, 4))
    cond = sampling.Conditioning(
        shared={"y": torch.ones(1, 2), "input_image": image, "tiled": False},
        posi={"context": torch.full((1, 3), 2.0)},
        nega={"context": torch.zeros(1, 3)},
        latent_shape=(1, 2),
    )
    seen = {}

    def model_fn(latents, timestep, y, input_image, tiled, context):
        seen.update(y=y.shape, image=input_image, latents=latents.shape)
        return context[:, :2] + y

    sequential = sampling.make_guided(model_fn, cond, 5.0)(torch.zeros(1, 2), torch.tensor([1.0]))
    batched = sampling.make_guided(model_fn, cond, 5.0, batch_cfg=True)(torch.zeros(1, 2), torch.tensor([1.0]))
    assert seen["y"] == (2, 2) and seen["image"] is image
    torch.testing.assert_close(batched, sequential)


def test_a_truncated_dit_shard_is_named(tiny_flf2v, tmp_path):
    files = tiny_flf2v.layout.files(tiny_flf2v.models_dir)
    broken = tmp_path / files.dit[2].name
    broken.write_bytes(files.dit[2].read_bytes()[:-100])
    paths = [*files.dit[:2], broken, *files.dit[3:]]
    with pytest.raises(BackendUnavailable, match=rf"cannot read DiT shard {broken}"):
        loading.safetensors_shapes(paths)
