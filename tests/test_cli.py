import subprocess
import sys

import numpy as np
import pytest
import typer

from semfi_batch.cli import app, main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from tests.conftest import REPO


def all_commands():
    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path, capsys):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out and "semfi-batch" in out


def test_user_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "semfi_batch", "run", str(tmp_path / "missing.parquet")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "manifest not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_variable_shows_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "semfi_batch", "run", str(tmp_path / "missing.parquet")],
        cwd=REPO, capture_output=True, text=True, env={**__import__("os").environ, "SEMFI_DEBUG": "1"},
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_usage_error_exit_code(capsys):
    assert main(["run"]) == 2
    assert "Missing argument" in capsys.readouterr().err


def test_version(capsys):
    from semfi_batch import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"semfi-batch {__version__}"


def test_flags_show_as_flags_and_say_so_when_given_a_value(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--force" in out and "<bool>" not in out
    assert main(["run", "m.parquet", "--force", "true"]) == 2
    assert "flags such as --force take no value" in capsys.readouterr().err


def test_bad_choice_reads_without_pydantic_words(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "x.mp4"), "-o", str(tmp_path / "m.parquet"), "--mode", "damag"]) == 2
    err = capsys.readouterr().err
    assert "'damag' is not one of 'cuts', 'damage', 'stride'" in err and "Value error" not in err


def test_bad_rife_scale_is_a_usage_error_before_the_run_starts(tmp_path, capsys):
    frame = np.zeros((16, 16, 3), np.uint8)
    rows = [{"pair_id": "p", "start_image": str(write_png_at(tmp_path / "a.png", frame)),
             "end_image": str(write_png_at(tmp_path / "b.png", frame)), "gap_frames": 1}]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    out = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(out), "--backend", "rife", "--rife-scale", "3"]) == 2
    assert "--rife-scale must be one of" in capsys.readouterr().err and not out.exists()


def write_png_at(path, frame):
    write_png(path, frame)
    return path


def test_detect_checks_its_output_before_the_analysis(clip_factory, tmp_path, capsys):
    clip = clip_factory(30)
    (tmp_path / "afile").write_text("")
    assert main(["detect", str(clip), "-o", str(tmp_path / "afile" / "m.parquet")]) == 2
    captured = capsys.readouterr()
    assert "is not a folder" in captured.err and "frames" not in captured.out + captured.err  # nothing analysed
    assert main(["detect", str(clip), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_finished_run_in_a_read_only_folder_says_all_is_done(tmp_path):
    """`run` again on a finished run whose folder is mounted read-only (a bind mount in a private mount
    namespace: read-only even for root)."""
    import shutil

    from tests.review_run import make_run

    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1)")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no permission for a private mount namespace here")
    run_dir = make_run(tmp_path)
    cmd = f"{sys.executable} -m semfi_batch run {tmp_path / 'm.parquet'} --out {run_dir} --no-preview"
    script = f"mount --bind {run_dir} {run_dir} && mount -o remount,ro,bind {run_dir} && "
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script + cmd + " --backend blend"],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "all 3 jobs are finished" in done.stdout and "read-only" in done.stdout
    todo = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script + cmd + " --backend flow"],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert todo.returncode == 2 and "is read-only and 3 of 3 jobs still need to run" in todo.stderr
    assert "--backend blend (this run: flow)" in todo.stderr  # why they would run: the root's other settings
