"""RIFE on a GPU: the `rife` backend's frames per second at 1080p by batch size, peak memory, fp16 vs fp32.

The frame pairs are real: consecutive frames of the demo clip (or --clip), scaled to --size (default
1920x1080) with bicubic resampling; each sample is one in-between at its own time t in (0, 1), as a gap of
several frames asks for. Each timing is one `frames_at` call of the backend itself (uint8 frames in and out:
host-to-device copies, padding, the forward, the crop and the copy back included) over --samples samples,
with the backend's batch budget (_BATCH_PIXELS) set so that each forward stacks exactly B samples; the
fastest of --repeats calls is kept, after one warm-up call per batch size. "default" marks the batch size
the backend picks by itself at that size (4 at 1080p: frames padded to 1152x1920), when it is among
--batches. fp16 is the backend's precision on CUDA; fp32 is the same model cast to float32 (convolutions
may use TF32, PyTorch's default for cuDNN).

    .venv/bin/python bench/rife_gpu.py                                                         # GPU, 1080p
    .venv/bin/python bench/rife_gpu.py --device cpu --size 320x180 --batches 1,2 --samples 4   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from semfi_batch.backends import BackendOptions, backend_class  # noqa: E402
from semfi_batch.backends import rife as rife_module  # noqa: E402
from semfi_batch.backends._rife.ifnet import size_multiple  # noqa: E402

DEFAULT_CLIP = REPO / "demo" / "bbb_720p25_5s.mp4"


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def keyframes(clip: Path, start: int, count: int, size: tuple[int, int]) -> tuple[list[np.ndarray], str]:
    """`count` consecutive RGB frames of `clip` from frame `start`, scaled to `size` (OpenCV decodes, so no
    ffmpeg is needed on the GPU machine). Where the clip cannot be read: a moving synthetic pattern."""
    frames: list[np.ndarray] = []
    cap = cv2.VideoCapture(str(clip))
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        while len(frames) < count:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_CUBIC))
    cap.release()
    if len(frames) == count:
        return frames, f"{clip.name} frames {start}..{start + count - 1}"
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    synthetic = []
    for i in range(count):
        r = 127 + 120 * np.sin((xx + 6 * i) / 37.0) * np.cos(yy / 23.0)
        g = 127 + 120 * np.sin((xx + yy + 4 * i) / 53.0)
        b = 127 + 120 * np.cos((xx - 3 * i) / 29.0)
        synthetic.append(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return synthetic, f"synthetic pattern ({clip} not readable)"


def make_samples(frames: list[np.ndarray], n: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """n samples cycling over the consecutive pairs of `frames`, each at one of 7 times in (0, 1)."""
    pairs = list(zip(frames, frames[1:]))
    return [(*pairs[i % len(pairs)], (i % 7 + 1) / 8) for i in range(n)]


def measure(backend, frames, batch: int, samples: int, repeats: int, pixels: int) -> dict:
    """Frames per second of `frames_at` with `batch` samples per forward, and peak GPU memory."""
    torch = backend._torch
    cuda = backend.device.type == "cuda"
    rife_module._BATCH_PIXELS[backend.device.type] = batch * pixels
    n = max(samples, batch)
    n -= n % batch  # whole forwards only
    work = make_samples(frames, n)
    backend.frames_at(work[:batch])  # warm-up: cuDNN's choice of kernels for this shape, the allocator
    if cuda:
        torch.cuda.synchronize(backend.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(backend.device)
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(backend.device)
        t0 = time.perf_counter()
        out = backend.frames_at(work)
        if cuda:
            torch.cuda.synchronize(backend.device)
        best = min(best, time.perf_counter() - t0)
    assert len(out) == n and out[0].shape == frames[0].shape, "frames_at returned the wrong frames"
    peak = torch.cuda.max_memory_allocated(backend.device) / 2**30 if cuda else None
    return {"batch": batch, "samples": n, "seconds": best, "fps": n / best, "ms_per_frame": 1000 * best / n,
            "peak_gb": peak}  # fmt: skip


def whole_run(args, model: Path, size: tuple[int, int]) -> list[dict]:
    """The whole run (engine: keys read, frames written as PNG, records, metrics, its end-of-run report) of
    --whole-run image pairs with --gap in-betweens each, against the backend's own time in it; once per
    --writer-threads count: 0 writes the frames on the job's thread, others through the background writer
    (FrameWriter) the engine uses for model backends (its own count: writer_threads()); and once per
    --whole-run-workers count (worker processes sharing the GPU, each with its own model)."""
    import tempfile

    from semfi_batch import report
    from semfi_batch.manifest import write_manifest
    from semfi_batch.media.frames import write_png
    from semfi_batch.run import frame_io
    from semfi_batch.run.engine import run_manifest

    work = Path(tempfile.mkdtemp(prefix="rife-whole-run-"))
    frames, _ = keyframes(Path(args.clip), args.start, args.whole_run + 1, size)
    keys = []
    for i, frame in enumerate(frames):
        keys.append(work / f"k{i:04d}.png")
        write_png(keys[-1], frame)
    rows = [{"pair_id": f"p{i:04d}", "start_image": str(a), "end_image": str(b), "gap_frames": args.gap}
            for i, (a, b) in enumerate(zip(keys, keys[1:]))]  # fmt: skip
    manifest = write_manifest(rows, work / "m.parquet")
    options = BackendOptions(device=args.device, extra={"rife_model": str(model)})
    out = []
    print(f"whole run: {len(rows)} pairs of {size[0]}x{size[1]} keys, {args.gap} in-betweens each (one process); "
          f"the engine's own writer threads here: {frame_io.writer_threads()}")  # fmt: skip
    runs = [(int(w), int(n)) for w in args.whole_run_workers.split(",") for n in args.writer_threads.split(",")]
    for workers, count in runs:
        label = f"background PNG writer, {count} threads" if count else "frames written on the job's thread"
        label = f"{workers} worker{'s' if workers > 1 else ''}, {label}"
        os.environ[frame_io.WRITER_THREADS_ENV] = str(count)
        root = work / f"run-{workers}-{count}"
        t0 = time.perf_counter()
        summary = run_manifest(manifest, root, backend="rife", options=options, show_progress=False, workers=workers)
        report.write_report(root, quick=True)
        wall = time.perf_counter() - t0
        timing: dict[str, float] = {}
        for record in root.glob("jobs/*/record.json"):
            for key, value in (json.loads(record.read_text()).get("timing") or {}).items():
                timing[key] = timing.get(key, 0.0) + value
        n = summary.done * args.gap
        row = {
            "writer": label,
            "workers": workers,
            "threads": count,
            "frames": n,
            "wall_s": wall,
            "fps": n / wall,
            **timing,
        }
        row["backend_share"] = timing.get("backend_s", 0.0) / wall
        out.append(row)
        parts = "  ".join(f"{k} {v:.2f}" for k, v in sorted(timing.items()))
        print(f"  {label:48} {row['fps']:7.1f} frames/s ({wall:.1f} s; backend {100 * row['backend_share']:.0f}%"
              f" of it)  {parts}", flush=True)  # fmt: skip
    os.environ.pop(frame_io.WRITER_THREADS_ENV, None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    ap.add_argument("--size", default="1920x1080", help="WxH of the frames (default 1920x1080)")
    ap.add_argument("--batches", default="1,2,4,8,14,32", help="samples per forward to time")
    ap.add_argument("--samples", type=int, default=64, help="samples (in-between frames) per timed call")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per batch size, fastest kept")
    ap.add_argument("--dtypes", default="fp16,fp32", help="fp16 (the backend's CUDA default) and/or fp32")
    ap.add_argument("--clip", default=str(DEFAULT_CLIP), help="clip whose frames are scaled up (default: the demo)")
    ap.add_argument("--start", type=int, default=40, help="first frame of the clip used")
    ap.add_argument("--rife-model", default=None, help="flownet.pkl (default models/rife/flownet.pkl)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--whole-run", type=int, default=0, help="also time a whole run of this many pairs (0: no)")
    ap.add_argument("--gap", type=int, default=3, help="in-betweens per pair of the whole run")
    ap.add_argument("--writer-threads", default="0,4", help="PNG writer threads to time the whole run with")
    ap.add_argument("--whole-run-workers", default="1", help="worker processes to time the whole run with")
    args = ap.parse_args(argv)

    import torch

    size = parse_size(args.size)
    batches = [int(b) for b in args.batches.split(",")]
    dtypes = [d.strip() for d in args.dtypes.split(",")]
    if any(d not in ("fp16", "fp32") for d in dtypes):
        ap.error(f"--dtypes takes fp16 and/or fp32, got {args.dtypes}")
    model = Path(args.rife_model) if args.rife_model else REPO / "models" / "rife" / "flownet.pkl"
    backend = backend_class("rife")(BackendOptions(device=args.device, extra={"rife_model": str(model)}))
    device = backend.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    frames, source = keyframes(Path(args.clip), args.start, 5, size)
    w, h = size
    multiple = size_multiple(backend.settings["scale"])
    pixels = (-(-h // multiple) * multiple) * (-(-w // multiple) * multiple)
    default_batch = max(1, rife_module._BATCH_PIXELS[device.type] // pixels)
    print(f"device {name}, torch {torch.__version__}, frames {w}x{h} (padded to {pixels} pixels) from {source}; "
          f"the backend's own batch at this size: {default_batch}")  # fmt: skip
    results = {"device": name, "torch": torch.__version__, "size": f"{w}x{h}", "source": source,
               "default_batch": default_batch, "rows": []}  # fmt: skip
    for dtype_name in dtypes:
        dtype = torch.float16 if dtype_name == "fp16" else torch.float32
        if device.type == "cpu" and dtype == torch.float16:
            print("  (fp16 skipped on the CPU: the backend runs fp32 there)")
            continue
        backend.dtype = dtype
        backend.model = backend.model.to(dtype=dtype)
        for b in batches:
            row = {"dtype": dtype_name, "default": b == default_batch}
            row |= measure(backend, frames, b, args.samples, args.repeats, pixels)
            results["rows"].append(row)
            peak = "n/a" if row["peak_gb"] is None else f"{row['peak_gb']:.2f} GB"
            mark = " (default)" if row["default"] else " " * 10
            print(f"  {dtype_name}  batch {b:3d}{mark}  {row['fps']:8.1f} frames/s  "
                  f"{row['ms_per_frame']:8.2f} ms/frame  peak {peak}", flush=True)  # fmt: skip
    fp16 = [r["fps"] for r in results["rows"] if r["dtype"] == "fp16"]
    fp32 = [r["fps"] for r in results["rows"] if r["dtype"] == "fp32"]
    if fp16 and fp32:
        results["best_fp16_over_fp32"] = max(fp16) / max(fp32)
        print(f"  best fp16 {max(fp16):.1f} frames/s vs best fp32 {max(fp32):.1f}: x{max(fp16) / max(fp32):.2f}")
    if args.whole_run:
        results["whole_run"] = whole_run(args, model, size)
    print("JSON " + json.dumps(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
