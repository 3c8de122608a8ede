"""Rows made ready for the checks: known columns of another type than the schema's read cell by cell, NaN and
whole floats normalised, blank strings made null, and each row as a Row that records problems against itself."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from semfi_batch.errors import ManifestProblem
from semfi_batch.manifest.schema import COLUMN_KINDS
from semfi_batch.manifest.tables import csv_number


def retyped(table: pa.Table, problems: list[ManifestProblem]) -> tuple[pa.Table, dict[str, list[int]]]:
    """The table with each known column of another type than the schema's (a Parquet file from another tool:
    frame numbers stored as text, ids as numbers) read cell by cell as a CSV cell is: numbers written as text
    become numbers, ids and paths stored as numbers their text. A cell that is not what its column holds is a
    problem of its own row, and left empty, so that every other problem is still found; so is a column of a
    type that holds no such values (lists, structs). Returns the table and, per column, the rows reported."""
    pair_ids = table.column("pair_id").to_pylist() if "pair_id" in table.column_names else None
    pair_ids = [None if v is None or isinstance(v, (bool, list, dict)) else str(v) for v in pair_ids or []]
    reported: dict[str, list[int]] = {}
    for i, name in enumerate(table.column_names):
        kind, typ = COLUMN_KINDS.get(name), table.schema.field(name).type
        if kind is None or _type_ok(kind, typ):
            continue
        scalar = pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_integer(typ)
        scalar = scalar or pa.types.is_floating(typ) or pa.types.is_boolean(typ) or pa.types.is_decimal(typ)
        values = []
        for row, value in enumerate(table.column(name).to_pylist()):
            if value is None:
                values.append(None)
                continue
            if not scalar or isinstance(value, bool):
                why = f"has type {typ}, expected {kind}"
            elif kind == "string":
                values.append(str(value))
                continue
            else:
                number = csv_number(str(value).strip(), kind)
                if not isinstance(number, str):
                    values.append(number)
                    continue
                why = f"{number} (the column has type {typ}, expected {kind})"
            pid = pair_ids[row] if pair_ids else None
            problems.append(ManifestProblem(row, pid, name, why))
            reported.setdefault(name, []).append(row)
            values.append(None)
        target = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}[kind]
        table = table.set_column(i, name, pa.array(values, target))
    return table, reported


def _type_ok(kind: str, typ: pa.DataType) -> bool:
    if pa.types.is_null(typ):
        return True
    if kind == "string":
        return pa.types.is_string(typ) or pa.types.is_large_string(typ)
    if kind == "int":
        return pa.types.is_integer(typ) or pa.types.is_floating(typ)  # floats checked per value
    return pa.types.is_integer(typ) or pa.types.is_floating(typ)


class Row:
    """One row's values (already normalised by `normalize`) and a way to record problems against it."""

    __slots__ = ("index", "values", "problems", "invalid", "pair_id", "get")

    def __init__(self, index: int, values: dict, problems: list[ManifestProblem], invalid: set[str]):
        self.index, self.values, self.problems = index, values, problems
        self.invalid = invalid  # columns already reported, so "is required" is not said as well
        self.get = values.get
        pid = values.get("pair_id")
        self.pair_id = pid if isinstance(pid, str) else None

    def problem(self, column: str | None, message: str) -> None:
        self.problems.append(ManifestProblem(self.index, self.pair_id, column, message))


def normalize(table: pa.Table, problems: list[ManifestProblem]) -> tuple[pa.Table, dict[int, set[str]]]:
    """Column-wise clean-up before the row loop: NaN -> null, whole floats -> int64 (fractional ones are
    problems). Returns the table and, per row, the columns already reported. (Empty strings become null in
    the row loop, `blank_to_null`: pyarrow.compute alone costs 60 ms to import, on every run.)"""
    invalid: dict[int, set[str]] = {}
    pair_ids = table.column("pair_id").to_pylist() if "pair_id" in table.column_names else None
    for i, name in enumerate(table.column_names):
        kind = COLUMN_KINDS.get(name)
        col = table.column(name)
        if kind in ("int", "float") and pa.types.is_floating(col.type):
            values = col.to_numpy(zero_copy_only=False).astype(np.float64)
            nan = np.isnan(values)
            if kind == "int":
                bad = ~nan & ~(np.isfinite(values) & (values == np.floor(values)))
                for row in np.flatnonzero(bad):
                    pid = pair_ids[row] if pair_ids else None
                    problems.append(ManifestProblem(int(row), pid, name, f"must be a whole number, got {values[row]}"))
                    invalid.setdefault(int(row), set()).add(name)
                nan |= bad
                clean = pa.array(np.where(nan, 0, values).astype(np.int64), mask=nan)
            else:
                clean = pa.array(values, mask=nan)
            table = table.set_column(i, name, clean)
    return table, invalid


def blank_to_null(rows: list[dict], names: list[str]) -> list[dict]:
    """Empty strings of the known string columns (prompts excepted) as null, in place."""
    blank = [n for n in names if COLUMN_KINDS.get(n) == "string" and n not in ("prompt", "negative_prompt")]
    for values in rows:
        for name in blank:
            if values[name] == "":
                values[name] = None
    return rows
