"""The `semfi` and `wan-flf2v` backends on tiny random models of the real architecture, through their
Python interface: frame count and size, determinism, frame math, size policy, missing files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import keyframes

from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends._wan.geometry import plan_geometry
from semfi_batch.errors import BackendUnavailable
from semfi_batch.plan import even_selection, mol_branch, semfi_frame_count


def _request(gap: int, seed: int = 7, work_dir=None, size=(40, 24), **kw) -> InterpolationRequest:
    start, end = keyframes(*size)
    return InterpolationRequest(
        pair_id=f"p{gap}", start=start, end=end, gap_frames=gap, seed=seed, prompt="a red ball rolls",
        steps=kw.pop("steps", 2), work_dir=work_dir, **kw,
    )  # fmt: skip


def test_semfi_frames_have_the_right_count_size_and_bucket(semfi_backend):
    for gap, bucket in ((3, 1), (6, 2)):
        frames = list(semfi_backend.interpolate(_request(gap)))
        assert len(frames) == gap
        assert all(f.shape == (24, 40, 3) and f.dtype == np.uint8 for f in frames)
        notes = semfi_backend.notes.values
        assert notes["n_generated"] == semfi_frame_count(gap)
        assert notes["mol_branch"] == bucket
        assert notes["model_size"] == "48x32"
        # Generated, not copied: the in-betweens differ from both keyframes.
        start, end = keyframes(40, 24)
        assert all(not np.array_equal(f, start) and not np.array_equal(f, end) for f in frames)


def test_semfi_is_deterministic_for_a_seed_and_varies_with_it(semfi_backend):
    a = np.stack(list(semfi_backend.interpolate(_request(2, seed=11, cfg_scale=1.0))))
    semfi_backend.folder.apply(6)  # a bucket switch in between must not change anything
    b = np.stack(list(semfi_backend.interpolate(_request(2, seed=11, cfg_scale=1.0))))
    c = np.stack(list(semfi_backend.interpolate(_request(2, seed=12, cfg_scale=1.0))))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_semfi_orders_jobs_by_bucket_and_switches_once_per_bucket(semfi_backend):
    gaps = [40, 3, 12, 2, 30, 4, 300]
    ordered = sorted(gaps, key=semfi_backend.order_key)
    assert [semfi_backend.order_key(g)[0] for g in ordered] == [1, 1, 2, 3, 4, 4, 6]  # 300: one 81-frame clip
    semfi_backend.folder.restore()
    switched = []
    for gap in (2, 3):  # both bucket 1 (5 frames)
        list(semfi_backend.interpolate(_request(gap, steps=1, cfg_scale=1.0)))
        switched.append(semfi_backend.notes.values["switched"])
    assert switched == [True, False]


@pytest.mark.parametrize("gap", range(1, 101))
def test_frame_count_rounding_and_bucket(gap):
    n = semfi_frame_count(gap)
    assert n % 4 == 1 and n >= gap + 2 and n - 4 < gap + 2  # the smallest 4k+1 that holds the gap
    picks = even_selection(n, gap)
    assert len(picks) == gap and len(set(picks)) == gap and picks == sorted(picks)
    assert picks[0] > 0 and picks[-1] < n - 1  # the keyframes themselves are never delivered
    limits = [(7, 1), (13, 2), (25, 3), (49, 4), (73, 5)]
    expected = next((b for limit, b in limits if n <= limit), 6)
    assert mol_branch(n) == expected


def test_size_policy_stretches_to_multiples_of_16_as_the_reference():
    geo = plan_geometry(40, 24)
    assert geo.model_size == (48, 32)  # rounded up, as the reference's check_resize_height_width
    start, _ = keyframes(40, 24)
    model = geo.to_model(start)
    assert model.shape == (32, 48, 3)
    # Stretched, not padded: no replicated border rows or columns at the model size.
    assert not np.array_equal(model[0], model[1]) and not np.array_equal(model[:, 0], model[:, 1])
    assert geo.from_model(model).shape == (24, 40, 3)
    assert plan_geometry(1920, 1080).model_size == (1280, 720)  # scaled to --max-area, already 16-aligned
    for w, h in ((1000, 700), (1918, 802), (720, 1280), (641, 359)):
        mw, mh = plan_geometry(w, h).model_size
        assert mw % 16 == 0 and mh % 16 == 0 and mw * mh <= 1280 * 720
        scale = min(1.0, (1280 * 720 / (w * h)) ** 0.5)
        assert abs(mw - w * scale) < 16 and abs(mh - h * scale) < 16  # the aspect changes within rounding


def test_wan_flf2v_runs_through_the_same_engine(tiny_flf2v):
    options = BackendOptions(device="cpu", models_dir=tiny_flf2v.models_dir)
    backend = backend_class("wan-flf2v")(options)
    try:
        a = list(backend.interpolate(_request(3, size=(32, 32))))
        b = list(backend.interpolate(_request(3, size=(32, 32), steps=1)))
        c = list(backend.interpolate(_request(3, size=(32, 32))))
    finally:
        backend.close()
    assert len(a) == 3 and a[0].shape == (32, 32, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_semfi_refuses_a_flf2v_dit(tiny_flf2v, tiny_semfi, tmp_path):
    # The FLF2V files laid out where SemFi looks for its I2V model.
    (tmp_path / "Wan2.1-I2V-14B-720P").symlink_to(tiny_flf2v.models_dir / "Wan2.1-FLF2V-14B-720P")
    options = BackendOptions(device="cpu", models_dir=tmp_path, semfi_ckpt=tiny_semfi.ckpt)
    with pytest.raises(BackendUnavailable, match="I2V"):
        backend_class("semfi")(options)


def test_missing_files_are_all_listed_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from semfi_batch.backends import BackendOptions, backend_class\n"
        f"opts = BackendOptions(models_dir=Path({str(tmp_path / 'models')!r}), "
        f"semfi_ckpt=Path({str(tmp_path / 'semfi.ckpt')!r}))\n"
        "ok, why = backend_class('semfi').availability(opts)\n"
        "print(ok); print(why); print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ok, why, torch_loaded = out.strip().split("\n")
    assert ok == "False" and torch_loaded == "False"
    assert f"in {tmp_path / 'models' / 'Wan2.1-I2V-14B-720P'}: " in why and f"in {tmp_path}: semfi.ckpt" in why
    names = [f"diffusion_pytorch_model-{i:05d}-of-00007.safetensors" for i in range(1, 8)]
    names += ["models_t5_umt5-xxl-enc-bf16.pth", "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
              "Wan2.1_VAE.pth", "google/umt5-xxl/tokenizer_config.json", "google/umt5-xxl/tokenizer.json"]  # fmt: skip
    assert all(name in why for name in names)
    with pytest.raises(BackendUnavailable, match="13 model files are missing"):
        backend_class("semfi")(BackendOptions(models_dir=tmp_path / "models", semfi_ckpt=tmp_path / "semfi.ckpt"))


def test_offloaded_models_take_the_lora_branches_through_vram_management_unchanged(tiny_semfi, semfi_backend):
    from diffsynth.core.vram.layers import AutoWrappedLinear

    options = BackendOptions(
        device="cpu", models_dir=tiny_semfi.models_dir, semfi_ckpt=tiny_semfi.ckpt, extra={"memory": "offload"}
    )
    offloaded = backend_class("semfi")(options)
    try:
        assert offloaded.placement.mode == "offload" and offloaded.pipe.vram_management_enabled
        assert sum(isinstance(m, AutoWrappedLinear) for m in offloaded.pipe.dit.modules()) > 20
        frames = list(offloaded.interpolate(_request(6, steps=1, cfg_scale=1.0)))
        assert offloaded.notes.values["memory"] == "offload" and offloaded.notes.values["mol_branch"] == 2
    finally:
        offloaded.close()
    reference = list(semfi_backend.interpolate(_request(6, steps=1, cfg_scale=1.0)))
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))


def test_notes_written_before_the_model_runs_stay_and_a_job_of_two_calls_adds_up(semfi_backend):
    # The engine starts a job's notes, then writes its own (an interlaced row's `fields`) before the backend
    # runs; `generate` notes the conversion of 16-bit keys; the model's notes are added, never put in their
    # place. A job made per field calls the model twice: both calls count.
    semfi_backend.notes.values = {"fields": "tt"}
    start, end = keyframes(32, 32)
    deep = InterpolationRequest("deep", start.astype(np.uint16) * 257, end.astype(np.uint16) * 257, 3, seed=1, steps=1)
    frames = list(semfi_backend.generate(deep))
    assert len(frames) == 3 and frames[0].dtype == np.uint16
    notes = semfi_backend.notes.values
    assert notes["fields"] == "tt" and notes["frames_converted"].startswith("16-bit RGB keys given to semfi")
    assert notes["n_generated"] == 5 and notes["clips"] == 1 and notes["generated_frames"] == 5
    list(semfi_backend.generate(deep))  # the other field
    notes = semfi_backend.notes.values
    assert notes["fields"] == "tt" and "frames_converted" in notes
    assert notes["clips"] == 2 and notes["generated_frames"] == 10
