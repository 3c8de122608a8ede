"""Benchmark: `semfi-batch detect --mode cuts` against PySceneDetect's own CLI (`scenedetect detect-adaptive`)
on the real clips in ../shared/footage, both measured in this run (best of --repeat runs each).

Per clip: the cut list of each (the CLI's mapped to our frame indices by timestamp), whether they agree within
1 frame, and frames per second. The CLI's figure is the one it prints itself ("Processed N frames in S
seconds"): decoding and detecting, without its start-up or opening the video. Ours is the time `detect_video`
takes for the clip inside one `detect_videos` call over all clips (how `semfi-batch detect CLIP...` runs
them): starting ffmpeg, decoding, detecting and placing the frames on the probed frame list, with the probe
of the next clip running meanwhile (the first clip waits for its own).

Totals: all frames over the sum of the per-clip times (processing), and as whole commands
(`scenedetect -i CLIP detect-adaptive list-scenes` once per clip against one
`python -m semfi_batch detect CLIP... -o M.parquet --mode cuts`), start-up included.
Target (issue 3): the same cut list and at least the CLI's frames per second.

Cuts the CLI reports inside fades or dissolves are not cuts for `detect` (issue 3); they are marked "gradual"
where our detector saw the same frame and rejected it as a fade/dissolve step.

    .venv/bin/python bench/detect_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from semfi_batch.detect import DetectOptions, VideoDetection, detect_videos
from semfi_batch.media import probe
from semfi_batch.media.probe import VideoInfo, probe_video

FOOTAGE = Path(__file__).resolve().parents[2] / "shared" / "footage" / "clips"
CLIPS = [
    "bbb_cuts_720p24_audio.mp4",  # 6 hard cuts
    "bbb_720p24_30s_vp8_vorbis.webm",  # titles, a fade-in and a dissolve, then hard cuts
    "bbb_720p25_5s_aac51.mp4",
    "chaplin_640x360_25fps_audio.mp4",
    "bottle_640x360_29.83fps.mp4",  # odd frame rate
    "fire_vfr_handheld_720p_audio.mp4",  # variable frame rate
    "asl_walk_640x480_30fps.mkv",
    "asl_book_640x480_30fps.mkv",
]
SCENEDETECT = Path(sys.executable).with_name("scenedetect")
REPO = Path(__file__).resolve().parents[1]


def cli_cuts(path: Path, info: VideoInfo, work: Path) -> tuple[list[int], float, float]:
    """Cut indices found by `scenedetect detect-adaptive`, its own frames-per-second figure, and wall time."""
    args = [str(SCENEDETECT), "-i", str(path), "-o", str(work), "detect-adaptive", "list-scenes", "-s"]
    args += ["-f", "scenes.csv"]
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    fps = float(re.search(r"average ([\d.]+) FPS", proc.stdout + proc.stderr).group(1))
    with open(work / "scenes.csv", newline="") as fh:
        starts = [float(row["Start Time (seconds)"]) for row in csv.DictReader(fh)]
    # The CLI counts time from the first frame; our indices come from the probed presentation times.
    rel = info.frame_times - info.frame_times[0]
    return [int(np.argmin(np.abs(rel - t))) for t in starts[1:]], fps, wall


def ours(paths: list[Path]) -> tuple[dict[Path, VideoDetection], float]:
    """All clips through `detect_videos` in one call: each clip's detection, and the call's wall time."""
    probe._probe_cached.cache_clear()  # every run probes the files afresh, as a new command would
    t0 = time.perf_counter()
    run = detect_videos(paths, DetectOptions(mode="cuts"))
    seconds = time.perf_counter() - t0
    assert not run.failures, run.failures
    return {d.path: d for d in run.detections}, seconds


def our_command(paths: list[Path], work: Path) -> float:
    """Wall time of one `semfi-batch detect --mode cuts` over all clips, as a user runs it."""
    args = [sys.executable, "-m", "semfi_batch", "detect", *map(str, paths), "-o", str(work / "m.parquet")]
    t0 = time.perf_counter()
    subprocess.run([*args, "--mode", "cuts"], capture_output=True, check=True, cwd=REPO)
    return time.perf_counter() - t0


def compare(theirs: list[int], mine: list[int]) -> tuple[int, list[int], list[int]]:
    """(matched within 1 frame, only theirs, only mine)."""
    left = list(mine)
    only_theirs = []
    for c in theirs:
        hit = next((m for m in left if abs(m - c) <= 1), None)
        if hit is None:
            only_theirs.append(c)
        else:
            left.remove(hit)
    return len(theirs) - len(only_theirs), only_theirs, left


# (title, width) of each printed column
COLUMNS = [("clip", -32), ("frames", 6), ("cli", 4), ("ours", 4), ("same", 4), ("differences", -36),
           ("cli fps", 8), ("ours fps", 8), ("ratio", 5)]  # fmt: skip


def line(*cells: object) -> str:
    """One table line (cells already formatted as they should print)."""
    out = [str(c).ljust(-w) if w < 0 else str(c).rjust(w) for (_, w), c in zip(COLUMNS, cells, strict=True)]
    return "  ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per tool (best is kept)")
    args = parser.parse_args()
    paths = [FOOTAGE / name for name in CLIPS]
    infos = {p: probe_video(p) for p in paths}
    cli_found: dict[Path, list[int]] = {}
    cli_fps = dict.fromkeys(paths, 0.0)
    cli_wall = dict.fromkeys(paths, float("inf"))
    our_fps = dict.fromkeys(paths, 0.0)
    our_call, our_wall = float("inf"), float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for _ in range(args.repeat):
            for p in paths:
                cli_found[p], fps, wall = cli_cuts(p, infos[p], work)
                cli_fps[p], cli_wall[p] = max(cli_fps[p], fps), min(cli_wall[p], wall)
            found, seconds = ours(paths)
            our_call = min(our_call, seconds)
            for p, det in found.items():
                our_fps[p] = max(our_fps[p], det.fps)
            our_wall = min(our_wall, our_command(paths, work))
        header = line(*(title for title, _ in COLUMNS))
        print(header)
        print("-" * len(header))
        all_same = True
        for p in paths:
            theirs = cli_found[p]
            det = found[p]
            mine, gradual = [c.index for c in det.cuts], [c.index for c in det.gradual]
            _, only_theirs, only_mine = compare(theirs, mine)
            notes = [f"cli {c} (gradual)" if any(abs(c - g) <= 1 for g in gradual) else f"cli {c}" for c in only_theirs]
            notes += [f"ours {c}" for c in only_mine]
            same = not [x for x in notes if "gradual" not in x]
            all_same &= same
            cells = [p.name, infos[p].frame_count, len(theirs), len(mine), "yes" if same else "NO"]
            cells += [
                ", ".join(notes) or "-",
                f"{cli_fps[p]:.0f}",
                f"{our_fps[p]:.0f}",
                f"{our_fps[p] / cli_fps[p]:.2f}",
            ]
            print(line(*cells))
    frames = sum(i.frame_count for i in infos.values())
    # Both totals from the best time per clip, so neither side gains from how the best runs are picked.
    cli_total = frames / sum(infos[p].frame_count / cli_fps[p] for p in paths)
    ours_total = frames / sum(infos[p].frame_count / our_fps[p] for p in paths)
    print("-" * len(header))
    print(
        line(
            "all clips",
            frames,
            "",
            "",
            "",
            "",
            f"{cli_total:.0f}",
            f"{ours_total:.0f}",
            f"{ours_total / cli_total:.2f}",
        )
    )
    print()
    print(f"cut lists {'agree' if all_same else 'DIFFER'} within 1 frame (CLI cuts marked gradual are fades/dissolves)")
    print(f"ours in one detect_videos call: {frames / our_call:.0f} fps (wall time of the whole call, best run)")
    cmd_cli, cmd_ours = frames / sum(cli_wall.values()), frames / our_wall
    for label, a, b in (("processing", ours_total, cli_total), ("commands", cmd_ours, cmd_cli)):
        verdict = "meets" if a >= b else "BELOW"
        print(
            f"{label:10s}: ours {a:5.0f} fps, scenedetect CLI {b:5.0f} fps, ratio {a / b:.2f} ({verdict} the 1x target)"
        )


if __name__ == "__main__":
    main()
