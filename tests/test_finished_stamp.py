"""The finished stamp (run/finished.py): a resume with nothing to do is answered before the engine loads, and
only while nothing that could change the run's outcome has changed; any change takes the normal path."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.media.frames import write_png
from semfi_batch.run import finished
from tests.conftest import REPO
from tests.faults.conftest import image_manifest

PROBE = (
    "import sys\n"
    "sys.argv = ['semfi-batch', *sys.argv[1:]]\n"
    "from semfi_batch.entry import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    print('EXIT', exc.code or 0, 'pyarrow' in sys.modules)\n"
)


def semfi(cwd, *args: str, env: dict | None = None) -> tuple[int, bool, str]:
    """(exit status, whether the engine was loaded (pyarrow imported), stdout) of `semfi-batch args`."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=full_env, capture_output=True, text=True)
    last = [line for line in done.stdout.splitlines() if line.startswith("EXIT")][-1].split()
    return int(last[1]), last[2] == "True", done.stdout + done.stderr


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """A finished run of 4 image pairs, its stamp written: run in this process, with the command line, folder
    and environment the tests' `semfi` processes then repeat (a process of its own cost a Python start and
    the engine's imports per test, as each test's own commands still do)."""
    manifest = image_manifest(tmp_path, 4, size=16, gap=1)
    args = ["run", str(manifest), "--out", "out", "--quiet", "--backend", "blend"]
    with monkeypatch.context() as here:
        here.chdir(tmp_path)
        assert main(args) == 0
    assert (tmp_path / "out" / finished.STAMP).is_file()
    return tmp_path, args


def test_a_finished_run_is_answered_without_loading_the_engine(finished_run):
    folder, args = finished_run
    code, loaded, out = semfi(folder, *args)
    assert (code, loaded) == (0, False), out
    assert "│    4 │      0 │       0 │                          4 │" in out  # 4 jobs, 4 done, 4 skipped


def test_what_report_splice_and_review_write_keeps_the_stamp_but_a_symlink_there_does_not(finished_run):
    folder, args = finished_run
    out = folder / "out"
    (out / ".report-quality.json.new").write_text("{}")
    os.replace(out / ".report-quality.json.new", out / ".report-quality.json")  # `report` rewrote its cache
    (out / "report.html.new").write_text("<html></html>")
    os.replace(out / "report.html.new", out / "report.html")
    (out / "spliced").mkdir()
    (out / "review").mkdir()
    assert semfi(folder, *args)[:2] == (0, False)
    (out / "report.html").unlink()
    (out / "report.html").symlink_to(folder / "elsewhere.html")
    assert semfi(folder, *args)[1], "answered from the stamp through a symlinked report.html"


def test_a_rewritten_key_takes_the_normal_path_and_then_the_stamp_again(finished_run):
    folder, args = finished_run
    key = folder / "k002.png"
    data = key.read_bytes()
    time.sleep(0.01)
    key.write_bytes(data)  # the same pixels, a new mtime: only the normal path can tell it is the same
    code, loaded, _ = semfi(folder, *args)
    assert (code, loaded) == (0, True)
    assert semfi(folder, *args)[:2] == (0, False)  # the normal run wrote the stamp anew


def test_a_changed_key_runs_its_jobs_again(finished_run):
    folder, args = finished_run
    write_png(folder / "k002.png", np.full((16, 16, 3), 9, np.uint8))
    code, loaded, out = semfi(folder, *args)
    assert (code, loaded) == (0, True)
    assert "│       2 │                          2 │" in out, out  # p01 and p02 name k002: run again


def test_a_deleted_output_runs_its_job_again(finished_run):
    folder, args = finished_run
    (folder / "out/jobs/p03/frames/000001.png").unlink()
    code, loaded, out = semfi(folder, *args)
    assert (code, loaded) == (0, True)
    assert (folder / "out/jobs/p03/frames/000001.png").is_file()


@pytest.mark.parametrize(
    "change",
    [
        "other arguments",
        "retry failed",
        "environment",
        "PATH",
        "leftover attempt",
        "review decisions",
        "manifest",
        "other folder",
        "symlinked run file",
    ],
)
def test_anything_else_that_differs_takes_the_normal_path(finished_run, change):
    folder, args = finished_run
    env, cwd = None, folder
    if change == "other arguments":
        args = [*args, "--workers", "1"]
    elif change == "retry failed":  # verifies every output by content: never answered from the stamp
        finished_args = [*args, "--retry-failed"]
        assert semfi(folder, *finished_args)[:2] == (0, True)
        args = finished_args
    elif change == "environment":
        env = {"SEMFI_PNG_LEVEL": "6"}
    elif change == "PATH":  # another ffmpeg may come first
        env = {"PATH": f"{folder}:{os.environ['PATH']}"}
    elif change == "leftover attempt":
        (folder / "out/work/p00").mkdir(parents=True)
    elif change == "review decisions":
        (folder / "out/decisions.json").write_text("{}")
    elif change == "manifest":
        os.utime(folder / "m.parquet")
    elif change == "other folder":
        (folder / "elsewhere").mkdir()
        cwd = folder / "elsewhere"
        args = [a if a != "out" else str(folder / "out") for a in args]
    elif change == "symlinked run file":
        (folder / "victim").write_bytes(b"precious")
        (folder / "out/events.jsonl").unlink()
        (folder / "out/events.jsonl").symlink_to(folder / "victim")
    code, loaded, out = semfi(cwd, *args, env=env)
    assert loaded, f"{change}: answered from the stamp"
    assert code in (0, 2), out  # 2: the review file is not one `review` wrote


