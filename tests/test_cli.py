import subprocess
import sys

import pytest
import typer

from semfi_batch.cli import app, main
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
