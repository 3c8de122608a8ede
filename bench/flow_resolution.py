"""Benchmark: the resolution the `flow` backend estimates optical flow at, quality against cost.

Frames are dropped from real footage and rebuilt by the flow backend with flow estimated at up to each size
below (the backend's own code, only its size limit changed); each rebuilt frame is compared (PSNR) with the
frame that was dropped. Sources: stretches of every clip of ../shared/footage at its own size and at
640x360, and real photographs (scikit-image's data) under a known camera motion (pan, zoom, roll) with an
object crossing them, at 640x360. Gaps of 1 and 3 frames (small and larger motion). Per size: PSNR against
the backend's own size (mean, worst and best per source) and its time per job at 640x360 and 1280x720 in one
thread, as a worker runs.

    .venv/bin/python bench/flow_resolution.py [--frames 25] [--sizes 640x360,540x304,480x270,320x180]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.flow_vs_minterpolate import decode  # noqa: E402
from bench.whole_run import CLIPS  # noqa: E402
from semfi_batch.backends import flow  # noqa: E402
from semfi_batch.backends.base import InterpolationRequest  # noqa: E402
from semfi_batch.media.probe import probe_video  # noqa: E402

FOOTAGE = REPO.parent / "shared" / "footage" / "clips"
SD = (640, 360)


def footage_sources(frames: int) -> dict[str, list[np.ndarray]]:
    """`frames` frames of each clip (from the first frame of a stretch without cuts, bench/whole_run.py, else
    from the start) at its own size, and (where larger) scaled to 640x360."""
    sources = {}
    first_frames = dict(CLIPS)
    for path in sorted(FOOTAGE.glob("*")):
        info = probe_video(path)
        first = first_frames.get(path.name, 0)
        sources[path.stem] = decode(path, first, min(frames, info.frame_count - first), info.width, info.height)
        if (info.width, info.height) != SD:
            scaled = [cv2.resize(f, SD, interpolation=cv2.INTER_AREA) for f in sources[path.stem]]
            sources[f"{path.stem}@640x360"] = scaled
    return sources


def photo_sources(frames: int) -> dict[str, list[np.ndarray]]:
    """Real photographs under a camera motion (pan, zoom, roll; its own per photograph) with a second photograph
    crossing them (occlusion), at 640x360."""
    from skimage import data

    photos = {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "camera", "rocket")}
    rng = np.random.default_rng(7)
    sources = {}
    names = list(photos)
    for k, name in enumerate(names):
        image = photos[name]
        image = np.dstack([image] * 3) if image.ndim == 2 else image[..., :3]
        background = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        crossing = photos[names[(k + 1) % len(names)]]
        crossing = np.dstack([crossing] * 3) if crossing.ndim == 2 else crossing[..., :3]
        crossing = cv2.resize(crossing, (160, 120), interpolation=cv2.INTER_AREA)
        vx, vy = rng.uniform(-6, 6), rng.uniform(-3, 3)
        zoom, roll = rng.uniform(-0.004, 0.004), rng.uniform(-0.3, 0.3)
        cx, cy = background.shape[1] / 2, background.shape[0] / 2
        clip = []
        for i in range(frames):
            m = cv2.getRotationMatrix2D((cx + vx * i, cy + vy * i), roll * i, 1 + zoom * i)
            m[0, 2] += SD[0] / 2 - (cx + vx * i)
            m[1, 2] += SD[1] / 2 - (cy + vy * i)
            frame = cv2.warpAffine(background, m, SD, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            x, y = int(40 + 9 * i) % (SD[0] - 160), int(200 - 3 * i + 20 * np.sin(i / 5))
            frame[y : y + 120, x : x + 160] = crossing
            clip.append(frame)
        sources[f"photo {name}"] = clip
    return sources


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-6))


def rebuilt_psnr(backend: flow.FlowBackend, clip: list[np.ndarray], gap: int) -> float:
    """Mean PSNR of the frames rebuilt between keys `gap + 1` frames apart, against the dropped frames."""
    values = []
    for i in range(0, len(clip) - gap - 1, gap + 1):
        made = backend.interpolate(InterpolationRequest("b", clip[i], clip[i + gap + 1], gap, 0))
        values += [psnr(frame, clip[i + 1 + j]) for j, frame in enumerate(made)]
    return float(np.mean(values))


def time_per_job(backend: flow.FlowBackend, a: np.ndarray, b: np.ndarray, repeats: int = 7) -> float:
    """Fastest of `repeats` one-frame jobs, in seconds (the fastest: the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(backend.interpolate(InterpolationRequest("b", a, b, 1, 0)))
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=25, help="frames per source")
    parser.add_argument("--sizes", default="640x360,540x304,480x270,320x180", help="flow sizes to compare")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in a worker: one core each
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    chosen = flow._FLOW_MAX_PIXELS
    reference = (640, 360) if (640, 360) in sizes else sizes[0]
    sources = {**footage_sources(args.frames), **photo_sources(args.frames)} if FOOTAGE.exists() else {}
    if not sources:
        raise SystemExit(f"real footage not found: {FOOTAGE}")
    backend = flow.FlowBackend()
    scores: dict[tuple[int, int], dict[int, list[float]]] = {}
    timing: dict[tuple[int, int], tuple[float, float]] = {}
    hd = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in sources["photo astronaut"][:3]]
    try:
        for size in sizes:
            flow._FLOW_MAX_PIXELS = size[0] * size[1]
            scores[size] = {gap: [rebuilt_psnr(backend, clip, gap) for clip in sources.values()] for gap in (1, 3)}
            sd = sources["photo astronaut"]
            timing[size] = (time_per_job(backend, sd[0], sd[2]), time_per_job(backend, hd[0], hd[2]))
    finally:
        flow._FLOW_MAX_PIXELS = chosen
    print(f"{len(sources)} sources ({', '.join(sources)}), {args.frames} frames each")
    print(f"PSNR of rebuilt frames against the dropped ones, relative to flow at {reference[0]}x{reference[1]}:")
    head = f"{'flow size':>10} | {'gap 1: mean':>11} {'worst':>6} {'best':>6} | {'gap 3: mean':>11} {'worst':>6} "
    head += f"{'best':>6} | {'ms/job 360p':>11} {'720p':>6}"
    print(head)
    print("-" * len(head))
    for size in sizes:
        cells = []
        for gap in (1, 3):
            delta = np.array(scores[size][gap]) - np.array(scores[reference][gap])
            cells.append(f"{delta.mean():+11.3f} {delta.min():+6.2f} {delta.max():+6.2f}")
        mark = " (the backend's)" if size[0] * size[1] == chosen else ""
        print(f"{size[0]:>4}x{size[1]:<5} | {cells[0]} | {cells[1]} | "
              f"{timing[size][0] * 1000:11.1f} {timing[size][1] * 1000:6.1f}{mark}")  # fmt: skip
    print(f"absolute PSNR at {reference[0]}x{reference[1]}: gap 1 mean {np.mean(scores[reference][1]):.2f} dB, "
          f"gap 3 mean {np.mean(scores[reference][3]):.2f} dB")  # fmt: skip


if __name__ == "__main__":
    main()
