"""`semfi-batch splice`: put a run's generated frames back into its source videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from semfi_batch.cli.app import app, console, stdout


@app.command(
    epilog=(
        "Example: semfi-batch splice runs/demo --out-dir runs/demo/spliced --audio crossfade "
        "--otio runs/demo/edits.otio"
    ),
)
def splice(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `semfi-batch run` (holds manifest.parquet).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output video file (runs with one source video).")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Folder for <source>.spliced.<ext> files. Default: RUN_DIR/spliced."),
    ] = None,
    audio: Annotated[
        str, typer.Option(help="What fills the time an insert row adds to the audio: silence or crossfade.")
    ] = "silence",
    reencode: Annotated[
        bool, typer.Option("--reencode", help="Re-encode the whole video instead of only the touched GOPs.")
    ] = False,
    accepted_only: Annotated[
        bool,
        typer.Option("--accepted-only", help="Splice only jobs accepted in `semfi-batch review` (rejected: never)."),
    ] = False,
    otio: Annotated[
        Path | None, typer.Option("--otio", help="Also write an OpenTimelineIO timeline of the result (.otio).")
    ] = None,
    edl: Annotated[
        Path | None, typer.Option("--edl", help="Also write a CMX 3600 EDL of the result (one source video).")
    ] = None,
) -> None:
    """Write one new video per source video of the run, with every finished job applied.

    replace rows swap the frames between their keyframes for the generated ones (timing, audio and every other
    frame unchanged; audio packets copied). insert rows put the generated frames between their keyframes and
    add the same time to the audio (silence, or --audio crossfade), so everything after stays in sync.
    Untouched GOPs are stream-copied; only GOPs holding generated frames are re-encoded, with the source's
    codec, profile, pixel format and colour tags. Audio, subtitles, chapters and tags are kept. Sources are
    never modified; outputs are written under a temporary name and renamed into place. Rows whose job failed
    or is missing, and jobs rejected in `semfi-batch review`, leave their range untouched and are listed at the
    end. Each source is spliced on its own: one that fails is named with the reason, the others still go on, and
    the exit status is 1."""
    from semfi_batch.splice import SpliceOptions, splice_run

    if output is not None and out_dir is not None:
        raise typer.BadParameter("give -o/--output or --out-dir, not both")
    from semfi_batch.output_files import check_output_file
    from semfi_batch.run.layout import check_outside_state

    for path, suffix, kind in ((otio, ".otio", "an OpenTimelineIO timeline"), (edl, ".edl", "a CMX 3600 EDL")):
        if path is not None:
            check_output_file(path, (suffix,), kind)
            check_outside_state(path, run_dir)
    if edl is not None:
        from semfi_batch.splice import read_run
        from semfi_batch.splice.otio_export import check_edl_support

        sources = list(read_run(run_dir).sources)
        check_edl_support(len(sources), sources[0] if len(sources) == 1 else None)  # fail before any encoding
    options = SpliceOptions(audio=audio, reencode=reencode, accepted_only=accepted_only)
    summary = splice_run(run_dir, output=output, out_dir=out_dir, options=options)
    table = Table(title=f"semfi-batch splice: {run_dir}", show_edge=False)
    for col, justify in (
        ("source", "left"),
        ("output", "left"),
        ("method", "left"),
        ("edits", "right"),
        ("left out", "right"),
        ("frames", "right"),
        ("re-encoded", "right"),
        ("wall s", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]  # fmt: skip
    for r in summary.results:
        table.add_row(
            escape(r.source.name), escape(str(r.output)), r.method, str(len(r.applied)), str(len(r.skipped)),
            str(r.frames_out), str(r.frames_reencoded), f"{r.wall_s:.1f}",
        )  # fmt: skip
    for f in summary.failed:
        table.add_row(escape(f.source.name), "-", "[red]failed[/red]", "", "", "", "", "")
    stdout.print(table)
    for r in summary.results:
        stdout.print(f"{escape(r.output.name)}: {escape(r.note)}; {escape(r.audio_note)}", highlight=False)
        for what in r.dropped_streams:
            console.print(f"[yellow]warning:[/yellow] {escape(r.output.name)}: not carried over: {escape(what)}")
    for s in summary.all_skipped:
        where = f" ({escape(s.source.name)})" if s.source else ""
        console.print(f"[yellow]left out:[/yellow] {escape(s.pair_id)}{where}: {escape(s.why)}; its range is untouched")
    if otio is not None or edl is not None:
        from semfi_batch.splice.otio_export import write_edl, write_otio

        if otio is not None:
            write_otio(summary, otio)
            stdout.print(f"timeline: {escape(str(otio))}")
        if edl is not None and summary.results:
            write_edl(summary, edl)
            stdout.print(f"EDL: {escape(str(edl))}")
    if summary.failed:
        for f in summary.failed:
            console.print(f"[red]error:[/red] {escape(str(f.source))}: {escape(f.why)}")
        done = len(summary.results)
        console.print(
            f"{len(summary.failed)} of {done + len(summary.failed)} source videos failed; the others are done"
        )
        raise typer.Exit(1)
