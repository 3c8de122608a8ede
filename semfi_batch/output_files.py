"""Where a command may write a file of its own (a manifest, results, a report, a timeline): a name ending in
that file's format, and never one of the command's inputs. A Parquet manifest written to `-o clip.mp4` would
replace the user's video; one written to `-o rows.csv` would be Parquet bytes under a CSV name."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from semfi_batch.errors import OutputPathError


def check_output_file(path: Path, suffixes: tuple[str, ...], kind: str, inputs: Iterable[Path] = ()) -> None:
    """Raise OutputPathError unless `path` ends in one of `suffixes` (`kind` names the file: "a Parquet
    manifest") and is none of `inputs` (the same file by any name: a link, a relative path)."""
    path = Path(path)
    names = " or ".join(suffixes)
    if path.is_dir():
        raise OutputPathError(f"output {path} is a folder; give a file name ending in {names}")
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(f"output {path}: this writes {kind}; give a file name ending in {names}")
    if not path.exists():
        return
    for item in inputs:
        try:
            same = os.path.samefile(path, item)
        except OSError:
            continue
        if same:
            raise OutputPathError(f"output {path} is the input {item}; inputs are never overwritten")
