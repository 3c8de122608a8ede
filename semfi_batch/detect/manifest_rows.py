"""Detected rows of many videos -> one schema-v1 manifest."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from semfi_batch.detect.options import VideoDetection
from semfi_batch.errors import OutputPathError
from semfi_batch.manifest import SCHEMA, write_manifest

# --- manifest -----------------------------------------------------------------------------------------

_ID_KIND = {"cuts": "cut", "damage": "damage", "stride": "stride"}
_EXTRA_TYPES = {
    "reason": pa.string(),
    "score": pa.float64(),
    "start_time": pa.float64(),
    "end_time": pa.float64(),
    "content_val": pa.float64(),
    "damaged_frames": pa.int64(),
    "missing_frames": pa.int64(),
    "shot": pa.int64(),
}
_MODE_EXTRAS = {
    "cuts": ("content_val",),
    "damage": ("damaged_frames", "missing_frames"),
    "stride": ("shot",),
}


def safe_stem(name: str) -> str:
    """A pair_id-safe version of a file stem."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).replace("..", "_")
    stem = re.sub(r"^[^A-Za-z0-9]+", "", stem)[:80]
    return stem or "video"


def manifest_table(detections: Sequence[VideoDetection], manifest_path: Path, mode: str) -> pa.Table:
    """Schema-v1 table of all rows (sources relative to the manifest's folder); valid even when empty."""
    base = Path(manifest_path).parent.resolve()  # the probe resolves video paths the same way
    columns = ["pair_id", "source", "start_frame", "end_frame", "mode", "gap_frames"]
    extras = ["reason", "score", "start_time", "end_time", *_MODE_EXTRAS[mode]]
    data: dict[str, list[Any]] = {name: [] for name in columns + extras}
    used: set[str] = set()
    for det in detections:
        stem = safe_stem(det.path.stem)
        unique, k = stem, 2
        while unique in used:
            unique, k = f"{stem}-{k}", k + 1
        used.add(unique)
        source = os.path.relpath(det.path, base)
        for row in det.rows:
            values = {
                "pair_id": f"{unique}-{_ID_KIND[mode]}-{row.start_frame:06d}",
                "source": source,
                "start_frame": row.start_frame,
                "end_frame": row.end_frame,
                "mode": row.mode,
                "gap_frames": row.gap_frames,
                "reason": row.reason,
                "score": row.score,
                **row.extras,
            }
            for name in data:
                data[name].append(values.get(name))
    fields = [pa.field(name, SCHEMA.field(name).type) for name in columns]
    fields += [pa.field(name, _EXTRA_TYPES[name]) for name in extras]
    schema = pa.schema(fields)
    return pa.Table.from_arrays([pa.array(data[f.name], type=f.type) for f in schema], schema=schema)


def write_detection_manifest(detections: Sequence[VideoDetection], manifest_path: Path, mode: str) -> Path:
    """Write the rows of `detections` as a schema-v1 manifest at `manifest_path` (atomically)."""
    manifest_path = Path(manifest_path)
    if manifest_path.is_dir():
        raise OutputPathError(f"manifest path {manifest_path} is a folder; give a file name such as cuts.parquet")
    return write_manifest(manifest_table(detections, manifest_path, mode), manifest_path)
