"""Where the source videos of a run's manifest rows are. The run folder keeps a copy of the manifest; a relative
source in it is relative to the manifest the run was given (named in run.json), else to the run folder, never to
the current directory: splice, merge, review and the report all find a row's source here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from semfi_batch.manifest import KeyframePair, Manifest, read_table

RUN_INFO_NAME = "run.json"


def manifest_sources(run_dir: Path, manifest: Manifest) -> dict[str, Path]:
    """The source video of each row of a run's manifest (its copy in the run folder), by pair_id, resolved as
    splice resolves it: a relative source against the manifest the run was given, else the run folder;
    never against the current directory."""
    raw = _raw_column(manifest.path, "source")
    original_dir = _original_manifest_dir(run_dir)
    return {p.pair_id: _resolve_source(p, raw, run_dir, original_dir) for p in manifest.pairs if p.source}


def rows_as_run(run_dir: Path, manifest: Manifest) -> dict[str, KeyframePair]:
    """Each row of a run's manifest (its copy in the run folder) by pair_id, with its source and keyframe images
    resolved as splice resolves a source: a relative path against the manifest the run was
    given, else the run folder. The copy alone resolves them against the run folder, where they are not."""
    sources = manifest_sources(run_dir, manifest)
    original_dir = _original_manifest_dir(run_dir)
    raw = {name: _raw_column(manifest.path, name) for name in ("start_image", "end_image")}
    rows = {}
    for pair in manifest.pairs:
        images = {
            name: _resolve_source(
                dataclasses.replace(pair, source=getattr(pair, name)), raw[name], run_dir, original_dir
            )
            for name in raw
            if getattr(pair, name) is not None
        }
        rows[pair.pair_id] = dataclasses.replace(pair, source=sources.get(pair.pair_id, pair.source), **images)
    return rows


def _original_manifest_dir(run_dir: Path) -> Path | None:
    try:
        info = json.loads((run_dir / RUN_INFO_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    manifest = info.get("manifest") if isinstance(info, dict) else None
    return Path(manifest).parent if isinstance(manifest, str) else None


def _raw_column(path: Path, name: str) -> list[Any]:
    table = read_table(path)
    return table.column(name).to_pylist() if name in table.column_names else []


def _resolve_source(pair: KeyframePair, raw: list[Any], run_dir: Path, original_dir: Path | None) -> Path:
    """Relative sources are relative to the manifest the run was given (run.json), not to its copy."""
    assert pair.source is not None
    value = raw[pair.row] if pair.row < len(raw) else None
    if isinstance(value, str) and not Path(value).expanduser().is_absolute():
        for base in (original_dir, run_dir):
            if base is not None and (base / value).exists():
                return (base / value).resolve()
    return pair.source.resolve() if pair.source.exists() else pair.source
