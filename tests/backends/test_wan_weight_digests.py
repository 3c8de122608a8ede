"""The weights are in a job's key, its step checkpoints' fingerprint and its record by content: a SemFi
checkpoint or DiT shard replaced by another file of the same size is another set of weights. Each file is
hashed once per version on this machine (a cache in the user's cache folder), never for a run of another
backend nor for a no-op resume answered by the finished stamp."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace

import pytest
import torch
from conftest import keyframes

from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends._wan import engine
from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.run import identity


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_size_other_weights(ckpt, into):
    """Another SemFi checkpoint of exactly the same size (the same keys and shapes, other values)."""
    sd = torch.load(ckpt, weights_only=True)
    torch.save({k: v * 3.0 for k, v in sd.items()}, into)


def _manifest(tmp_path):
    start, end = keyframes(40, 24, seed=5)
    write_png(tmp_path / "a.png", start)
    write_png(tmp_path / "b.png", end)
    row = {"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "mode": "insert", "gap_frames": 3,
           "seed": 4, "prompt": "a ball", "steps": 2}  # fmt: skip
    return write_manifest([row], tmp_path / "pairs.parquet")


def test_a_file_is_hashed_once_per_version(tmp_path, capsys, monkeypatch, weight_digest_cache):
    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 100)
    assert identity.content_digest(path) == _sha256(path)
    assert f"hashing {path}" in capsys.readouterr().err
    cache = json.loads((weight_digest_cache / identity.CONTENT_DIGESTS_NAME).read_text())
    assert cache[str(path)]["sha256"] == _sha256(path)
    # Another process (no memory of it) takes the digest from the cache, without reading the file.
    monkeypatch.setattr(identity, "_known_digests", {})
    monkeypatch.setattr(identity.hashlib, "file_digest", lambda *a: pytest.fail("hashed again"))
    assert identity.content_digest(path) == _sha256(path)
    assert "hashing" not in capsys.readouterr().err
    monkeypatch.undo()
    path.write_bytes(b"b" * 100)  # the same size, other bytes: another version
    assert identity.content_digest(path) == _sha256(path)
    assert identity.content_digest(tmp_path / "absent") is None


def test_a_same_size_checkpoint_or_dit_shard_is_another_key(tiny_semfi, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_semfi.models_dir, models)
    ckpt = tmp_path / "semfi.ckpt"
    shutil.copy(tiny_semfi.ckpt, ckpt)
    semfi = backend_class("semfi")
    options = BackendOptions(models_dir=models, semfi_ckpt=ckpt)
    before = semfi.key_params(options)
    assert before["weights"]["semfi.ckpt"] == _sha256(ckpt)
    _same_size_other_weights(tiny_semfi.ckpt, ckpt)
    after_ckpt = semfi.key_params(options)
    assert after_ckpt != before and after_ckpt["weights"]["semfi.ckpt"] == _sha256(ckpt)
    shard = semfi.model_files(options).dit[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1  # one bit of a weight
    shard.write_bytes(bytes(data))
    assert semfi.key_params(options)["weights"][shard.name] == _sha256(shard) != after_ckpt["weights"][shard.name]


def test_a_same_size_checkpoint_swap_never_leaves_stale_frames_done(tiny_semfi, tmp_path, capsys):
    ckpt = tmp_path / "semfi.ckpt"
    shutil.copy(tiny_semfi.ckpt, ckpt)
    manifest = _manifest(tmp_path)
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), "--backend", "semfi", "--device", "cpu", "--quiet",
            "--models-dir", str(tiny_semfi.models_dir), "--semfi-ckpt", str(ckpt)]  # fmt: skip
    assert main(args) == 0
    record = json.loads((out / "jobs" / "p" / "record.json").read_text())
    assert record["notes"]["weights"]["semfi.ckpt"] == _sha256(ckpt)  # which weights made the frames
    first_key, first_ckpt = record["key"], record["notes"]["weights"]["semfi.ckpt"]

    _same_size_other_weights(tiny_semfi.ckpt, ckpt)
    capsys.readouterr()
    assert main(args) == 2  # the root's frames were made with other weights: refused, as other settings are
    # The refusal names the file whose weights differ, not both settings whole (every file's digest).
    said = capsys.readouterr().err
    assert f'settings of backend semfi: weights.semfi.ckpt: "{first_ckpt[:36]}...' in said, said
    assert "dit" not in said.split("settings of backend semfi:")[1].split("\n")[0], said
    fresh = tmp_path / "fresh"
    assert main([*args[:3], str(fresh), *args[4:]]) == 0
    record = json.loads((fresh / "jobs" / "p" / "record.json").read_text())
    assert record["key"] != first_key and record["notes"]["weights"]["semfi.ckpt"] == _sha256(ckpt)


def test_no_hashing_for_other_backends_nor_for_a_finished_run(tiny_semfi, tmp_path, monkeypatch):
    from semfi_batch.run import finished

    manifest = _manifest(tmp_path)
    files = ["--models-dir", str(tiny_semfi.models_dir), "--semfi-ckpt", str(tiny_semfi.ckpt)]
    flow = ["run", str(manifest), "--out", str(tmp_path / "flow"), "--backend", "flow", "--quiet", *files]
    semfi = ["run", str(manifest), "--out", str(tmp_path / "semfi"), "--backend", "semfi", "--device", "cpu",
             "--quiet", *files]  # fmt: skip
    assert main(semfi) == 0
    monkeypatch.setattr(engine, "content_digest", lambda path: pytest.fail(f"hashed {path}"))
    assert main(flow) == 0
    assert finished.answer(semfi) == 0


def test_a_step_checkpoint_made_with_other_weights_is_not_resumed(tiny_semfi, tmp_path):
    ckpt = tmp_path / "semfi.ckpt"
    shutil.copy(tiny_semfi.ckpt, ckpt)
    options = BackendOptions(device="cpu", models_dir=tiny_semfi.models_dir, semfi_ckpt=ckpt, ckpt_every=1)
    start, end = keyframes(32, 32, seed=3)
    request = InterpolationRequest(pair_id="r", start=start, end=end, gap_frames=3, seed=5, steps=2, cfg_scale=1.0)
    request = replace(request, work_dir=tmp_path / "work")
    old = backend_class("semfi")(options)
    try:
        list(old.interpolate(request))  # leaves its last step checkpoint in the work folder
        list(old.interpolate(request))
        assert old.notes.values["resumed_from_step"] == 2  # the same weights take it up
    finally:
        old.close()
    _same_size_other_weights(tiny_semfi.ckpt, ckpt)
    new = backend_class("semfi")(options)
    try:
        list(new.interpolate(request))
        assert new.notes.values["resumed_from_step"] == 0
    finally:
        new.close()
