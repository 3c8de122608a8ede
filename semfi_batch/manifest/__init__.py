"""Manifest schema v1 (Parquet): one row per keyframe pair. Reading, validation with row/column errors, writing.

Modules: schema (the schema and its limits, KeyframePair, Manifest, pair ids, manifest paths), tables (Parquet and
CSV read into a table, with each CSV row's line and the cells that do not fit; writing; check_writable), rows
(columns retyped and normalised before the checks; Row, which records a row's problems), media_checks (the
images and videos a manifest names), checks (validation of every row; load_manifest).
"""

from __future__ import annotations

from semfi_batch.manifest.checks import load_manifest
from semfi_batch.manifest.schema import (
    KNOWN_COLUMNS,
    MAX_GAP_FRAMES,
    MODES,
    PAIR_ID_RE,
    SCHEMA,
    SCHEMA_VERSION,
    KeyframePair,
    Manifest,
    pair_id_problem,
    resolve_path,
)
from semfi_batch.manifest.tables import check_writable, read_csv_table, read_table, write_manifest

__all__ = [
    "KNOWN_COLUMNS",
    "KeyframePair",
    "MAX_GAP_FRAMES",
    "MODES",
    "Manifest",
    "PAIR_ID_RE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "check_writable",
    "load_manifest",
    "pair_id_problem",
    "read_csv_table",
    "read_table",
    "resolve_path",
    "write_manifest",
]
