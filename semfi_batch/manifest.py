"""Manifest schema v1 (Parquet): one row per keyframe pair. Reading, validation with row/column errors, writing.

The schema is documented for users in manifests/README.md."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from semfi_batch.errors import ManifestError, ManifestProblem, SemfiError
from semfi_batch.plan import default_seed

SCHEMA_VERSION = 1
MAX_GAP_FRAMES = 10_000

# The one definition of the manifest's own columns; any other column is the user's.
SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("start_image", pa.string()),
        ("end_image", pa.string()),
        ("source", pa.string()),
        ("start_frame", pa.int64()),
        ("end_frame", pa.int64()),
        ("mode", pa.string()),
        ("gap_frames", pa.int64()),
        ("prompt", pa.string()),
        ("negative_prompt", pa.string()),
        ("seed", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("steps", pa.int64()),
        ("cfg_scale", pa.float64()),
        ("backend", pa.string()),
    ],
    metadata={b"semfi_batch.schema_version": str(SCHEMA_VERSION).encode()},
)
KNOWN_COLUMNS = tuple(SCHEMA.names)
MODES = ("replace", "insert")
PAIR_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(slots=True)
class KeyframePair:
    """One validated manifest row, with paths resolved and defaults filled in."""

    row: int
    pair_id: str
    mode: str
    gap_frames: int
    seed: int
    start_image: Path | None = None
    end_image: Path | None = None
    source: Path | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    prompt: str = ""
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    backend: str | None = None
    keyframe_size: tuple[int, int] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_video(self) -> bool:
        return self.source is not None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the delivered frames."""
        if self.width and self.height:
            return self.width, self.height
        assert self.keyframe_size is not None
        return self.keyframe_size


@dataclass
class Manifest:
    """A validated manifest."""

    path: Path
    pairs: list[KeyframePair]
    extra_columns: list[str]

    @property
    def stem(self) -> str:
        return self.path.stem


def pair_id_problem(pair_id: str) -> str | None:
    """Why `pair_id` is unsafe as a folder name, or None when it is fine."""
    if not PAIR_ID_RE.fullmatch(pair_id) or ".." in pair_id:  # fullmatch: "$" alone lets a final newline in
        return (
            "must be 1-128 characters of letters, digits, '.', '_' or '-', start with a letter or digit "
            "and contain no '..' (it names the job's folder)"
        )
    return None


def read_table(path: Path) -> pa.Table:
    """Read the Parquet (or CSV) file, turning every read failure into a ManifestError naming the file."""
    table, lines, problems = _read_table(path)
    _raise_problems(path, _with_lines(problems, lines))
    return table


def _read_table(path: Path) -> tuple[pa.Table, list[int] | None, list[ManifestProblem]]:
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


def _raise_problems(path: Path, problems: list[ManifestProblem]) -> None:
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise ManifestError(f"{path}: {len(problems)} {noun}; first: {problems[0]}", problems)


def read_csv_table(path: Path) -> pa.Table:
    """A CSV manifest (header row, same columns as the Parquet schema) as a table with the schema's types.
    Cells that do not fit their column are reported with row (0-based, as for Parquet), column and CSV line;
    the user's own columns become numbers when every cell is one. Empty cells are missing values."""
    table, lines, problems = _read_csv(path)
    _raise_problems(path, _with_lines(problems, lines))
    return table


def _with_lines(problems: list[ManifestProblem], lines: list[int] | None) -> list[ManifestProblem]:
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
        kind = _KIND.get(name)
        if kind == "string" or (kind is None and not _all_numbers(cells)):
            keep_empty = name in ("prompt", "negative_prompt")
            columns[name] = pa.array([c if c or keep_empty else None for c in cells], pa.string())
            continue
        values = []
        for row, cell in enumerate(cells):
            value = _csv_number(cell, kind or ("int" if _all_numbers(cells, whole=True) else "float"))
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
    return bool(filled) and all(not isinstance(_csv_number(c, "int" if whole else "float"), str) for c in filled)


