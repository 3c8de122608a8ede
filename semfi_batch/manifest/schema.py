"""Manifest schema v1 (Parquet): one row per keyframe pair. The schema and its limits, the validated row
(KeyframePair) and manifest, pair ids and manifest paths.

The schema is documented for users in manifests/README.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

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
# Each known column's kind, "string", "int" or "float": how a CSV cell, or a cell of a column of another type,
# is read.
COLUMN_KINDS = {name: ("string" if pa.types.is_string(SCHEMA.field(name).type) else
                       "int" if pa.types.is_integer(SCHEMA.field(name).type) else "float")
                for name in KNOWN_COLUMNS}  # fmt: skip


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


def resolve_path(base: Path, value: str) -> Path:
    """A manifest path: absolute, or relative to the manifest's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
