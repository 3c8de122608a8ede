"""`merge` gathers shards of one run only: roots made with other settings or from other manifests are refused
(the answer depended on the order of the roots), a root's own metrics are never replaced by other roots' jobs,
and a job counts only while it is its row's job (a failure too), a current done job before any failure."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from semfi_batch.cli import main
from semfi_batch.manifest import read_table, write_manifest
from semfi_batch.plan import shard_of
from tests.faults.conftest import image_manifest


def run(manifest, out, *extra: str, backend: str = "blend") -> int:
    return main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", backend, "--no-preview", *extra])


def rows_of(manifest) -> list[dict]:
    return read_table(manifest).to_pylist()


def test_roots_made_with_other_settings_are_refused(tmp_path, capsys):
    # Shard 0 with blend, shard 1 with flow: merged as "all done", half of them with the other backend.
    manifest = image_manifest(tmp_path, 4)
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(manifest, a, "--shard", "0/2") == 0
    assert run(manifest, b, "--shard", "1/2", backend="flow") == 0
    capsys.readouterr()
    for roots in ([a, b], [b, a]):
        assert main(["merge", *map(str, roots)]) == 2
        err = capsys.readouterr().err
        assert str(a) in err and str(b) in err and "--backend" in err, err
    assert not list(tmp_path.glob("*/metrics.merged.parquet")) and not (a / "metrics.parquet").exists()


def test_several_roots_never_replace_a_roots_own_metrics(tmp_path, capsys):
    # `merge x y` wrote y's records into x/metrics.parquet, which a later `run` of x kept (newer than its ledger).
    manifest = image_manifest(tmp_path, 3)
    x, y = tmp_path / "x", tmp_path / "y"
    assert run(manifest, x) == 0 and run(manifest, y) == 0
    own = (x / "metrics.parquet").read_bytes()
    assert main(["merge", str(x), str(y)]) == 0
    assert (x / "metrics.parquet").read_bytes() == own
    merged = pq.read_table(x / "metrics.merged.parquet").to_pylist()
    assert [r["status"] for r in merged] == ["done"] * 3
    for target in (x / "metrics.parquet", y / "metrics.parquet", x / "metrics.shard-0-of-2.parquet"):
        assert main(["merge", str(x), str(y), "-o", str(target)]) == 2
        assert "own metrics" in capsys.readouterr().err
    assert (x / "metrics.parquet").read_bytes() == own
    assert main(["merge", str(x)]) == 0  # one root: its own metrics, of its own jobs


def test_roots_run_from_different_manifests_are_refused_in_either_order(tmp_path, capsys):
    # Every root was judged against the first root's manifest: an edited row passed as done in one order and
    # was stale in the other, and rows only in a later manifest were left out with exit 0.
    manifest = image_manifest(tmp_path, 6)
    rows = rows_of(manifest)
    edited = next(r for r in rows if shard_of(r["pair_id"], 2) == 0)
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(manifest, a, "--shard", "0/2") == 0
    edited["gap_frames"] = 3
    write_manifest(rows, manifest)
    assert run(manifest, b, "--shard", "1/2") == 0
    capsys.readouterr()
    for roots in ([a, b], [b, a]):
        assert main(["merge", *map(str, roots)]) == 2
        err = capsys.readouterr().err
        assert "different manifests" in err and edited["pair_id"] in err, err
    # Run again with the manifest as it stands: only the edited row runs, and the shards merge.
    assert run(manifest, a, "--shard", "0/2") == 0
    assert main(["merge", str(b), str(a)]) == 0
    assert "6 done, 0 failed" in capsys.readouterr().out

    short = write_manifest(rows[:4], tmp_path / "short.parquet")
    c, d = tmp_path / "c", tmp_path / "d"
    assert run(short, c, "--shard", "0/2") == 0 and run(manifest, d, "--shard", "1/2") == 0
    capsys.readouterr()
    assert main(["merge", str(c), str(d)]) == 2
    err = capsys.readouterr().err
    assert f"2 row(s) only in {d}" in err and rows[4]["pair_id"] in err, err


def test_a_failure_of_another_version_of_the_row_is_stale(tmp_path, capsys):
    # One shared root: shard 0 ran rows given to minterpolate (they fail: 16x16), shard 1 the manifest without
    # them. The failures were counted against rows that no longer ask for minterpolate.
    manifest = image_manifest(tmp_path, 6)
    rows = rows_of(manifest)
    failing = [r["pair_id"] for r in rows if shard_of(r["pair_id"], 2) == 0]
    chosen = [{**r, "backend": "minterpolate" if r["pair_id"] in failing else None} for r in rows]
    first = write_manifest(chosen, tmp_path / "first.parquet")
    out = tmp_path / "out"
    assert run(first, out, "--shard", "0/2") == 1  # its jobs failed
    assert run(manifest, out, "--shard", "1/2") == 0
    capsys.readouterr()
    assert main(["merge", str(out)]) == 1
    printed = capsys.readouterr().out
    assert f"0 failed, 0 without a record, {len(failing)} stale" in printed, printed
    assert all(f"left out {p}: " in printed for p in failing)


def test_a_current_done_job_beats_a_newer_failure(tmp_path, capsys):
    # The newest record won: a failure of the same row on another node (out of memory, say) hid the done job.
    manifest = image_manifest(tmp_path, 3)
    x, y = tmp_path / "x", tmp_path / "y"
    assert run(manifest, x) == 0 and run(manifest, y) == 0
    path = y / "jobs" / "p01" / "record.json"
    record = json.loads(path.read_text())
    record.update(status="failed", error="out of memory", outputs={}, frames=0, finished_ts=record["finished_ts"] + 60)
    path.write_text(json.dumps(record))
    capsys.readouterr()
    for roots in ([x, y], [y, x]):
        assert main(["merge", *map(str, roots), "-o", str(tmp_path / "merged.parquet")]) == 0
        assert "3 done, 0 failed" in capsys.readouterr().out
        merged = {r["pair_id"]: r for r in pq.read_table(tmp_path / "merged.parquet").to_pylist()}
        assert merged["p01"]["status"] == "done"


def test_image_keys_named_relative_to_the_manifest_are_found(tmp_path, monkeypatch, capsys):
    # The run's copy of the manifest resolved `k000.png` against the run folder: every job was left out as stale.
    image_manifest(tmp_path, 2)
    rows = [{"pair_id": f"p{i}", "start_image": f"k00{i}.png", "end_image": f"k00{i + 1}.png", "gap_frames": 2}
            for i in range(2)]  # fmt: skip
    write_manifest(rows, tmp_path / "rel.parquet")
    monkeypatch.chdir(tmp_path)
    assert run("rel.parquet", "out") == 0
    capsys.readouterr()
    assert main(["merge", "out"]) == 0
    assert "2 done, 0 failed, 0 without a record, 0 stale" in capsys.readouterr().out


def test_merge_never_writes_over_a_runs_manifest_nor_into_its_jobs(tmp_path, capsys):
    # Both exited 0: the run's manifest.parquet became a metrics table; x.parquet went into a finished job's folder.
    manifest = image_manifest(tmp_path, 2)
    root = tmp_path / "root"
    assert run(manifest, root) == 0
    snapshot = (root / "manifest.parquet").read_bytes()
    for target in (root / "manifest.parquet", root / "jobs" / "p00" / "x.parquet", root / "work" / "m.parquet"):
        assert main(["merge", str(root), "-o", str(target)]) == 2
    assert (root / "manifest.parquet").read_bytes() == snapshot
    assert sorted(p.name for p in (root / "jobs" / "p00").iterdir()) == [
        "end.png",
        "frames",
        "record.json",
        "start.png",
    ]
    assert "is a file of the run" in capsys.readouterr().err
