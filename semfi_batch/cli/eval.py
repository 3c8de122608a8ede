"""`semfi-batch eval` (held-out-frame quality per backend) and `semfi-batch report` (an HTML page)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from semfi_batch.backends import BackendOptions
from semfi_batch.backends.base import DEFAULT_MODELS_DIR, DEFAULT_SEMFI_CKPT
from semfi_batch.cli.app import app, console, stdout


@app.command(
    "eval",
    epilog=(
        "Example: semfi-batch eval ../shared/footage/clips/bbb_720p25_5s_aac51.mp4 "
        "../shared/footage/frames/sintel_demo --backends flow,blend,minterpolate --drop every:2 -o eval.parquet"
    ),
)
def eval_command(
    clips: Annotated[list[Path], typer.Argument(help="Video files or folders of consecutive frames.")],
    backends: Annotated[
        str, typer.Option("--backends", "-b", help="Comma-separated backends to compare (see `semfi-batch backends`).")
    ] = "flow,blend,minterpolate",
    drop: Annotated[
        str,
        typer.Option(
            help="Frames to hold out: every:K keeps frames 0, K, 2K... and rebuilds the K-1 between "
            "(every:2 drops every second frame); gaps:N drops N consecutive frames at spread-out places."
        ),
    ] = "every:2",
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file for the results.")] = Path("eval.parquet"),
    max_gaps: Annotated[
        int | None,
        typer.Option(help="At most this many gaps per clip, evenly spread (default: all for every:K, 8 for gaps:N)."),
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="Evaluate at WIDTHxHEIGHT (e.g. 320x180) instead of full size.")
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="Use only the first N frames of each clip.")] = None,
    device: Annotated[str, typer.Option(help="Device for model backends: auto, cpu, cuda, cuda:N.")] = "auto",
    models_dir: Annotated[Path, typer.Option(help="Folder of model files (semfi, wan-flf2v).")] = DEFAULT_MODELS_DIR,
    semfi_ckpt: Annotated[Path, typer.Option(help="SemFi Mixture-of-LoRA checkpoint.")] = DEFAULT_SEMFI_CKPT,
    vram_limit: Annotated[float | None, typer.Option(help="GPU memory budget in GB.")] = None,
) -> None:
    """Drop frames from real clips, rebuild them with each backend, and compare with the originals.

    Writes one row per (clip, gap, backend): PSNR and SSIM (gap mean and worst frame), warp error
    (temporal consistency along the original motion; lower is steadier) and seconds per frame.

    Gaps never span a scene cut. Prints a summary per backend; `semfi-batch report EVAL.parquet` draws it.
    """
    from semfi_batch.evaluate import DropSpec, EvalSettings, evaluate, read_eval, summarize, write_eval
    from semfi_batch.output_files import check_output_file

    check_output_file(out, (".parquet",), "Parquet results", clips)

    settings = EvalSettings(
        backends=[b.strip() for b in backends.split(",") if b.strip()],
        drop=DropSpec.parse(drop),
        max_gaps=max_gaps,
        size=_parse_size(size),
        max_frames=max_frames,
        options=BackendOptions(device=device, models_dir=models_dir, semfi_ckpt=semfi_ckpt, vram_limit_gb=vram_limit),
    )

    def progress(report) -> None:
        console.print(
            f"{report.clip.path}: {report.frames} frames, {report.shots} shot(s), {report.gaps} gap(s) of "
            f"{settings.drop.gap_frames} frame(s) x {len(settings.backends)} backend(s)",
            markup=False,
        )

    rows = evaluate(clips, settings, on_clip=progress)
    path = write_eval(rows, out, settings)
    frame, _ = read_eval(path)
    table = summary_table(summarize(frame), f"held-out frames ({settings.drop}), {len(clips)} clip(s)")
    stdout.print(table, width=None if stdout.is_terminal else 150)  # logs: no wrapping at 80 columns
    stdout.print(f"results: {path} ({len(rows)} rows)  page: semfi-batch report {path}")
    failed = frame[frame["status"] != "done"]
    if len(failed):
        first = failed.iloc[0]
        console.print(
            f"[red]error:[/red] {len(failed)} of {len(frame)} gaps failed (first: "
            f"{escape(str(first['backend']))} on {escape(str(first['clip_name']))}: {escape(str(first['error']))})",
            markup=True,
        )
        raise typer.Exit(1)


def summary_table(summaries, title: str) -> Table:
    """The per-backend summary as a rich table; the best backend (highest mean PSNR) is starred."""
    from semfi_batch.evaluate import format_seconds

    table = Table(
        title=title,
        show_edge=False,
        caption="* best: highest mean PSNR of the backends that made every gap; worst: the clip with the lowest "
        "mean PSNR",
    )
    heads = ("backend", "gaps", "PSNR dB", "worst", "SSIM", "worst", "warp (originals)", "s/frame", "worst clip")
    for col in heads:
        table.add_column(col, justify="left" if col in ("backend", "worst clip") else "right")
    for s in summaries:
        table.add_row(
            f"* {s.backend}" if s.best else f"  {s.backend}",
            f"{s.gaps}" + (f" ({s.failed} failed)" if s.failed else ""),
            _num(s.psnr, 2),
            _num(s.worst_psnr, 2),
            _num(s.ssim, 4),
            _num(s.worst_ssim, 4),
            f"{_num(s.warp_error, 2)} ({_num(s.warp_error_truth, 2)})",
            format_seconds(s.s_per_frame),
            s.worst_clip,
        )
    return table


def _num(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 16 or int(m.group(2)) < 16:
        raise typer.BadParameter(
            f"{text!r}: expected WIDTHxHEIGHT of at least 16x16, e.g. 320x180", param_hint="--size"
        )
    return int(m.group(1)), int(m.group(2))


@app.command(
    "report",
    epilog="Example: semfi-batch report runs/demo   or   semfi-batch report eval.parquet -o eval.html",
)
def report_command(
    source: Annotated[Path, typer.Argument(help="A run's output folder, or an eval Parquet file.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file. Default: RUN_DIR/report.html, or EVAL.html beside EVAL.parquet."),
    ] = None,
    max_sheets: Annotated[int, typer.Option(help="Contact sheets for at most this many jobs.")] = 200,
) -> None:
    """Write one self-contained HTML page with plots and pictures embedded (works offline).

    For a run folder: summary, time per job, quality, a contact sheet per job and the failures.
    For an eval file: the per-backend comparison and the held-out frames side by side.
    """
    from semfi_batch.output_files import check_output_file
    from semfi_batch.report import write_report

    if out is not None:
        check_output_file(out, (".html", ".htm"), "an HTML page", [source])
    path = write_report(source, out, max_sheets=max_sheets)
    stdout.print(f"report: {path}")
