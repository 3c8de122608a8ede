"""`semfi-batch run`: run every job of a manifest, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semfi_batch.backends import DEFAULT_BACKEND, BackendOptions
from semfi_batch.cli.app import ManifestArg, app, console, stdout


@app.command(
    epilog="Example: semfi-batch run manifests/examples/demo.parquet --out runs/demo --backend flow",
)
def run(
    manifest: ManifestArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output root. Default: runs/<manifest stem>.")] = None,
    backend: Annotated[
        str,
        typer.Option("--backend", "-b", help="Backend for rows without their own (see `semfi-batch backends`)."),
    ] = DEFAULT_BACKEND,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run again the jobs that failed.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run every job again, finished or not.")] = False,
    device: Annotated[str, typer.Option(help="Device for model backends: auto, cpu, cuda, cuda:N.")] = "auto",
    models_dir: Annotated[Path, typer.Option(help="Folder of model files (semfi, wan-flf2v).")] = Path("models"),
    semfi_ckpt: Annotated[Path, typer.Option(help="SemFi Mixture-of-LoRA checkpoint.")] = Path("ckpts/semfi.ckpt"),
    vram_limit: Annotated[
        float | None, typer.Option(help="GPU memory budget in GB; above it the model is offloaded.")
    ] = None,
    ckpt_every: Annotated[
        int, typer.Option(help="Save denoising state every K steps so a killed job resumes (0: off).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run an interpolation job per manifest row, skipping jobs already done.

    Outputs go to OUT/jobs/<pair_id>/frames/*.png (exactly gap_frames lossless frames), a preview
    OUT/jobs/<pair_id>/clip.mp4, and OUT/metrics.parquet. Kill it at any moment and run the same command
    again to finish the rest. Exit status 1 when any job failed."""
    from semfi_batch.run.engine import run_manifest

    options = BackendOptions(
        device=device,
        models_dir=models_dir,
        semfi_ckpt=semfi_ckpt,
        vram_limit_gb=vram_limit,
        ckpt_every=ckpt_every,
    )
    summary = run_manifest(
        manifest, out, backend=backend, options=options, retry_failed=retry_failed, force=force,
        show_progress=not quiet,
    )  # fmt: skip
    table = Table(title=f"semfi-batch run: {manifest}", show_edge=False)
    for col in ("jobs", "done", "failed", "ran now", "skipped (already finished)", "wall s"):
        table.add_column(col, justify="right")
    table.add_row(
        str(summary.total), str(summary.done), str(summary.failed), str(summary.ran), str(summary.skipped),
        f"{summary.wall_s:.1f}",
    )  # fmt: skip
    stdout.print(table)
    if summary.failures:
        failed = Table(title="failed jobs", show_edge=False)
        failed.add_column("pair_id")
        failed.add_column("error")
        for pair_id, error in summary.failures:
            failed.add_row(pair_id, error)
        stdout.print(failed)
        console.print("re-run with --retry-failed to try the failed jobs again")
    stdout.print(f"outputs: {summary.out}/jobs/<pair_id>/frames  metrics: {summary.metrics}")
    if summary.failed:
        raise typer.Exit(1)
