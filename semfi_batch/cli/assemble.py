"""`semfi-batch assemble`: an image-pair run as one clip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semfi_batch.cli.app import app, console, stdout


@app.command(epilog="Example: semfi-batch assemble runs/keys -o keys.mp4 --fps 12")
def assemble(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `semfi-batch run` on an image-pair manifest.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Clip to write (.mp4).")],
    fps: Annotated[float, typer.Option(min=0.1, help="Frame rate of the clip.")] = 12.0,
) -> None:
    """Put keyframes and their in-betweens in order into one clip (animation keyframes -> finished clip).

    A pair whose job failed or has not run holds its start key for its in-between frames, so timing is kept."""
    from semfi_batch.assemble import assemble_run

    summary = assemble_run(run_dir, output, fps)
    stdout.print(f"{summary.out}: {summary.frames} frames at {fps:g} fps, {summary.generated} generated")
    if summary.held:
        console.print(f"{len(summary.held)} pair(s) without in-betweens (key held): {', '.join(summary.held[:10])}")