def _csv_number(cell: str, kind: str) -> int | float | str | None:
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


def load_manifest(path: Path, *, check_media: bool = True, known_backends: Iterable[str] | None = None) -> Manifest:
    """Read and validate a manifest. Raises ManifestError listing every problem found."""
    path = Path(path)
    table, lines, cell_problems = _read_table(path)
    # Cells that did not fit their column (CSV) are empty in the table and marked, so every other problem is
    # still found in the same pass; the problems are listed row by row.
    invalid: dict[int, set[str]] = {}
    for p in cell_problems:
        if p.row is not None and p.column is not None:
            invalid.setdefault(p.row, set()).add(p.column)
    pairs, problems = _validate(
        table, path, check_media=check_media, known_backends=known_backends, invalid=invalid, lines=lines
    )
    _raise_problems(path, _with_lines([*cell_problems, *problems], lines))
    extra = [c for c in table.column_names if c not in KNOWN_COLUMNS]
    return Manifest(path=path, pairs=pairs, extra_columns=extra)


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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(out, tmp)
    os.replace(tmp, path)
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


# --- validation -------------------------------------------------------------------------------------

_KIND = {name: ("string" if pa.types.is_string(SCHEMA.field(name).type) else
                "int" if pa.types.is_integer(SCHEMA.field(name).type) else "float")
         for name in KNOWN_COLUMNS}  # fmt: skip


def _retyped(table: pa.Table, problems: list[ManifestProblem]) -> tuple[pa.Table, dict[str, list[int]]]:
    """The table with each known column of another type than the schema's (a Parquet file from another tool:
    frame numbers stored as text, ids as numbers) read cell by cell as a CSV cell is: numbers written as text
    become numbers, ids and paths stored as numbers their text. A cell that is not what its column holds is a
    problem of its own row, and left empty, so that every other problem is still found; so is a column of a
    type that holds no such values (lists, structs). Returns the table and, per column, the rows reported."""
    pair_ids = table.column("pair_id").to_pylist() if "pair_id" in table.column_names else None
    pair_ids = [None if v is None or isinstance(v, (bool, list, dict)) else str(v) for v in pair_ids or []]
    reported: dict[str, list[int]] = {}
    for i, name in enumerate(table.column_names):
        kind, typ = _KIND.get(name), table.schema.field(name).type
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
                number = _csv_number(str(value).strip(), kind)
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


class _Row:
    """One row's values (already normalised by `_normalize`) and a way to record problems against it."""

    __slots__ = ("index", "values", "problems", "invalid", "pair_id", "get")

    def __init__(self, index: int, values: dict, problems: list[ManifestProblem], invalid: set[str]):
        self.index, self.values, self.problems = index, values, problems
        self.invalid = invalid  # columns already reported, so "is required" is not said as well
        self.get = values.get
        pid = values.get("pair_id")
        self.pair_id = pid if isinstance(pid, str) else None

    def problem(self, column: str | None, message: str) -> None:
        self.problems.append(ManifestProblem(self.index, self.pair_id, column, message))


def _normalize(table: pa.Table, problems: list[ManifestProblem]) -> tuple[pa.Table, dict[int, set[str]]]:
    """Column-wise clean-up before the row loop: NaN -> null, whole floats -> int64 (fractional ones are
    problems). Returns the table and, per row, the columns already reported. (Empty strings become null in
    the row loop, `_blank_to_null`: pyarrow.compute alone costs 60 ms to import, on every run.)"""
    invalid: dict[int, set[str]] = {}
    pair_ids = table.column("pair_id").to_pylist() if "pair_id" in table.column_names else None
    for i, name in enumerate(table.column_names):
        kind = _KIND.get(name)
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


def _blank_to_null(rows: list[dict], names: list[str]) -> list[dict]:
    """Empty strings of the known string columns (prompts excepted) as null, in place."""
    blank = [n for n in names if _KIND.get(n) == "string" and n not in ("prompt", "negative_prompt")]
    for values in rows:
        for name in blank:
            if values[name] == "":
                values[name] = None
    return rows


