"""`--backend auto` and rows across hard cuts: which backend runs each row, what the record says, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from semfi_batch.backends import BackendOptions
from semfi_batch.backends import routing as routing_module
from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest, write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.run.job import JobPlanner
from tests.conftest import REPO

WEIGHTS = REPO / "models" / "rife" / "flownet.pkl"


@pytest.fixture
def weights() -> Path:
    if not WEIGHTS.is_file():
        reason = "RIFE weights not installed: python pipelines/install_rife_weights.py (part of make install)"
        if os.environ.get("SEMFI_REQUIRE_RIFE"):
            raise RuntimeError(reason)
        pytest.skip(reason)
    return WEIGHTS


def _square(x: int, width: int = 96, height: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([(xx * 255 // width), (yy * 255 // height), np.full_like(xx, 90)], -1).astype(np.uint8)
    frame[20:36, x : x + 16] = (250, 240, 20)
    return frame


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    paths = {}
    for name, x in (("a", 10), ("b", 30), ("c", 60)):
        paths[name] = tmp_path / f"{name}.png"
        write_png(paths[name], _square(x))
    rng = np.random.default_rng(0)
    paths["other_shot"] = tmp_path / "other_shot.png"
    write_png(paths["other_shot"], rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    return paths


def _rows(keys, *extra_rows):
    rows = [
        {"pair_id": "small", "start_image": str(keys["a"]), "end_image": str(keys["b"]), "gap_frames": 2,
         "reason": "freeze", "backend": None},
        {"pair_id": "own", "start_image": str(keys["b"]), "end_image": str(keys["c"]), "gap_frames": 1,
         "reason": "freeze", "backend": "blend"},
    ]  # fmt: skip
    return rows + list(extra_rows)


def test_auto_runs_rife_and_records_actual_and_requested_backend(tmp_path, keys, weights):
    manifest = write_manifest(_rows(keys), tmp_path / "m.parquet")
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), "--backend", "auto", "--rife-model", str(weights), "--quiet"]
    assert main([*args, "--no-preview"]) == 0
    metrics = {m["pair_id"]: m for m in pq.read_table(out / "metrics.parquet").to_pylist()}
    assert (metrics["small"]["backend"], metrics["small"]["requested_backend"]) == ("rife", "auto")
    assert (metrics["own"]["backend"], metrics["own"]["requested_backend"]) == ("blend", "blend")
    record = json.loads((out / "jobs/small/record.json").read_text())
    assert record["backend"] == "rife" and record["requested_backend"] == "auto"
    assert len(list((out / "jobs/small/frames").glob("*.png"))) == 2


def test_auto_without_rife_weights_runs_flow_and_the_key_follows_the_backend(tmp_path, keys, weights):
    manifest = load_manifest(write_manifest(_rows(keys), tmp_path / "m.parquet"))
    with_rife = JobPlanner("auto", BackendOptions(extra={"rife_model": str(weights)})).plan(manifest.pairs[0])
    without = JobPlanner("auto", BackendOptions(extra={"rife_model": str(tmp_path / "no.pkl")})).plan(manifest.pairs[0])
    assert (with_rife.backend, without.backend) == ("rife", "flow")
    assert with_rife.key != without.key and without.requested_backend == "auto"


def _cut_row(keys, backend=None):
    return {"pair_id": "across_cut", "start_image": str(keys["c"]), "end_image": str(keys["other_shot"]),
            "gap_frames": 3, "reason": "cut", "backend": backend}  # fmt: skip


@pytest.mark.parametrize("backend", ["flow", "blend", "minterpolate", "rife", "auto"])
def test_cut_rows_are_refused_by_non_generative_backends(tmp_path, keys, weights, backend, capsys):
    manifest = write_manifest(_rows(keys, _cut_row(keys)), tmp_path / "m.parquet")
    out = tmp_path / "out"
    code = main(["run", str(manifest), "--out", str(out), "--backend", backend, "--rife-model", str(weights), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "across_cut" in lines[0] and "small" not in lines[0]
    assert "semfi" in lines[0] and "wan-flf2v" in lines[0] and "--allow-morph" in lines[0]
    assert not out.exists()  # refused before anything was written


def test_allow_morph_runs_cut_rows_and_rife_morphs_only_when_allowed(tmp_path, keys, weights):
    manifest = write_manifest([_cut_row(keys, "rife")], tmp_path / "m.parquet")
    out = tmp_path / "out"
    base = ["run", str(manifest), "--out", str(out), "--rife-model", str(weights), "-q", "--no-preview"]
    assert main([*base, "--allow-morph"]) == 0
    record = json.loads((out / "jobs/across_cut/record.json").read_text())
    assert record["status"] == "done" and record["backend"] == "rife"


def test_rife_fails_a_job_whose_keyframes_are_different_shots(tmp_path, keys, weights):
    row = {**_cut_row(keys, "rife"), "reason": "freeze"}  # not marked as a cut, but the content says so
    manifest = write_manifest([row], tmp_path / "m.parquet")
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), "--rife-model", str(weights), "-q", "--no-preview"]
    assert main(args) == 1
    record = json.loads((out / "jobs/across_cut/record.json").read_text())
    assert record["status"] == "failed" and "keyframes belong to different shots" in record["error"]
    assert main([*args, "--allow-morph", "--retry-failed"]) == 0  # the failed job, retried, morphs
    assert json.loads((out / "jobs/across_cut/record.json").read_text())["status"] == "done"


def test_auto_sends_cuts_and_long_gaps_to_semfi_when_it_can_run(tmp_path, keys, weights, monkeypatch):
    from semfi_batch.backends._wan.layout import I2V_14B_720P
    from tests.backends.conftest import write_tiny_wan

    models = tmp_path / "models"
    write_tiny_wan(models, I2V_14B_720P)
    ckpt = tmp_path / "semfi.ckpt"
    ckpt.write_bytes(b"present")  # availability looks for the file; it is not loaded here
    # The one thing this machine lacks: a CUDA device (routing asks torch; everything else is real).
    monkeypatch.setattr(routing_module, "_cuda_available", lambda: True)
    long_gap = {"pair_id": "long", "start_image": str(keys["a"]), "end_image": str(keys["c"]), "gap_frames": 12,
                "reason": "freeze", "backend": None}  # fmt: skip
    manifest = load_manifest(write_manifest(_rows(keys, _cut_row(keys), long_gap), tmp_path / "m.parquet"))
    options = BackendOptions(models_dir=models, semfi_ckpt=ckpt, extra={"rife_model": str(weights)})
    chosen = {p.pair_id: JobPlanner("auto", options).plan(p).backend for p in manifest.pairs}
    assert chosen == {"small": "rife", "own": "blend", "across_cut": "semfi", "long": "semfi"}
    raised = BackendOptions(models_dir=models, semfi_ckpt=ckpt, extra={"rife_model": str(weights), "semantic_gap": 13})
    assert JobPlanner("auto", raised).plan(manifest.pairs[3]).backend == "rife"
    monkeypatch.setattr(routing_module, "_cuda_available", lambda: False)
    assert JobPlanner("auto", options).plan(manifest.pairs[3]).backend == "rife"


def test_installed_weights_are_found_from_any_folder(weights, tmp_path, monkeypatch):
    # The default weights and models folder were relative to the current directory: from another folder rife
    # was "not found" and `auto` took flow for every row, exit 0.
    from semfi_batch.backends import backend_class

    monkeypatch.chdir(tmp_path)
    ok, why = backend_class("rife").availability(BackendOptions())
    assert ok, why
    assert BackendOptions().models_dir == REPO / "models"
