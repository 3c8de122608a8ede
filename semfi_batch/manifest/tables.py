"""Manifest files as tables: reading Parquet and CSV (each CSV row's line, and the cells that do not fit their
column reported with row and column), writing a schema-v1 manifest atomically, checking that one can be written."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from semfi_batch.atomic_write import remove_dead_temporaries, write_atomic
from semfi_batch.errors import ManifestError, ManifestProblem
from semfi_batch.manifest.schema import COLUMN_KINDS, KNOWN_COLUMNS, SCHEMA


def read_table(path: Path) -> pa.Table:
    """Read the Parquet (or CSV) file, turning every read failure into a ManifestError naming the file."""
    table, lines, problems = read_table_with_problems(path)
    raise_problems(path, with_lines(problems, lines))
    return table


def read_table_with_problems(path: Path) -> tuple[pa.Table, list[int] | None, list[ManifestProblem]]:
    """The table, each row's CSV line (None for Parquet), and the CSV cells that do not fit their column (left
    empty in the table, so that the rest can still be checked). Unreadable files raise ManifestError."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    if path.is_dir():
        raise ManifestError(f"manifest {path} is a folder, expected a Parquet file")
    lines, problems = None, []
    if path.suffix.lower() == ".csv":
        table, lines, problems = _read_csv(path)
    else:
        try:
            # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset (and pandas), a quarter second
            # that every `run`, a resume with nothing to do included, would pay.
            with pq.ParquetFile(path) as parquet:
                table = parquet.read()
        except (pa.ArrowException, OSError) as exc:
            raise ManifestError(f"{path} is not a readable Parquet manifest: {exc}") from None
    twice = sorted({name for name in table.column_names if table.column_names.count(name) > 1})
    if twice:
        raise ManifestError(f"{path}: column {twice[0]!r} appears more than once; keep one of them")
    return table, lines, problems


def raise_problems(path: Path, problems: list[ManifestProblem]) -> None:
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise ManifestError(f"{path}: {len(problems)} {noun}; first: {problems[0]}", problems)


def read_csv_table(path: Path) -> pa.Table:
    """A CSV manifest (header row, same columns as the Parquet schema) as a table with the schema's types.
    Cells that do not fit their column are reported with row (0-based, as for Parquet), column and CSV line;
    the user's own columns become numbers when every cell is one. Empty cells are missing values."""
    table, lines, problems = _read_csv(path)
    raise_problems(path, with_lines(problems, lines))
    return table


def with_lines(problems: list[ManifestProblem], lines: list[int] | None) -> list[ManifestProblem]:
    """The problems in row order (the manifest's own first), those of a CSV row saying its line too."""
    problems = sorted(problems, key=lambda p: -1 if p.row is None else p.row)
    if lines is None:
        return problems
    return [
        p if p.row is None else ManifestProblem(p.row, p.pair_id, p.column, f"{p.message} (line {lines[p.row]})")
        for p in problems
    ]