def test_code_identity_follows_the_installed_code(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(finished, "_PACKAGE", tmp_path)
    before = finished.code_identity()
    time.sleep(0.01)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert finished.code_identity() != before


def test_auto_is_answered_while_the_files_it_routes_by_hold(tmp_path):
    """`auto` picks rife or flow by whether rife's weights (and torch) are here: the stamp holds their
    identity, so weights that appear after the run send the same command down the normal path, which runs
    the jobs again with rife (here the weights are not a checkpoint: those jobs fail, loudly)."""
    manifest = image_manifest(tmp_path, 2, size=16, gap=1)
    weights = tmp_path / "weights.pkl"
    args = ["run", str(manifest), "--out", "auto", "--quiet", "--backend", "auto", "--rife-model", str(weights)]
    code, loaded, out = semfi(tmp_path, *args)
    assert (code, loaded) == (0, True), out
    assert (tmp_path / "auto" / finished.STAMP).is_file()
    assert semfi(tmp_path, *args)[:2] == (0, False)  # answered from the stamp
    weights.write_bytes(b"not a checkpoint")
    code, loaded, out = semfi(tmp_path, *args)
    assert (code, loaded) == (1, True), out  # routed to rife now: the jobs ran again


def test_no_stamp_where_more_than_files_decides_or_a_job_failed(tmp_path):
    manifest = image_manifest(tmp_path, 2, size=16, gap=1)
    # Rows auto could give to semfi: whether it does depends on a GPU.
    args = ["run", str(manifest), "--out", "semantic", "--quiet", "--backend", "auto", "--semantic-gap", "1"]
    args.append("--allow-morph")  # random keys: two different shots, which rife (installed) would refuse
    code, _, out = semfi(tmp_path, *args)
    assert code == 0, out
    assert not (tmp_path / "semantic" / finished.STAMP).exists()
    (tmp_path / "t").mkdir()
    tiny = image_manifest(tmp_path / "t", 1, size=8, gap=1)
    code, _, _ = semfi(tmp_path, "run", str(tiny), "--out", "mi", "--quiet", "--backend", "minterpolate")
    assert code == 1  # minterpolate refuses frames under 32x32: a failed job
    assert not (tmp_path / "mi" / finished.STAMP).exists()


def test_a_rife_run_is_answered_from_its_stamp(tmp_path):
    from semfi_batch.backends._rife.weights import DEFAULT_WEIGHTS

    weights = (REPO / DEFAULT_WEIGHTS).absolute()
    if not weights.is_file():
        pytest.skip("RIFE weights not installed (make install)")
    manifest = image_manifest(tmp_path, 2, size=32, gap=1)
    args = ["run", str(manifest), "--out", "rife", "--quiet", "--backend", "rife", "--rife-model", str(weights)]
    args.append("--allow-morph")  # random keys: two different shots
    code, loaded, out = semfi(tmp_path, *args)
    assert (code, loaded) == (0, True), out
    code, loaded, out = semfi(tmp_path, *args)
    assert (code, loaded) == (0, False), out
    assert "│    2 │      0 │       0 │                          2 │" in out


def test_a_key_changed_while_the_run_ran_is_not_taken_as_finished(tmp_path, monkeypatch):
    """The stamp holds the identities of the files as the run read them, not as they are when it ends: a
    key rewritten after its jobs ran (here: just before the run collects its records) is noticed."""
    from semfi_batch.cli import main
    from semfi_batch.run import engine

    manifest = image_manifest(tmp_path, 3, size=16, gap=1)
    collect = engine._collect

    def edit_then_collect(*args, **kwargs):
        write_png(tmp_path / "k001.png", np.full((16, 16, 3), 200, np.uint8))
        return collect(*args, **kwargs)

    monkeypatch.setattr(engine, "_collect", edit_then_collect)
    monkeypatch.chdir(tmp_path)
    args = ["run", str(manifest), "--out", "out", "--quiet", "--backend", "blend"]
    assert main(args) == 0
    assert (tmp_path / "out" / finished.STAMP).is_file()
    code, loaded, out = semfi(tmp_path, *args)
    assert (code, loaded) == (0, True), out  # the normal path: p00 and p01 name k001, made from its old pixels
    assert "│       2 │                          1 │" in out, out


def test_a_finished_job_removed_while_a_resume_runs_is_not_counted_done(tmp_path, monkeypatch):
    # A resume counted a finished job from the ledger it read at the start: its folder removed meanwhile, the
    # run still said every job was done (exit 0) and metrics.parquet listed it done.
    import shutil

    import pyarrow.parquet as pq

    from semfi_batch.run import engine

    manifest = image_manifest(tmp_path, 4, size=16, gap=1)
    assert engine.run_manifest(manifest, tmp_path / "out", backend="blend", show_progress=False).done == 4
    real_execute = engine._execute

    def execute_while_a_folder_goes(plan, layout, *args):
        shutil.rmtree(layout.jobs / plan.finished[1].pair_id)
        return real_execute(plan, layout, *args)

    monkeypatch.setattr(engine, "_execute", execute_while_a_folder_goes)
    summary = engine.run_manifest(manifest, tmp_path / "out", backend="blend", show_progress=False)
    gone = summary.failures[0][0]
    assert (summary.done, summary.failed) == (3, 1) and "was removed during this run" in summary.failures[0][1]
    metrics = pq.read_table(summary.metrics).to_pylist()
    assert gone not in {row["pair_id"] for row in metrics if row["status"] == "done"} and len(metrics) >= 3
    monkeypatch.undo()
    assert engine.run_manifest(manifest, tmp_path / "out", backend="blend", show_progress=False).done == 4
