"""`semfi-batch detect` (footage -> manifest) and `semfi-batch manifest from-images` (keyframe folder ->
manifest)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from semfi_batch.cli.app import app, console, manifest_app, stdout
from semfi_batch.errors import SemfiError


class Mode(str, Enum):
    cuts = "cuts"
    damage = "damage"
    stride = "stride"


class Detector(str, Enum):
    adaptive = "adaptive"
    content = "content"


DETECT_EPILOG = """Examples:

  semfi-batch detect ../shared/footage/clips/bbb_cuts_720p24_audio.mp4 -o cuts.parquet --mode cuts

  semfi-batch detect clip1.mp4 clip2.mkv -o damage.parquet --mode damage --max-gap 12

  semfi-batch detect anim.mp4 -o twos.parquet --mode stride --every 2
"""

_SHOTS = "Cut detection (all modes)"
_CUTS, _DAMAGE, _STRIDE = "Cuts (--mode cuts)", "Damage (--mode damage)", "Stride (--mode stride)"


@app.command(epilog=DETECT_EPILOG)
def detect(
    videos: Annotated[list[Path], typer.Argument(help="Video files to scan.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Manifest to write (Parquet).", show_default=False)],
    mode: Annotated[Mode, typer.Option(help="What the rows are for.")] = Mode.cuts,
    detector: Annotated[Detector, typer.Option(help="PySceneDetect detector.", rich_help_panel=_SHOTS)] = (
        Detector.adaptive
    ),
    threshold: Annotated[
        float | None,
        typer.Option(help="adaptive: score ratio (3.0); content: content_val (27.0).", rich_help_panel=_SHOTS),
    ] = None,
    min_content_val: Annotated[
        float, typer.Option(help="adaptive: least content_val of a cut.", rich_help_panel=_SHOTS)
    ] = 15.0,
    min_scene_len: Annotated[
        str, typer.Option(help="Shortest shot: frames (15) or seconds (0.6s).", rich_help_panel=_SHOTS)
    ] = "0.6s",
    keep_gradual: Annotated[
        bool,
        typer.Option(
            help="Keep detector cuts that are fade/dissolve steps (dropped by default).", rich_help_panel=_SHOTS
        ),
    ] = False,
    transition_frames: Annotated[
        int, typer.Option(help="Frames to generate in place of each cut.", rich_help_panel=_CUTS)
    ] = 11,
    every: Annotated[
        int | None, typer.Option(help="Keyframe spacing K inside each shot.", rich_help_panel=_STRIDE)
    ] = None,
    max_gap: Annotated[int, typer.Option(help="Longest damaged stretch to repair.", rich_help_panel=_DAMAGE)] = 24,
    blank_std: Annotated[
        float, typer.Option(help="Luma deviation at or below which a frame is blank.", rich_help_panel=_DAMAGE)
    ] = 3.0,
    freeze_threshold: Annotated[
        float, typer.Option(help="Luma change at or below which a frame repeats.", rich_help_panel=_DAMAGE)
    ] = 0.5,
    flash_threshold: Annotated[
        float, typer.Option(help="Luma jump into and out of a flash frame.", rich_help_panel=_DAMAGE)
    ] = 20.0,
    timestamp_gaps: Annotated[
        bool, typer.Option(help="Report holes in the timestamps (missing frames).", rich_help_panel=_DAMAGE)
    ] = True,
    analysis_width: Annotated[int, typer.Option(help="Width frames are analysed at (0: full size).")] = 256,
) -> None:
    """Find hard cuts, damaged stretches or keyframe strides in VIDEO files and write a manifest for `run`.

    cuts: an insert row per hard cut (keyframes: last frame before, first frame after). damage: a replace row
    per stretch of black/blank, flash or frozen frames (keyframes: the good frames around it), an insert row
    per hole in the timestamps. stride: replace rows between keyframes every K frames inside each shot."""
    from semfi_batch.detect import (
        DetectFailure,
        DetectOptions,
        VideoDetection,
        detect_videos,
        write_detection_manifest,
    )

    options = DetectOptions(
        mode=mode.value,
        detector=detector.value,
        threshold=threshold,
        min_content_val=min_content_val,
        min_scene_len=min_scene_len,
        keep_gradual=keep_gradual,
        transition_frames=transition_frames,
        every=every,
        max_gap=max_gap,
        blank_std=blank_std,
        freeze_threshold=freeze_threshold,
        flash_threshold=flash_threshold,
        timestamp_gaps=timestamp_gaps,
        analysis_width=analysis_width,
    )
    options.check()
    from semfi_batch.manifest import check_writable
    from semfi_batch.output_files import check_output_file

    check_output_file(output, (".parquet",), "a Parquet manifest", videos)
    check_writable(output)  # before the analysis, which can take minutes
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeRemainingColumn(),
    )
    # Bars only on a terminal: in logs and pipes the per-video summary lines say it all.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:

        def progress_for(path: Path):
            task = progress.add_task(escape(path.name), total=None)
            return lambda done, total: progress.update(task, completed=done, total=total or None)

        def on_result(result: VideoDetection | DetectFailure) -> None:
            if isinstance(result, DetectFailure):
                progress.console.print(f"[red]error:[/red] {escape(str(result.error))}")
                return
            progress.console.print(escape(_summary(result)))
            for note in result.notes:
                progress.console.print(f"  - {escape(note)}")

        run = detect_videos(videos, options, progress_for=progress_for, on_result=on_result)
    if not run.detections:
        raise SemfiError(f"none of the {len(videos)} videos could be read; no manifest written")
    write_detection_manifest(run.detections, output, options.mode)
    stdout.print(f"wrote {output}: {run.row_count} rows from {len(run.detections)} video(s)")
    if run.failures:
        raise SemfiError(
            f"{len(run.failures)} of {len(videos)} videos could not be read (see above); "
            "the manifest has the rows of the others"
        )


def _summary(d) -> str:
    what = {"cuts": "cuts", "damage": "damaged stretches", "stride": "stride pairs"}[d.mode]
    count = len(d.cuts) + 1
    shots = f", {count} shot{'s' if count != 1 else ''}" if d.mode != "cuts" else ""
    return f"{d.path.name}: {d.info.frame_count} frames{shots}, {len(d.rows)} {what} ({d.fps:.0f} frames/s)"


FROM_IMAGES_EPILOG = """Examples:

  semfi-batch manifest from-images keys/ -o keys.parquet --gap 7

  semfi-batch manifest from-images keys/ -o keys.parquet --sheet keys/exposure.csv

The sheet is a CSV of image,frame (header optional): keys on frames 1 and 5 get 3 in-betweens.
"""


@manifest_app.command("from-images", epilog=FROM_IMAGES_EPILOG)
def from_images(
    directory: Annotated[Path, typer.Argument(help="Folder of keyframe images.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Manifest to write (Parquet).", show_default=False)],
    gap: Annotated[int | None, typer.Option(help="In-between frames for every pair.")] = None,
    sheet: Annotated[
        Path | None, typer.Option(help="Exposure sheet CSV (image, frame) from which each pair's gap follows.")
    ] = None,
) -> None:
    """Make a manifest of insert pairs from a folder of keyframes: consecutive images in name order (or in the
    sheet's frame order) become pairs."""
    from semfi_batch.keyframes import write_keyframe_manifest
    from semfi_batch.output_files import check_output_file

    keys = list(directory.iterdir()) if directory.is_dir() else []
    check_output_file(output, (".parquet",), "a Parquet manifest", [*keys, *([sheet] if sheet else [])])
    result = write_keyframe_manifest(directory, output, gap=gap, sheet=sheet)
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    w, h = result.size
    stdout.print(f"wrote {output}: {result.rows} pairs from {len(result.keys)} keyframes ({w}x{h})")
