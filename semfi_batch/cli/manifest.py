"""`semfi-batch manifest validate|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semfi_batch.cli.app import ManifestArg, console, manifest_app, stdout


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


FROM_OTIO_EPILOG = """Examples:

  semfi-batch manifest from-otio edit.otio -o repairs.parquet

  semfi-batch manifest from-otio reel1.edl -o repairs.parquet --rate 25 --color RED

  semfi-batch manifest from-otio cuts.otio -o cuts.parquet --mode insert --gap 11

Markers (on clips or tracks) and flagged clips (a clip colour) mark frames; each marked stretch becomes a row on
the media file its clip points at. A timeline from `splice --otio/--edl` reads back onto the run's rows: each
marked generated clip becomes the row that made it. EDLs and FCP XML are read through OTIO's adapters where
installed.
"""


@manifest_app.command("from-otio", epilog=FROM_OTIO_EPILOG)
def from_otio(
    timeline: Annotated[Path, typer.Argument(help="Timeline: .otio, or .edl/.xml through OTIO's adapters.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Manifest to write (Parquet).", show_default=False)],
    mode: Annotated[
        str,
        typer.Option(
            help="replace: regenerate the marked frames; insert: a transition at each marked frame (a generated "
            "clip of a splice's timeline keeps its own row's mode and gap)."
        ),
    ] = "replace",
    gap: Annotated[int, typer.Option(help="With --mode insert: frames to generate at each mark.")] = 11,
    color: Annotated[
        str | None, typer.Option(help="Only markers and flagged clips of this colour (RED, GREEN, ...).")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="Frame rate of an EDL (EDLs do not say; e.g. 25, 23.976 or 24000/1001).")
    ] = None,
) -> None:
    """Turn markers and flagged clips of an edit timeline into manifest rows on the media they point at: damage
    marked in an NLE becomes a manifest without retyping frame numbers."""
    from rich.markup import escape

    from semfi_batch.output_files import check_output_file
    from semfi_batch.timeline_manifest import timeline_to_manifest

    check_output_file(output, (".parquet",), "a Parquet manifest", [timeline])
    result = timeline_to_manifest(timeline, output, mode=mode, gap=gap, color=color, rate=rate)
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    files = len({r["source"] for r in result.rows})
    stdout.print(f"wrote {output}: {len(result.rows)} rows on {files} media file(s)")
