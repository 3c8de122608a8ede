"""splice and merge use a job only while it is the job of its row as the row stands now: a source replaced under
the same name, or a row whose source changed, leaves the job out with the reason."""

import json
import shutil

from semfi_batch.backends import BackendOptions
from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.run.engine import prepare_run
from semfi_batch.splice.runfolder import read_run
from tests.conftest import numbered_clip


def test_replaced_source_and_changed_row_are_left_out(tmp_path, capsys):
    clip = numbered_clip(tmp_path / "clip.mp4", 24)
    other = numbered_clip(tmp_path / "other.mp4", 24, size="96x64")
    rows = [{"pair_id": f"v{i}", "source": str(clip), "start_frame": 2 + 8 * i, "end_frame": 5 + 8 * i}
            for i in range(2)]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "v.parquet")
    # A root deep enough that merge's lines outrun the tests' 200 columns: they must not be folded inside a path.
    out = tmp_path / ("deep_" * 30) / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    assert [e.pair_id for e in read_run(out).sources[clip.resolve()]] == ["v0", "v1"]

    # v1's source changes in the manifest, and the re-run is killed before v1 runs again (only planned here).
    rows[1]["source"] = str(other)
    write_manifest(rows, manifest)
    prepare_run(manifest, out, "blend", BackendOptions(), preview=False)
    skipped = {s.pair_id: s.why for s in read_run(out).skipped}
    assert "made from" in skipped["v1"] and "other.mp4" in skipped["v1"], skipped
    assert "v0" not in skipped

    # The same content moved to another folder and the row updated: the job is still v0's, as `run` finds it
    # (its key is by content), so splice keeps it.
    moved = tmp_path / "moved" / "clip.mp4"
    moved.parent.mkdir()
    shutil.copyfile(clip, moved)
    rows[0]["source"] = str(moved)
    write_manifest(rows, manifest)
    prepare_run(manifest, out, "blend", BackendOptions(), preview=False)
    kept = read_run(out)
    assert "v0" not in {s.pair_id for s in kept.skipped}
    assert [e.pair_id for e in kept.sources[moved.resolve()]] == ["v0"]
    rows[0]["source"] = str(clip)
    write_manifest(rows, manifest)
    prepare_run(manifest, out, "blend", BackendOptions(), preview=False)

    # The source file replaced under the same name: v0 was made from the old one.
    shutil.copyfile(numbered_clip(tmp_path / "new.mp4", 30), clip)
    skipped = {s.pair_id: s.why for s in read_run(out).skipped}
    assert "clip.mp4 was replaced or changed" in skipped["v0"], skipped
    capsys.readouterr()
    assert main(["merge", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "2 stale" in printed and "left out v0" in printed and "was replaced or changed" in printed
    assert f"{out}/jobs/v0: stale job" in printed  # the whole path on one line


def test_jobs_made_by_an_older_engine_are_made_again_and_not_spliced(tmp_path, capsys, monkeypatch):
    """An upgrade that changes the frames (the colour conversion, VFR times) makes finished jobs stale: `run` makes
    them again, saying why, and until then splice leaves them out with the reason, not spliced as current."""
    from semfi_batch.run import attempt, engine, job, stale

    clip = numbered_clip(tmp_path / "clip.mp4", 16)
    rows = [{"pair_id": f"v{i}", "source": str(clip), "start_frame": 2 + 6 * i, "end_frame": 5 + 6 * i}
            for i in range(2)]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "v.parquet")
    out = tmp_path / "out"
    current = job.ENGINE_VERSION
    with monkeypatch.context() as older:
        for module in (attempt, engine, job, stale):
            older.setattr(module, "ENGINE_VERSION", current - 1)
        assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview"]) == 0
        assert not read_run(out).skipped
    skipped = {s.pair_id: s.why for s in read_run(out).skipped}
    assert set(skipped) == {"v0", "v1"}
    assert all(f"made by an older version of semfi-batch (engine {current - 1}" in why for why in skipped.values())

    capsys.readouterr()
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    assert "made by another version of semfi-batch" in capsys.readouterr().err
    assert not read_run(out).skipped
    records = [json.loads((e.job_dir / "record.json").read_text()) for e in read_run(out).sources[clip.resolve()]]
    assert [r["engine_version"] for r in records] == [current, current]


def test_merge_finds_a_relative_source_in_a_folder_as_splice_does(tmp_path, monkeypatch):
    # merge looked for `clips/a.mp4` as `a.mp4` beside the manifest, called every job stale and wrote
    # metrics without them; splice of the same root used them all.
    (tmp_path / "clips").mkdir()
    numbered_clip(tmp_path / "clips" / "a.mp4", 24)
    monkeypatch.chdir(tmp_path)
    rows = [{"pair_id": f"p{i}", "source": "clips/a.mp4", "start_frame": 2 + 8 * i, "end_frame": 5 + 8 * i}
            for i in range(2)]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    for shard in ("0/2", "1/2"):
        args = ["run", str(manifest), "--out", "r", "--quiet", "--backend", "blend", "--no-preview", "--shard", shard]
        assert main(args) == 0
    assert main(["merge", "r"]) == 0
    assert [e.pair_id for e in read_run(tmp_path / "r").sources[(tmp_path / "clips" / "a.mp4").resolve()]] == [
        "p0",
        "p1",
    ]


def test_a_new_version_of_a_backend_remakes_its_jobs_not_refused(tmp_path, capsys, monkeypatch):
    # A backend's version is part of its settings in run.json: a new version (rife 2 took 16-bit keys as they
    # are) was refused as "other settings" (exit 2), though nothing the user chose had changed.
    from semfi_batch.backends.blend import BlendBackend

    clip = numbered_clip(tmp_path / "clip.mp4", 16)
    manifest = write_manifest([{"pair_id": "v", "source": str(clip), "start_frame": 2, "end_frame": 5}],
                              tmp_path / "v.parquet")  # fmt: skip
    args = ["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet", "--backend", "blend", "--no-preview"]
    with monkeypatch.context() as older:
        older.setattr(BlendBackend, "version", "0")
        assert main(args) == 0
    before = json.loads((tmp_path / "out" / "jobs" / "v" / "record.json").read_text())["key"]
    capsys.readouterr()
    assert main(args) == 0
    assert "another version of a backend (blend 0 -> " in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "jobs" / "v" / "record.json").read_text())["key"] != before
    assert not read_run(tmp_path / "out").skipped