def _validate(
    table: pa.Table,
    path: Path,
    *,
    check_media: bool,
    known_backends: Iterable[str] | None,
    invalid: Mapping[int, set[str]] | None = None,
    lines: list[int] | None = None,
) -> tuple[list[KeyframePair], list[ManifestProblem]]:
    """The rows as pairs, and every problem found. `invalid`: per row, the columns already reported (cells
    that did not fit); `lines`: each row's CSV line, for messages that name another row."""
    problems: list[ManifestProblem] = []
    names = table.column_names
    if "pair_id" not in names:
        hint = _hint(["pair_id"], names)
        problems.append(ManifestProblem(None, None, "pair_id", "required column is missing" + hint))
    if not ({"start_image", "end_image"} <= set(names) or {"source", "start_frame", "end_frame"} <= set(names)):
        hints = [_hint([c for c in group if c not in names], names) for group in (_IMAGE_COLUMNS, _VIDEO_COLUMNS)]
        problems.append(
            ManifestProblem(
                None, None, None,
                "keyframe columns missing: give start_image and end_image, or source, start_frame and end_frame"
                + max(hints, key=lambda h: h.count(" for ")),
            )
        )  # fmt: skip
    if problems:  # a manifest from another tool: say what it has
        last = problems[-1]
        columns = ", ".join(names) or "none"
        problems[-1] = ManifestProblem(None, None, last.column, f"{last.message}; the file's columns: {columns}")
    if problems:
        return [], problems
    table, mistyped = _retyped(table, problems)
    invalid = {row: set(columns) for row, columns in (invalid or {}).items()}
    for name, rows in mistyped.items():
        for row in rows:
            invalid.setdefault(row, set()).add(name)

    if known_backends is None:
        from semfi_batch.backends import backend_names

        known_backends = [*backend_names(), "auto"]  # auto: resolved per row by backends/routing.py
    known_backends = set(known_backends)
    base = path.parent
    media = _MediaChecker(base, check_media)
    seen: dict[str, int] = {}
    pairs: list[KeyframePair] = []
    extras_cols = [c for c in names if c not in KNOWN_COLUMNS]
    table, reported = _normalize(table, problems)
    for index, columns in (invalid or {}).items():
        reported.setdefault(index, set()).update(columns)
    no_invalid: set[str] = set()
    for index, values in enumerate(_blank_to_null(table.to_pylist(), names)):
        row = _Row(index, values, problems, reported.get(index, no_invalid))
        pair = _validate_row(row, media, known_backends, extras_cols)
        if row.pair_id is not None:
            if row.pair_id in seen:
                first = seen[row.pair_id]
                row.problem("pair_id", f"duplicate of row {first}" + (f" on line {lines[first]}" if lines else ""))
                pair = None
            else:
                seen[row.pair_id] = index
        if pair is not None:
            pairs.append(pair)
    return pairs, problems


def _hint(missing: list[str], names: list[str]) -> str:
    """'; did you mean ...' for columns of the file that look like the missing ones (other tools' names)."""
    import difflib

    guesses = []
    lowered = {n.lower(): n for n in names}
    for col in missing:
        near = [lowered[m] for m in difflib.get_close_matches(col.lower(), list(lowered), n=1, cutoff=0.6)]
        near += [n for n in names if n.lower() in _SYNONYMS.get(col, ()) and n not in near]
        if near:
            guesses.append(f"{near[0]!r} for {col}")
    return f" (rename {', '.join(guesses)}?)" if guesses else ""


_IMAGE_COLUMNS = ("start_image", "end_image")
_VIDEO_COLUMNS = ("source", "start_frame", "end_frame")
# Column names other tools use for ours, for the rename hint.
_SYNONYMS = {
    "pair_id": ("id", "name", "key", "clip_id", "shot", "event"),
    "source": ("video", "file", "path", "media", "clip", "filename", "source_file"),
    "start_frame": ("first", "start", "in", "frame_in", "first_frame", "src_in"),
    "end_frame": ("last", "end", "out", "frame_out", "last_frame", "src_out"),
    "start_image": ("first_image", "key1", "image_a", "start_key"),
    "end_image": ("last_image", "key2", "image_b", "end_key"),
}


