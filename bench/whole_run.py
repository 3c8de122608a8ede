"""Benchmark: the whole `semfi-batch run` against its own backend and against ffmpeg minterpolate (issue 16).

Part 1, real clips at their own sizes. A stretch of each clip of ../shared/footage is decoded once; its even
frames become PNG keyframes and an image-pair manifest (gap 1: every other frame dropped and rebuilt). Timed,
in the same run:
- backend only: the `flow` backend on the keyframes already in memory (no I/O);
- whole run: `semfi-batch run` as a user types it (CLI start, keyframe reading, PNG writing, records, metrics,
  report), in a fresh process;
- minterpolate: ffmpeg reading the same PNG keyframes and writing the rebuilt frames as PNGs (whole process);
- a no-op resume (the same command again);
- the engine's own time against the backend's: everything each worker did from its first job started to its
  last one published (events.jsonl) beyond the backend's time (claims, keys, writes, records, publishing,
  leases, the ledger), and the part of it the job records' `timing` holds (keys, write, record);
- the PNG work no run can skip (a frame encoded and a key decoded per job, in-process): the least engine
  share PNG frames allow;
- at 720p, the same run as one worker (`--workers 1`), which on a machine of two CPUs or more has a thread to
  spare for its writes and the next job's keys (ClaimSettings.spare_thread): its engine share;
- the same run with SEMFI_PNG_LEVEL=0 (PNG rows stored, not deflated): its engine share at 720p, its speed
  and the size of its frames against the default level's.
Targets: whole run >= 2x minterpolate's throughput; the engine's own time per job < 20% of the backend's
compute at 720p; a no-op resume < 0.6 s.

Part 2: peak RSS of a flow run at 1080p and 4K (targets: under 1 GB and 2.5 GB).

Part 3 (--film-rows, 0 to skip): a 1,000-row manifest over one 10-minute 720p film (keyframes every 12 frames,
11 frames replaced per row): the whole run and its keyframe extraction time vs a plain ffmpeg decode of the film.

    .venv/bin/python bench/whole_run.py [--frames 121] [--film-rows 1000] [--film-minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.flow_vs_minterpolate import decode  # noqa: E402
from bench.splice_bench import build_long_clip  # noqa: E402
from semfi_batch.backends import backend_class  # noqa: E402
from semfi_batch.backends.base import InterpolationRequest  # noqa: E402
from semfi_batch.manifest import load_manifest, write_manifest  # noqa: E402
from semfi_batch.media.frames import write_png  # noqa: E402
from semfi_batch.media.keyframe_cache import fill_for_pairs, keyframe_cache_for  # noqa: E402
from semfi_batch.media.png import decode_png, encode_png  # noqa: E402
from semfi_batch.media.probe import probe_video  # noqa: E402
from semfi_batch.run.worker import keep_freed_memory  # noqa: E402

FOOTAGE = REPO.parent / "shared" / "footage" / "clips"
# (clip, first frame of a stretch without cuts)
CLIPS = [
    ("bbb_720p25_5s_aac51.mp4", 0),
    ("bbb_cuts_720p24_audio.mp4", 130),
    ("bbb_720p24_30s_vp8_vorbis.webm", 300),
    ("fire_vfr_handheld_720p_audio.mp4", 0),
    ("chaplin_640x360_25fps_audio.mp4", 0),
    ("bottle_640x360_29.83fps.mp4", 0),
    ("asl_book_640x480_30fps.mkv", 0),
]
CLI = [sys.executable, "-m", "semfi_batch"]
TIMING_KEYS = ("keys_s", "backend_s", "write_s", "record_s")


def timed(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    return time.perf_counter() - t0


def backend_only(keys: np.ndarray) -> float:
    backend = backend_class("flow")()
    t0 = time.perf_counter()
    for a, b in zip(keys, keys[1:]):
        list(backend.interpolate(InterpolationRequest("b", a, b, 1, 0)))
    return time.perf_counter() - t0


def png_floor(keys: np.ndarray, paths: list[Path]) -> float:
    """Seconds of the PNG work no run of these jobs can skip, in this process, nothing written: each job's
    frame encoded once (at the default level) and one key read and decoded (the next job's start is this
    one's end). Freed memory is kept for reuse as a worker keeps it (keep_freed_memory): else every buffer
    comes back as fresh pages, faulted in on first touch (a 720p key's decode took 10-14 ms so, 5.7 ms
    with it, on this project's 2-core machine)."""
    keep_freed_memory()
    t0 = time.perf_counter()
    for key in keys[1:]:
        encode_png(key)
    for path in paths[1:]:
        decode_png(path.read_bytes(), key.size)
    return time.perf_counter() - t0


def minterpolate(keys_dir: Path, out_dir: Path, fps: float) -> float:
    out_dir.mkdir()
    args = ["ffmpeg", "-nostdin", "-v", "error", "-framerate", f"{fps / 2}", "-i", str(keys_dir / "%06d.png")]
    args += ["-vf", f"minterpolate=fps={fps}:mi_mode=mci", str(out_dir / "%06d.png")]
    return timed(args)


def engine_share(timings: list[dict[str, float]]) -> float:
    """The engine's own time (keys, writes, records) over the backend's, summed over runs' record timings."""
    engine = sum(sum(t.get(k, 0.0) for k in TIMING_KEYS if k != "backend_s") for t in timings)
    return engine / sum(t["backend_s"] for t in timings)


def busy_share(rows: list[dict]) -> float:
    """All the workers' time besides the backend's (worker_busy_s less backend_s) over the backend's."""
    backend = sum(r["timing"]["backend_s"] for r in rows)
    return (sum(r["busy_s"] for r in rows) - backend) / backend


def record_timing(run: Path) -> dict[str, float]:
    """Sum of the job records' timing breakdown (empty when the records have none)."""
    total: dict[str, float] = {}
    for record in (run / "jobs").glob("*/record.json"):
        timing = json.loads(record.read_text()).get("timing") or {}
        for key, value in timing.items():
            total[key] = total.get(key, 0.0) + float(value)
    return total


def worker_busy_s(run: Path) -> float:
    """Seconds the run's workers spent on their jobs, summed over workers: from each worker's first job
    started to its last one published (events.jsonl). Beyond the backend's own time this holds everything
    the records' timing leaves out: claiming, publishing, leases, the ledger."""
    spans: dict[str, list[float]] = {}
    for line in (run / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        spans.setdefault(event["worker"], []).append(event["t"])
    return sum(max(times) - min(times) for times in spans.values())


def clip_row(work: Path, name: str, first: int, frames: int) -> dict:
    path = FOOTAGE / name
    info = probe_video(path)
    count = min(frames, info.frame_count - first)
    count -= 1 - count % 2  # odd: both ends are kept frames
    decoded = decode(path, first, count, info.width, info.height)
    keys = decoded[0::2]
    folder = work / name.split(".")[0]
    keys_dir = folder / "keys"
    keys_dir.mkdir(parents=True)
    paths = []
    for i, key in enumerate(keys):
        paths.append(keys_dir / f"{i:06d}.png")
        write_png(paths[-1], key)
    rows = [
        {"pair_id": f"p{i:04d}", "start_image": str(a), "end_image": str(b), "gap_frames": 1}
        for i, (a, b) in enumerate(zip(paths, paths[1:]))
    ]
    manifest = write_manifest(rows, folder / "m.parquet")
    n = len(rows)
    backend_s = backend_only(keys)
    floor_s = png_floor(keys, paths)
    run_cmd = [*CLI, "run", str(manifest), "--out", str(folder / "run"), "--backend", "flow", "--quiet"]
    run_s = timed(run_cmd)
    noop_s = timed(run_cmd)  # answered from the run's finished stamp
    (folder / "run" / "finished.json").unlink()
    noop_full_s = timed(run_cmd)  # the normal path: plans and checks every job
    mci_s = minterpolate(keys_dir, folder / "mci", round(info.avg_fps, 3))
    # The same run with stored PNG rows (SEMFI_PNG_LEVEL=0: no deflate, larger files), for the trade-off.
    stored_cmd = [*CLI, "run", str(manifest), "--out", str(folder / "run_stored"), "--backend", "flow", "--quiet"]
    stored_s = timed(stored_cmd, env={**os.environ, "SEMFI_PNG_LEVEL": "0"})
    # At 720p, the same run as one worker: where the machine has a second CPU, that worker has a thread to spare
    # for its writes and the next keys (ClaimSettings.spare_thread).
    spare = None
    if (info.width, info.height) == (1280, 720) and (os.cpu_count() or 1) >= 2:
        timed([*CLI, "run", str(manifest), "--out", str(folder / "run_spare"), "--backend", "flow", "--quiet",
               "--workers", "1"])  # fmt: skip
        spare = {"timing": record_timing(folder / "run_spare"), "busy_s": worker_busy_s(folder / "run_spare")}
    frame_bytes = [
        sum(f.stat().st_size for f in (folder / run / "jobs").glob("*/frames/*.png")) for run in ("run", "run_stored")
    ]
    return {
        "clip": name, "size": f"{info.width}x{info.height}", "n": n, "backend_fps": n / backend_s,
        "run_fps": n / run_s, "mci_fps": n / mci_s, "noop_s": noop_s, "noop_full_s": noop_full_s, "run_s": run_s,
        "backend_s": backend_s, "png_floor_s": floor_s,
        "timing": record_timing(folder / "run"), "busy_s": worker_busy_s(folder / "run"),
        "stored_fps": n / stored_s, "stored_timing": record_timing(folder / "run_stored"),
        "stored_size_ratio": frame_bytes[1] / max(1, frame_bytes[0]), "spare": spare,
    }  # fmt: skip


def film_part(work: Path, cache: Path, rows: int, minutes: float) -> None:
    film = build_long_clip(cache, minutes)
    info = probe_video(film)
    step = 12
    rows = min(rows, (info.frame_count - 1) // step)
    data = [
        {"pair_id": f"r{i:05d}", "source": str(film), "start_frame": i * step, "end_frame": (i + 1) * step}
        for i in range(rows)
    ]
    manifest = write_manifest(data, work / "film.parquet")
    decode_s = timed(["ffmpeg", "-nostdin", "-v", "error", "-i", str(film), "-map", "0:v:0", "-f", "null", "-"])
    # The run's own first step, timed apart: every keyframe into RUN/cache/keyframes in one forward decode
    # (fill_for_pairs, as run_manifest calls it); the run then finds them there.
    root = work / "film_run"
    t0 = time.perf_counter()
    fill_for_pairs(keyframe_cache_for(root), load_manifest(manifest).pairs)
    extract_s = time.perf_counter() - t0
    run_s = extract_s + timed([*CLI, "run", str(manifest), "--out", str(root), "--backend", "flow", "--quiet"])
    timing = record_timing(root)
    frames = rows * (step - 1)
    print()
    print(f"film: {film.name}, {info.width}x{info.height}, {info.frame_count} frames; {rows} rows, {frames} frames")
    print(f"  plain ffmpeg decode of the film: {decode_s:8.1f} s")
    print(f"  keyframe extraction ({rows + 1} keys, one decode, stored as PNG): {extract_s:8.1f} s "
          f"({extract_s / decode_s:.2f}x decode)")  # fmt: skip
    print(f"  whole run (flow), extraction included: {run_s:8.1f} s  ({frames / run_s:.1f} frames/s)")
    print("  where the jobs' time goes (sum over the workers):")
    for key in TIMING_KEYS:
        if key in timing:
            print(f"    {key:10} {timing[key]:8.1f} s")
    if timing.get("backend_s"):
        # Eleven frames written per job against one flow field and eleven warps: the PNG writes weigh more here
        # than in the clips' one-frame jobs.
        print(f"  engine's own time / flow compute: {engine_share([timing]):.3f} ({step - 1} frames written per job)")


def memory_part(work: Path) -> None:
    """Peak RSS of a flow run at 1080p and 4K: two image pairs (3 frames each) made from a real 720p clip
    scaled up, run in one worker process (each --workers process holds about as much)."""
    clip = FOOTAGE / "bbb_720p25_5s_aac51.mp4"
    if not clip.exists():
        return
    print()
    print("peak memory of a flow run (one worker; each worker process holds about as much):")
    for (w, h), target in (((1920, 1080), 1024), ((3840, 2160), 2560)):
        folder = work / f"mem{w}"
        folder.mkdir()
        pattern = folder / "%02d.png"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-vf", f"select='not(mod(n,4))',scale={w}:{h}:"
             "flags=lanczos", "-fps_mode", "passthrough", "-frames:v", "3", str(pattern)],
            check=True,
        )  # fmt: skip
        keys = sorted(folder.glob("*.png"))
        rows = [
            {"pair_id": f"p{i}", "start_image": str(a), "end_image": str(b), "gap_frames": 3}
            for i, (a, b) in enumerate(zip(keys, keys[1:]))
        ]
        manifest = write_manifest(rows, folder / "m.parquet")
        cmd = [*CLI, "run", str(manifest), "--out", str(folder / "run"), "--backend", "flow", "--quiet"]
        probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        probe += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        out = subprocess.run([sys.executable, "-c", probe, *cmd, "--workers", "1"], check=True, capture_output=True)
        peak_mb = int(out.stdout.split()[-1]) / 1024
        verdict = "MET" if peak_mb < target else "NOT MET"
        print(f"  {w}x{h}: peak RSS {peak_mb:7.0f} MB (target < {target} MB: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--frames", type=int, default=121, help="odd number of frames per clip stretch (fewer where the clip is short)"
    )
    parser.add_argument("--film-rows", type=int, default=1000, help="rows of the long-film part (0: skip it)")
    parser.add_argument("--film-minutes", type=float, default=10.0)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "semfi-batch" / "bench",
    )
    args = parser.parse_args()
    if not FOOTAGE.exists():
        raise SystemExit(f"real footage not found: {FOOTAGE}")
    work = Path(tempfile.mkdtemp(prefix="whole-run-bench-"))
    try:
        rows = [clip_row(work, name, first, args.frames) for name, first in CLIPS if (FOOTAGE / name).exists()]
        head = f"{'clip':34} {'size':9} {'n':>3} | {'backend':>7} {'run':>6} {'run/bk':>6} | {'mci':>6} {'run/mci':>7}"
        head += f" | {'no-op s':>7} {'full':>6} | engine/backend"
        print("frames per second (every other frame dropped and rebuilt; flow backend):")
        print(head)
        print("-" * len(head))
        for r in rows:
            share = f"{busy_share([r]):.2f}" if r["timing"].get("backend_s") else "n/a"
            print(
                f"{r['clip']:34} {r['size']:9} {r['n']:>3} | {r['backend_fps']:7.2f} {r['run_fps']:6.2f} "
                f"{r['run_fps'] / r['backend_fps']:6.2f} | {r['mci_fps']:6.2f} {r['run_fps'] / r['mci_fps']:7.2f} "
                f"| {r['noop_s']:7.2f} {r['noop_full_s']:6.2f} | {share}"
            )
        ratio = float(np.mean([r["run_fps"] / r["mci_fps"] for r in rows]))
        noop = max(r["noop_s"] for r in rows)
        noop_full = max(r["noop_full_s"] for r in rows)
        print("-" * len(head))
        print("where the time goes (sum over all clips, from the job records):")
        total: dict[str, float] = {}
        for r in rows:
            for key, value in r["timing"].items():
                total[key] = total.get(key, 0.0) + value
        print("  " + ("  ".join(f"{k} {v:.2f}" for k, v in sorted(total.items())) or "no timing in the records"))
        hd = [r for r in rows if r["size"] == "1280x720" and r["timing"].get("backend_s")]
        if hd:
            share = engine_share([r["timing"] for r in hd])
            whole = busy_share(hd)
            verdict = "MET" if whole < 0.2 else "NOT MET"
            print(f"engine's own time / flow compute at 720p: {whole:.3f} (target < 0.20: {verdict}): all a worker "
                  "did besides flow, from its first job started to its last published (events.jsonl)")  # fmt: skip
            print(f"  of which keys read, frames written and records made (the records' timing): {share:.3f}")
            floor = sum(r["png_floor_s"] for r in hd) / sum(r["backend_s"] for r in hd)
            per_job = sum(r["png_floor_s"] for r in hd) / sum(r["n"] for r in hd) * 1000
            flow_ms = sum(r["backend_s"] for r in hd) / sum(r["n"] for r in hd) * 1000
            print(f"  PNG alone (a frame encoded and a key decoded per job, in one process, no I/O): {per_job:.1f} ms "
                  f"against flow's {flow_ms:.1f} ms a job: {floor:.3f}, the least share PNG frames allow")  # fmt: skip
            spare = [r["spare"] for r in hd if r["spare"]]
            if spare:
                print(f"  one worker with a thread to spare (--workers 1 on {os.cpu_count()} CPUs: writes and the next "
                      f"keys on a second thread): {busy_share(spare):.3f}")  # fmt: skip
            stored = engine_share([r["stored_timing"] for r in hd])  # its records' part, as `share`
            fps = np.mean([r["stored_fps"] / r["run_fps"] for r in hd])
            size = np.mean([r["stored_size_ratio"] for r in hd])
            print(f"  with SEMFI_PNG_LEVEL=0 (rows stored, frames {size:.1f}x larger): records' part {stored:.3f}, "
                  f"whole run {fps:.2f}x the default's frames/s")  # fmt: skip
        verdict = "MET" if ratio >= 2 else "NOT MET"
        print(f"whole run / minterpolate throughput, mean: {ratio:.2f}x (target >= 2: {verdict})")
        print(f"slowest no-op resume: {noop:.2f} s (target < 0.6 s: {'MET' if noop < 0.6 else 'NOT MET'}); "
              f"without the finished stamp (every job planned and checked): {noop_full:.2f} s")  # fmt: skip
        memory_part(work)
        if args.film_rows:
            film_part(work, args.cache, args.film_rows, args.film_minutes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
