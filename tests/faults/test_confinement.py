"""One settings set per output root, no write through a symlink, concurrent starts on a new root, and a report
that survives an unreadable metrics.parquet."""

import threading

import pyarrow.parquet as pq
import pytest

from semfi_batch.backends import BackendOptions
from semfi_batch.cli import main
from semfi_batch.run.engine import prepare_run
from tests.faults.conftest import run_args


def test_other_backend_on_the_same_root_is_refused(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(run_args(images, out)) == 0
    before = (out / "metrics.parquet").read_bytes()
    args = run_args(images, out)
    args[args.index("blend")] = "flow"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds results made with other settings: --backend blend (this run: flow)" in err
    assert (out / "metrics.parquet").read_bytes() == before
    assert main([*run_args(images, out)[:-1], "--preview"]) == 2  # previews on now, off before
    assert "previews off (this run: on)" in capsys.readouterr().err
    assert {r["backend"] for r in pq.read_table(out / "metrics.parquet").to_pylist()} == {"blend"}


# cache/keys and cache/keyframes: keys were written outside the root through them, and leftover cleaning
# deleted a temporary-looking file of the user's there.
FOLDERS = ("leases", "cache/keys", "cache/keyframes")


@pytest.mark.parametrize(
    "name", ["ledger.jsonl", "events.jsonl", "leases", "metrics.parquet", "run.json", "cache/keys", "cache/keyframes"]
)
def test_symlinked_run_file_is_refused(images, tmp_path, capsys, name):
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    if name in FOLDERS:
        victim.mkdir()
        (victim / ".notes.txt.tmp99999").write_bytes(b"precious")
    else:
        victim.write_bytes(b"precious")
    (out / name).parent.mkdir(parents=True)
    (out / name).symlink_to(victim)
    assert main(run_args(images, out)) == 2
    assert f"{out / name} is a symlink" in capsys.readouterr().err
    if name in FOLDERS:
        assert [p.name for p in victim.iterdir()] == [".notes.txt.tmp99999"]
    else:
        assert victim.read_bytes() == b"precious"


def test_spliced_symlink_is_refused_by_splice(tmp_path, clip_factory, capsys):
    from semfi_batch.manifest import write_manifest

    clip = clip_factory(20)
    manifest = write_manifest([{"pair_id": "v0", "source": str(clip), "start_frame": 2, "end_frame": 5}],
                              tmp_path / "v.parquet")  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    (tmp_path / "elsewhere").mkdir()
    (out / "spliced").symlink_to(tmp_path / "elsewhere")
    assert main(["splice", str(out)]) == 2
    assert "spliced is a symlink" in capsys.readouterr().err
    assert not list((tmp_path / "elsewhere").iterdir())


def test_runs_starting_together_on_a_new_root(images, tmp_path):
    """Several runs preparing one new output root at once (manifest snapshot, run.json) all succeed."""
    for attempt in range(4):
        out = tmp_path / f"out{attempt}"
        errors = []

        def prepare(out=out, errors=errors):
            try:
                prepare_run(images, out, "blend", BackendOptions(), preview=False)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=prepare) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert pq.read_table(out / "manifest.parquet").num_rows == 4
        assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_report_survives_an_unreadable_metrics_file(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(run_args(images, out)) == 0
    (out / "metrics.parquet").write_bytes(b"PAR1 this is not parquet")
    assert main(["report", str(out)]) == 0
    assert "metrics.parquet is unreadable" in capsys.readouterr().err
    assert "p03" in (out / "report.html").read_text()