def _validate_row(
    row: _Row, media: _MediaChecker, known_backends: set[str], extras_cols: list[str]
) -> KeyframePair | None:
    before = len(row.problems)
    pair_id = row.get("pair_id")
    if pair_id is None:
        row.problem("pair_id", "is required")
    elif (why := pair_id_problem(pair_id)) is not None:
        row.problem("pair_id", why)

    start_image, end_image, source = row.get("start_image"), row.get("end_image"), row.get("source")
    start_frame, end_frame = row.get("start_frame"), row.get("end_frame")
    mode, gap = row.get("mode"), row.get("gap_frames")
    is_video = source is not None
    if is_video and (start_image is not None or end_image is not None):
        row.problem("source", "give either source (video) or start_image/end_image, not both")
        return None
    if not is_video and start_image is None and end_image is None:
        row.problem("start_image", "no keyframes: give start_image and end_image, or source with frames")
        return None

    mode_ok = True
    if mode is None:
        mode = "replace" if is_video else "insert"
    elif mode.strip().lower() in MODES:
        mode = mode.strip().lower()  # 'Replace' from a spreadsheet means replace
    else:
        row.problem("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        mode_ok = False
    if not is_video and mode == "replace":
        row.problem("mode", "replace needs a video source; image pairs can only be insert")

    keyframe_size = None
    if is_video:
        for col, value in (("start_frame", start_frame), ("end_frame", end_frame)):
            if value is None:
                if col not in row.invalid:
                    row.problem(col, "is required for a video row")
            elif value < 0:
                row.problem(col, f"must be >= 0, got {value}")
        if start_frame is not None and end_frame is not None and start_frame >= end_frame:
            row.problem("end_frame", f"must be greater than start_frame ({start_frame}), got {end_frame}")
        info = media.video(row, source)
        if info is not None:
            keyframe_size = (info.width, info.height)
            for col, value in (("start_frame", start_frame), ("end_frame", end_frame)):
                if value is not None and value >= info.frame_count:
                    row.problem(col, f"frame {value} is past the end of {source} ({info.frame_count} frames)")
    else:
        sizes = []
        for col, value in (("start_image", start_image), ("end_image", end_image)):
            if value is None:
                if col not in row.invalid:
                    row.problem(col, "is required for an image pair")
            else:
                sizes.append(media.image(row, col, value))
        if len(sizes) == 2 and None not in sizes:
            if sizes[0] != sizes[1]:
                row.problem(
                    "end_image",
                    f"size {sizes[1][0]}x{sizes[1][1]} differs from start_image's {sizes[0][0]}x{sizes[0][1]}",
                )
            keyframe_size = sizes[0]

    frames_ok = start_frame is None or end_frame is None or start_frame < end_frame  # else reported above
    gap_given = gap is not None
    if not mode_ok or not frames_ok:
        pass  # gap_frames follows from mode and frames: nothing to say about a column the user may not have set
    elif mode == "replace" and is_video:
        if start_frame is not None and end_frame is not None:  # a missing index is reported above
            derived = end_frame - start_frame - 1
            if derived < 1:
                row.problem("end_frame", "replace needs at least one frame between start_frame and end_frame")
            elif gap is not None and gap != derived:
                row.problem(
                    "gap_frames",
                    f"is {gap} but replace between frames {start_frame} and {end_frame} gives {derived}",
                )
            gap = derived if gap is None else gap
    elif gap is None:
        if "gap_frames" not in row.invalid:
            row.problem("gap_frames", "is required for insert rows")
    elif is_video and start_frame is not None and end_frame is not None and gap < end_frame - start_frame - 1:
        # An insert keeps every frame: across frames it may replace them (damage beside a hole in the
        # timestamps), never drop some (the splice would play the stretch with fewer frames, exit 0).
        row.problem(
            "gap_frames",
            f"is {gap} but insert between frames {start_frame} and {end_frame} must fill at least the "
            f"{end_frame - start_frame - 1} frames between them (replace regenerates frames in place)",
        )
    if gap_given and not 1 <= gap <= MAX_GAP_FRAMES:
        row.problem("gap_frames", f"must be between 1 and {MAX_GAP_FRAMES}, got {gap}")
    elif not gap_given and gap is not None and gap > MAX_GAP_FRAMES:
        row.problem("end_frame", f"replace of {gap} frames is over the {MAX_GAP_FRAMES} frame limit")

    width, height = row.get("width"), row.get("height")
    if (width is None) != (height is None):
        row.problem("width" if width is None else "height", "give width and height together, or neither")
    for col, value in (("width", width), ("height", height), ("steps", row.get("steps"))):
        if value is not None and value <= 0:
            row.problem(col, f"must be positive, got {value}")
    cfg = row.get("cfg_scale")
    if cfg is not None and (not math.isfinite(cfg) or cfg < 0):
        row.problem("cfg_scale", f"must be a finite number >= 0, got {cfg}")
    seed = row.get("seed")
    if seed is not None and not 0 <= seed < 2**63:
        row.problem("seed", f"must be between 0 and 2**63 - 1, got {seed}")
    backend = row.get("backend")
    if backend is not None and backend not in known_backends:
        row.problem("backend", f"unknown backend {backend!r}; known: {', '.join(sorted(known_backends))}")

    if len(row.problems) > before or row.invalid:
        return None
    return KeyframePair(
        row=row.index,
        pair_id=pair_id,
        mode=mode,
        gap_frames=int(gap),
        seed=int(seed) if seed is not None else default_seed(pair_id),
        start_image=media.resolve(start_image) if start_image else None,
        end_image=media.resolve(end_image) if end_image else None,
        source=media.resolve(source) if source else None,
        start_frame=start_frame,
        end_frame=end_frame,
        prompt=row.get("prompt") or "",
        negative_prompt=row.get("negative_prompt") or "",
        width=width,
        height=height,
        steps=row.get("steps"),
        cfg_scale=cfg,
        backend=backend,
        keyframe_size=keyframe_size,
        extras={c: _plain(row.values.get(c)) for c in extras_cols},
    )


def resolve_path(base: Path, value: str) -> Path:
    """A manifest path: absolute, or relative to the manifest's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class _MediaChecker:
    """File checks shared across rows: each file is probed once, however many rows name it."""

    def __init__(self, base: Path, enabled: bool):
        self.base = base
        self.enabled = enabled
        # Keyed by the manifest's own strings: large manifests name the same few files over and over.
        self._paths: dict[str, Path] = {}
        self._images: dict[str, tuple[int, int] | str] = {}
        self._videos: dict[str, Any] = {}

    def resolve(self, value: str) -> Path:
        path = self._paths.get(value)
        if path is None:
            path = self._paths[value] = resolve_path(self.base, value)
        return path

    def image(self, row: _Row, column: str, value: str) -> tuple[int, int] | None:
        from semfi_batch.media.frames import image_size

        return self._check(self._images, image_size, row, column, value)

    def video(self, row: _Row, value: str):
        from semfi_batch.media.probe import probe_video

        # (probe_video names a folder or an image sequence given as a source, and says what to use instead)
        return self._check(self._videos, probe_video, row, "source", value, files_only=False)

    def _check(self, cache: dict, probe, row: _Row, column: str, value: str, *, files_only: bool = True):
        """probe(path), or None with the problem recorded against the row (errors are cached too)."""
        if not self.enabled:
            return None
        if value not in cache:
            path = self.resolve(value)
            if files_only and path.exists() and not path.is_file():
                cache[value] = f"{path} is not a regular file"
            else:
                try:
                    cache[value] = probe(path)
                except SemfiError as exc:
                    cache[value] = str(exc)
        result = cache[value]
        if isinstance(result, str):
            row.problem(column, result)
            return None
        return result
