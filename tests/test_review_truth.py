"""Review shows what a row and its job are now: pictures cached by what they show (a job's new frames under
its old key, a row's new range), and a regeneration's settings kept for the row they were made for."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
from PIL import Image, ImageSequence

from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest, write_manifest
from semfi_batch.review.cards import RunReview
from semfi_batch.review.decisions import decide, regeneration_overrides
from semfi_batch.run.ledger import check_job_folder, outputs_digest
from tests.conftest import frame_number
from tests.review_run import ROWS, make_run


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")).copy() for f in ImageSequence.Iterator(im)]


def test_a_jobs_new_frames_under_its_old_key_get_a_new_preview(tmp_path):
    run_dir = make_run(tmp_path)
    job = run_dir / "jobs" / "a_flash"
    before = gif_frames(RunReview(run_dir).preview("a_flash"))
    # What `run --force` of a backend that does not repeat itself leaves: the same key, other frames.
    record = json.loads((job / "record.json").read_text())
    digest = outputs_digest(record)
    for path in sorted((job / "frames").glob("*.png")):
        with Image.open(path) as im:
            Image.fromarray(255 - np.asarray(im)).save(path)
        for name, entry in record["outputs"].items():
            if name.endswith(path.name) and isinstance(entry, dict):
                entry.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size)
    (job / "record.json").write_text(json.dumps(record))
    assert check_job_folder(job)[0] is not None and outputs_digest(record) != digest
    after = gif_frames(RunReview(run_dir).preview("a_flash"))
    assert len(after) == len(before) and not all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_originals_of_a_job_not_run_follow_its_rows_range(tmp_path):
    run_dir = make_run(tmp_path)
    shutil.rmtree(run_dir / "jobs" / "b_black")  # not run yet (as in another shard)
    with Image.open(RunReview(run_dir).original_frame("b_black", 1)) as im:
        assert frame_number(np.asarray(im.convert("RGB"))) == 27
    moved = [{"source": "clip.mp4", **row} for row in ROWS]
    moved[1] = {**moved[1], "start_frame": 4, "end_frame": 8}
    write_manifest(moved, run_dir / "manifest.parquet")  # the next run's manifest, b_black renumbered
    with Image.open(RunReview(run_dir).original_frame("b_black", 1)) as im:
        assert frame_number(np.asarray(im.convert("RGB"))) == 5


def test_a_regeneration_stays_with_the_row_it_was_made_for(tmp_path, capsys):
    run_dir = make_run(tmp_path)
    decide(run_dir, ["a_flash"], "regenerate", backend="flow")
    assert regeneration_overrides(run_dir)["a_flash"][1] == "flow"
    rows = [{"source": "clip.mp4", **row} for row in ROWS]
    renumbered = [{**rows[0], "start_frame": 30, "end_frame": 34}, *rows[1:]]
    # Once the run folder holds the changed row (splice's keys, the review's listing): dropped, and said so.
    write_manifest(renumbered, run_dir / "manifest.parquet")
    assert "a_flash" not in regeneration_overrides(run_dir)
    (card,) = [c for c in RunReview(run_dir).cards() if c.pair_id == "a_flash"]
    assert card.next_backend is None and "made for replace clip.mp4 12-16" in card.regeneration_dropped
    # What `run` plans with: the rows it is given (its manifest), before it copies them into the run folder.
    manifest = load_manifest(write_manifest(renumbered, tmp_path / "m2.parquet"))
    assert "a_flash" not in regeneration_overrides(run_dir, manifest.pairs)
    assert regeneration_overrides(run_dir, load_manifest(tmp_path / "m.parquet").pairs)["a_flash"][1] == "flow"
    assert main(["review", str(run_dir), "--list"]) == 0
    assert "dropped" in capsys.readouterr().out


def test_run_does_not_carry_a_regeneration_onto_a_renumbered_row(tmp_path):
    # `run` planned with the overrides of the run folder's old manifest copy (the new one is copied in after
    # planning): a row renumbered by detect ran with another row's regeneration backend.
    from tests.conftest import numbered_clip

    clip = numbered_clip(tmp_path / "clip.mp4", 30)
    row = {"pair_id": "cut_0001", "source": str(clip), "start_frame": 4, "end_frame": 8, "mode": "replace"}
    manifest = write_manifest([row], tmp_path / "m.parquet")
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview"]
    assert main(args) == 0
    decide(out, ["cut_0001"], "regenerate", backend="flow")
    write_manifest([{**row, "start_frame": 20, "end_frame": 24}], manifest)
    assert main(args) == 0
    record = json.loads((out / "jobs" / "cut_0001" / "record.json").read_text())
    assert (record["start_frame"], record["backend"]) == (20, "blend")