def _read_csv(path: Path) -> tuple[pa.Table, list[int], list[ManifestProblem]]:
    """read_csv_table's table, each row's CSV line, and the cells that do not fit their column (null in the
    table; the problems do not say the line yet)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path} is not a UTF-8 CSV file: {exc.reason} at byte {exc.start}") from None
    except (OSError, csv.Error) as exc:
        raise ManifestError(f"{path} is not a readable CSV manifest: {exc}") from None
    if not lines or not any(cell.strip() for cell in lines[0]):
        raise ManifestError(f"{path} is empty: a CSV manifest starts with a header row (pair_id, source, ...)")
    header = [name.strip() for name in lines[0]]
    twice = sorted({n for n in header if header.count(n) > 1})
    if twice or "" in header:
        what = f"repeated column name(s) {', '.join(twice)}" if twice else "an empty column name"
        raise ManifestError(f"{path}: the header row has {what}")
    body = [(i + 2, cells) for i, cells in enumerate(lines[1:]) if any(c.strip() for c in cells)]
    problems: list[ManifestProblem] = []
    pid_col = header.index("pair_id") if "pair_id" in header else None
    for row, (_, cells) in enumerate(body):
        if len(cells) > len(header):
            pid = cells[pid_col] if pid_col is not None and pid_col < len(cells) else None
            problems.append(ManifestProblem(row, pid, None, f"has {len(cells)} cells, the header {len(header)}"))
    columns = {}
    for j, name in enumerate(header):
        cells = [cells[j].strip() if j < len(cells) else "" for _, cells in body]
        kind = COLUMN_KINDS.get(name)
        if kind == "string" or (kind is None and not _all_numbers(cells)):
            keep_empty = name in ("prompt", "negative_prompt")
            columns[name] = pa.array([c if c or keep_empty else None for c in cells], pa.string())
            continue
        values = []
        for row, cell in enumerate(cells):
            value = csv_number(cell, kind or ("int" if _all_numbers(cells, whole=True) else "float"))
            if isinstance(value, str):
                pid = body[row][1][pid_col] if pid_col is not None and pid_col < len(body[row][1]) else None
                problems.append(ManifestProblem(row, pid, name, value))
                value = None
            values.append(value)
        whole = kind == "int" or (kind is None and _all_numbers(cells, whole=True))
        columns[name] = pa.array(values, pa.int64() if whole else pa.float64())
    return pa.table(columns), [line for line, _ in body], problems


def _all_numbers(cells: list[str], *, whole: bool = False) -> bool:
    filled = [c for c in cells if c]
    return bool(filled) and all(not isinstance(csv_number(c, "int" if whole else "float"), str) for c in filled)


def csv_number(cell: str, kind: str) -> int | float | str | None:
    """The cell's number, None when empty, or a message saying why it is not one."""
    if not cell:
        return None
    try:
        number = float(cell)
    except ValueError:
        return f"must be a {'whole number' if kind == 'int' else 'number'}, got {cell!r}"
    if kind != "int":
        return number
    if not math.isfinite(number) or number != int(number):
        return f"must be a whole number, got {cell!r}"
    return int(number)


def write_manifest(rows: Iterable[Mapping[str, Any]] | pa.Table, path: Path) -> Path:
    """Write rows (dicts or a table) as a schema-v1 manifest, atomically. Known columns get their
    schema types; other columns keep theirs."""
    if not isinstance(rows, pa.Table):
        rows = list(rows)
        names = list(dict.fromkeys(name for row in rows for name in row))  # union of keys, first-seen order
        rows = pa.Table.from_pylist([{n: row.get(n) for n in names} for row in rows])
    table = rows
    arrays, fields = [], []
    for name in table.column_names:
        col = table.column(name)
        if name in KNOWN_COLUMNS:
            target = SCHEMA.field(name).type
            col = col.cast(target) if col.type != target else col
            fields.append(pa.field(name, target))
        else:
            fields.append(pa.field(name, col.type))
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=SCHEMA.metadata))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Made in memory and written by write_atomic: a full disk or a kill leaves no temporary file beside the
    # user's, and the error names the manifest (pyarrow's named neither: "Error writing bytes to file").
    buffer = pa.BufferOutputStream()
    pq.write_table(out, buffer)
    remove_dead_temporaries(path)
    write_atomic(path, buffer.getvalue().to_pybytes())
    return path


def check_writable(path: Path) -> None:
    """Raise OutputPathError unless a manifest can be written at `path` (checked before long work, such as
    detect's analysis, so it fails in a second instead of after it): not a folder, and its folder (or the
    nearest existing parent, as write_manifest creates the rest) accepts a new file."""
    from semfi_batch.errors import OutputPathError

    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"output {path} is a folder; give a file name such as {path / 'manifest.parquet'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: {folder} is not a folder")
    probe = folder / f".{path.name}.writable{os.getpid()}"
    try:
        probe.touch(exist_ok=False)  # os.access says yes for root on a read-only filesystem; creating a file does not
        probe.unlink()
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {folder} is not writable ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK) and os.geteuid() != 0:
        raise OutputPathError(f"cannot write {path}: the file exists and is read-only")
