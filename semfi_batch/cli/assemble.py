"""`semfi-batch assemble`: an image-pair run as one clip or PNG sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semfi_batch.cli.app import app, console, stdout


@app.command(epilog="Example: semfi-batch assemble runs/keys -o keys.mp4 --fps 12")
def assemble(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `semfi-batch run` on an image-pair manifest.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Clip to write: .mp4, .mkv, .mov or .gif; a folder name (no suffix): PNG frames."
        ),
    ],
    fps: Annotated[
        str, typer.Option(help="Frame rate: a number (23.976 and 29.97 mean 24000/1001 and 30000/1001) or a/b.")
    ] = "12",
    codec: Annotated[
        str, typer.Option(help="h264, or prores (422 HQ; 4444 when the frames have alpha) in .mov/.mkv.")
    ] = "h264",
    accepted_only: Annotated[
        bool,
        typer.Option(
            "--accepted-only", help="Only in-betweens accepted in `semfi-batch review` (rejected: never; key held)."
        ),
    ] = False,
) -> None:
    """Put keyframes and their in-betweens in order into one clip (animation keyframes -> finished clip).

    A pair whose job failed or has not run, or whose in-betweens were rejected in `semfi-batch review`, holds
    its start key for its in-between frames, so timing is kept."""
    from semfi_batch.assemble import assemble_run

    summary = assemble_run(run_dir, output, fps, codec=codec, accepted_only=accepted_only)
    rate = summary.rate
    shown = f"{rate.numerator}/{rate.denominator}" if rate.denominator != 1 else str(rate.numerator)
    stdout.print(f"{summary.out}: {summary.frames} frames at {shown} fps, {summary.generated} generated")
    for note in summary.notes:
        console.print(note)
    if summary.held:
        console.print(f"{len(summary.held)} pair(s) without in-betweens (key held): {', '.join(summary.held[:10])}")
