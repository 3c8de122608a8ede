"""`semfi-batch manifest validate|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semfi_batch.cli.app import ManifestArg, manifest_app, stdout


@manifest_app.command(epilog="Example: semfi-batch manifest validate manifests/examples/images.parquet")
def validate(manifest: ManifestArg) -> None:
    """Check a manifest: every problem is listed with its row, pair_id and column. Exit 0 when valid, 2 when not."""
    from semfi_batch.manifest import load_manifest

    m = load_manifest(manifest)
    frames = sum(p.gap_frames for p in m.pairs)
    stdout.print(f"{manifest}: valid, {len(m.pairs)} pairs, {frames} frames to generate")


@manifest_app.command(epilog="Example: semfi-batch manifest show manifests/examples/images.parquet --limit 20")
def show(
    manifest: ManifestArg,
    limit: Annotated[int, typer.Option(help="Rows to show (0: all).")] = 50,
) -> None:
    """Print a manifest as a readable table (no validation; see `manifest validate`)."""
    from semfi_batch.manifest import read_table

    table = read_table(manifest)
    rows = table.to_pylist() if limit <= 0 else table.slice(0, limit).to_pylist()
    cols = [c for c in table.column_names if any(r.get(c) not in (None, "") for r in rows)] or table.column_names
    view = Table(title=f"{manifest} ({table.num_rows} rows)", show_edge=False)
    for col in cols:
        # Headers never wrap (a column is at least as wide as its name); long cells fold instead.
        view.add_column(col, no_wrap=col == "pair_id", overflow="fold", min_width=len(col))
    for row in rows:
        view.add_row(*(_cell(c, row.get(c)) for c in cols))
    stdout.print(view)
    if limit > 0 and table.num_rows > limit:
        stdout.print(f"... {table.num_rows - limit} more rows (--limit 0 shows all)")


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if column in ("source", "start_image", "end_image"):
        return Path(str(value)).name  # the folder is the same on most rows; the file name tells them apart
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"  # detector scores: 41.23, not 41.2345678912
    return str(value)
