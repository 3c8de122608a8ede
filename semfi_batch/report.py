"""One self-contained HTML page for a run folder or an eval file: numbers, matplotlib plots and pictures,
all embedded (data: URIs), so the page works offline and can be mailed or archived as one file.

Run page: summary (done / failed / not run, time in total and per frame, memory), time per job, quality
(warp error of each job's start key -> frames -> end key, motion estimated on the frames themselves),
a contact sheet per job, and the failures with their errors.
Eval page: the per-backend summary (best marked), quality and speed plots, and one gap per clip side by
side (start key, original, each backend, end key)."""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import SemfiError
from semfi_batch.evaluate import BackendSummary, format_seconds, is_eval_file, read_eval, summarize
from semfi_batch.media.frames import as_rgb8, read_image_rgb8, resize
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.metrics import job_warp_error

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHEET_FRAMES = 4  # generated frames shown per contact sheet, evenly spread over the gap
SHEET_THUMB_WIDTH = 200
QUALITY_CACHE = ".report-quality.json"
COLORS = {"done": "#3b7dd8", "failed": "#d8453b"}
PALETTE = ["#3b7dd8", "#e08a2e", "#4aa564", "#9b59b6", "#d8453b", "#7f8c8d", "#c9a227", "#2bb3b3"]


class ReportError(SemfiError):
    """The report's input is neither a run folder nor an eval file, or is unreadable."""

    exit_code = 2


def default_report_path(source: Path) -> Path:
    """RUN_DIR/report.html for a run folder, EVAL.html beside an eval file."""
    source = Path(source)
    return source / "report.html" if source.is_dir() else source.with_suffix(".html")


def write_report(source: Path, out: Path | None = None, *, max_sheets: int = 200, quick: bool = False) -> Path:
    """Write the HTML page for a run folder or an eval Parquet file; return its path. `quick` is the page
    `run` writes at its end, in a small fraction of the backend's time: no warp error measured for jobs that
    lack it (about 0.5 s per 720p job), no plots (seconds to draw), and the contact sheets show the run's own
    frame files scaled by the browser instead of thumbnails decoded and drawn in (a decode per picture)."""
    source = Path(source)
    out = Path(out) if out else default_report_path(source)
    if out.is_dir():
        raise ReportError(f"-o {out} is a folder; give a file name such as {out / 'report.html'}")
    if out.is_symlink():  # as every run file that is a symlink: refused, never written through nor replaced
        raise ReportError(f"{out} is a symlink; the report is never written through one: remove it")
    if source.is_dir():
        # Links to the preview clips are relative to the page, so a run folder can be moved with its report.
        link_root = os.path.relpath(source.absolute(), out.absolute().parent)
        page = run_report_html(source, max_sheets=max_sheets, link_root=link_root, quick=quick)
    elif source.is_file() and is_eval_file(source):
        page = eval_report_html(source)
    elif source.exists():
        raise ReportError(f"{source} is neither a run folder nor an eval file (from `semfi-batch eval`)")
    else:
        raise ReportError(f"not found: {source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page.encode("utf-8"))
    return out


# ------------------------------------------------------------------------------------------ run pages


def load_run(run_dir: Path) -> tuple[pd.DataFrame, list[str], dict]:
    """(one row per finished job in manifest order, pair_ids of the manifest, run.json) of a run folder.

    Job records (jobs/<pair_id>/record.json) are the truth; metrics.parquet adds the user's columns."""
    run_dir = Path(run_dir)
    jobs = run_dir / "jobs"
    if not jobs.is_dir() and not (run_dir / "metrics.parquet").exists():
        raise ReportError(f"{run_dir} is not a run folder (no jobs/ or metrics.parquet; see `semfi-batch run`)")
    info = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):  # run.json only adds the manifest's path
        info = json.loads((run_dir / "run.json").read_text())
    order: list[str] = []
    if (run_dir / "manifest.parquet").exists():
        order = [str(p) for p in pq.read_table(run_dir / "manifest.parquet", columns=["pair_id"])["pair_id"]]
    records = {}
    for path in sorted(jobs.glob("*/record.json")) if jobs.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a record is written atomically; an unreadable one belongs to no finished job
        records[record.get("pair_id", path.parent.name)] = record
    frame = pd.DataFrame(list(records.values()))
    metrics = _read_metrics(run_dir / "metrics.parquet")
    if metrics is not None:
        if frame.empty:
            frame = metrics
        elif "pair_id" in metrics:
            extra = [c for c in metrics.columns if c not in frame.columns or c == "pair_id"]
            frame = frame.merge(metrics[extra], on="pair_id", how="left")
    if frame.empty:
        frame = pd.DataFrame(columns=["pair_id", "status", "backend", "wall_s", "frames", "error"])
    rank = {p: i for i, p in enumerate(order)}
    frame = frame.assign(_rank=[rank.get(p, len(rank)) for p in frame["pair_id"]])
    frame = frame.sort_values(["_rank", "pair_id"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    return frame, order, info


def _read_metrics(path: Path) -> pd.DataFrame | None:
    """metrics.parquet as a table; None when absent or unreadable (the job records are the truth anyway)."""
    if not path.exists():
        return None
    try:
        return pq.read_table(path).to_pandas()
    except Exception as exc:  # noqa: BLE001 - a damaged metrics file must not take the page down
        print(f"notice: {path} is unreadable ({type(exc).__name__}); the report uses the job records", file=sys.stderr)
        return None


def run_report_html(run_dir: Path, *, max_sheets: int = 200, link_root: str = ".", quick: bool = False) -> str:
    """The HTML page for a run folder; links to files of the run start with `link_root` (the run folder
    relative to where the page will be)."""
    run_dir = Path(run_dir).absolute()
    jobs, order, info = load_run(run_dir)
    done = jobs[jobs["status"] == "done"] if len(jobs) else jobs
    failed = jobs[jobs["status"] != "done"] if len(jobs) else jobs
    measured = _run_quality(run_dir, jobs, measure=not quick)
    jobs = jobs.assign(warp_error=[measured.get(p, math.nan) for p in jobs["pair_id"]])
    jobs = _with_review_facts(run_dir, jobs)
    done = jobs[jobs["status"] == "done"]

    pending = [p for p in order if p not in set(jobs["pair_id"])]
    frames = float(_col(done, "frames").sum())
    wall_done = float(_col(done, "wall_s").sum())
    facts = [
        ("jobs in manifest", str(len(order) if order else len(jobs))),
        ("done", str(len(done))),
        ("failed", str(len(failed))),
        ("skipped / not run yet", str(len(pending))),
        ("frames generated", f"{frames:.0f}"),
        ("total job time", _duration(float(_col(jobs, "wall_s").sum()))),
        ("time per frame", f"{wall_done / frames:.3f} s" if frames else "-"),
        ("median time per frame", _fmt(_col(done, "s_per_frame").median(), 3, " s")),
        ("peak memory (RSS)", _fmt(_col(jobs, "peak_rss_mb").max(), 0, " MB")),
        ("peak GPU memory", _fmt(_col(jobs, "peak_gpu_mb").max(), 0, " MB")),
        ("backends", ", ".join(f"{b} ({n})" for b, n in jobs["backend"].value_counts().items()) or "-"),
        ("mean warp error", _fmt(_col(done, "warp_error").mean(), 2)),
        ("review decisions", ", ".join(f"{n} {d}" for d, n in jobs["decision"].value_counts().items()) or "-"),
    ]
    if info.get("manifest"):
        facts.insert(0, ("manifest", str(info["manifest"])))

    figures = []
    if len(jobs) and not quick:
        figures.append(("time-per-job", "Time per job", _plot_time_per_job(jobs)))
        if len(done):
            figures.append(("quality", "Quality: temporal consistency per job", _plot_run_quality(done)))
    if quick:
        plot_html = f"<p>Plots are drawn by <code>semfi-batch report {_e(str(run_dir))}</code>.</p>"
    else:
        plot_html = "".join(_figure(i, t, png) for i, t, png in figures) or "<p>No finished jobs.</p>"
    max_sheets = max(0, max_sheets)
    sheets = [_contact_sheet(run_dir, row, link_root, linked=quick) for row in done.head(max_sheets).to_dict("records")]
    omitted = max(0, len(done) - max_sheets)

    body = [
        f"<h1>semfi-batch run report</h1><p class='sub'>{_e(str(run_dir))} &middot; written {_now()}</p>",
        _section("summary", "Summary", _facts_table(facts)),
        _section("plots", "Plots", plot_html),
        _section(
            "failures",
            f"Failures ({len(failed)})",
            _table(
                ["pair_id", "backend", "wall s", "error"],
                [
                    [r.get("pair_id"), r.get("backend"), _fmt(r.get("wall_s"), 2), r.get("error") or ""]
                    for r in failed.to_dict("records")
                ],
                cls="failures",
            )
            if len(failed)
            else "<p>No failures.</p>",
        ),
        _section(
            "sheets",
            "Contact sheets",
            "<p class='sub'>start key, generated frames (numbered within the gap), end key; below them, for "
            "replace rows, the original frames they replace (before / after).</p>"
            + "".join(sheets)
            + (f"<p>{omitted} more finished job(s) not shown (--max-sheets {max_sheets}).</p>" if omitted else ""),
        ),
        _section("jobs", "All jobs", _jobs_table(jobs, pending)),
    ]
    return _page("semfi-batch run report", body)


def job_quality(run_dir: Path, *, measure: bool = True) -> dict[str, float]:
    """Warp error per finished job of a run folder (recorded, cached, or measured now and cached)."""
    jobs, _, _ = load_run(Path(run_dir))
    return _run_quality(Path(run_dir).absolute(), jobs, measure=measure) if len(jobs) else {}


def _with_review_facts(run_dir: Path, jobs: pd.DataFrame) -> pd.DataFrame:
    """Add what a reviewer judges by: source file name, timecode of the gap at the source's rate, and the
    decision from `semfi-batch review` (RUN/decisions.json); reason and score come with the manifest's columns."""
    from semfi_batch.review.decisions import DecisionError, current_decisions, decision_of
    from semfi_batch.review.timecode import timecode

    try:
        decisions = current_decisions(run_dir)
    except DecisionError:
        decisions = {}
    rates: dict[str, float | None] = {}
    names, codes = [], []
    for r in jobs.to_dict("records"):
        source = r.get("source")
        if not isinstance(source, str) or not source:
            names.append("")
            codes.append("")
            continue
        if source not in rates:
            try:
                rates[source] = probe_video(Path(source)).avg_fps or None
            except (SemfiError, OSError):
                rates[source] = None
        names.append(Path(source).name)
        start, end, fps = _int(r.get("start_frame")), _int(r.get("end_frame")), rates[source]
        if fps and start is not None and end is not None:
            last = end - 1 if r.get("mode") == "replace" else end
            codes.append(f"{timecode(start + 1, fps)}-{timecode(max(start + 1, last), fps)}")
        else:
            codes.append("")
    return jobs.assign(
        source_name=names, timecode=codes, decision=[decision_of(decisions, str(p)) for p in jobs["pair_id"]]
    )


def _int(value) -> int | None:
    number = _float(value)
    return None if math.isnan(number) else int(number)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series([], dtype=float)
    return pd.to_numeric(frame[name], errors="coerce")


def _job_frames(job_dir: Path) -> list[Path]:
    return sorted((job_dir / "frames").glob("*.png"))


def _small(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if w <= width:
        return frame
    return cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def _run_quality(run_dir: Path, jobs: pd.DataFrame, *, measure: bool = True) -> dict[str, float]:
    """Warp error per finished job: recorded by the run if it did, else measured here from the frames.

    Measuring costs about half a second per 720p job, so results are cached in RUN_DIR/QUALITY_CACHE,
    keyed by each job's key and finish time: re-running the report (as every `run` does) measures only
    jobs that are new or ran again."""
    cache_path = run_dir / QUALITY_CACHE
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    except (OSError, json.JSONDecodeError):
        cache = {}
    quality: dict[str, float] = {}
    kept: dict[str, dict] = {}  # entries of jobs that are no longer finished are dropped
    for record in jobs[jobs["status"] == "done"].to_dict("records"):
        pid = str(record["pair_id"])
        recorded = _float(record.get("warp_error"))
        if not math.isnan(recorded):
            quality[pid] = recorded
            continue
        identity = f"{record.get('key')}|{record.get('finished_at')}"
        entry = cache.get(pid)
        if not (isinstance(entry, dict) and entry.get("id") == identity):
            if not measure:
                continue
            value = _job_warp_error(run_dir / "jobs" / pid)
            entry = {"id": identity, "warp_error": None if math.isnan(value) else value}
        kept[pid] = entry
        quality[pid] = _float(entry.get("warp_error"))
    if kept != cache:
        with contextlib.suppress(SemfiError):  # a read-only run folder only costs the cache
            write_atomic(cache_path, json.dumps(kept, sort_keys=True).encode())
    return quality


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _job_warp_error(job_dir: Path) -> float:
    """Warp error over start key, generated frames and end key (NaN when the files are missing)."""
    frames = _job_frames(job_dir)
    keys = job_dir / "start.png", job_dir / "end.png"
    if not frames or not all(p.exists() for p in keys):
        return math.nan
    try:
        return job_warp_error(read_image_rgb8(keys[0]), [read_image_rgb8(p) for p in frames], read_image_rgb8(keys[1]))
    except SemfiError:
        return math.nan


def _job_keys(job_dir: Path, record: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The job's keyframes: the copies the run kept, else the manifest's images or video frames."""
    if (job_dir / "start.png").exists() and (job_dir / "end.png").exists():
        return read_image_rgb8(job_dir / "start.png"), read_image_rgb8(job_dir / "end.png")
    try:
        if record.get("start_image") and record.get("end_image"):
            return read_image_rgb8(Path(record["start_image"])), read_image_rgb8(Path(record["end_image"]))
        if record.get("source"):
            info = probe_video(Path(record["source"]))
            start, end = int(record["start_frame"]), int(record["end_frame"])
            keys = extract_frames(info, [start, end])  # one forward decode for both
            return as_rgb8(keys[start]), as_rgb8(keys[end])
    except (SemfiError, OSError, ValueError, TypeError):
        pass  # keys that moved or vanished since the run: the sheet shows the frames without them
    return None, None


def _contact_sheet(run_dir: Path, record: dict, link_root: str, *, linked: bool = False) -> str:
    """One job's strip: start key, a few generated frames, end key (and, for replace rows, the originals they
    replace). `linked`: pictures are the job's own files, scaled by the browser (nothing decoded here)."""
    pair_id = str(record["pair_id"])
    job_dir = run_dir / "jobs" / pair_id
    frames = _job_frames(job_dir)
    picks = _spread(len(frames), SHEET_FRAMES)
    if linked:
        cells, before = _linked_cells(job_dir, frames, picks, link_root), ""
    else:
        generated = [(i, read_image_rgb8(frames[i])) for i in picks]
        start, end = _job_keys(job_dir, record)
        if generated:  # keys read from the manifest's files may be at the source size: show them at the job's
            w, h = generated[0][1].shape[1], generated[0][1].shape[0]
            start, end = (None if k is None else resize(k, w, h) for k in (start, end))
        cells = [_cell(start, "start key", "key")]
        cells += [_cell(image, f"#{i + 1} of {len(frames)}", "gen") for i, image in generated]
        cells.append(_cell(end, "end key", "key"))
        before = _original_cells(record, picks, len(frames), generated)
    review = " &middot; ".join(
        _e(text)
        for text in (
            record.get("source_name") or "",
            f"reason {record.get('reason')}" if _present(record.get("reason")) else "",
            f"score {_fmt(record.get('score'), 3)}" if _present(record.get("score")) else "",
            record.get("timecode") or "",
            f"decision: {record.get('decision', 'undecided')}",
        )
        if text
    )
    facts = (
        f"{_e(str(record.get('backend', '')))} &middot; {len(frames)} frames &middot; "
        f"{_fmt(record.get('wall_s'), 2, ' s')} ({_fmt(record.get('s_per_frame'), 3, ' s/frame')}) &middot; "
        f"warp error {_fmt(record.get('warp_error'), 2)}"
    )
    href = Path(link_root, "jobs", pair_id, "clip.mp4").as_posix()
    link = f" &middot; <a href='{_e(href)}'>preview clip</a>" if (job_dir / "clip.mp4").exists() else ""
    return (
        f"<div class='sheet' data-pair='{_e(pair_id)}' data-decision='{_e(str(record.get('decision', '')))}'>"
        f"<h3>{_e(pair_id)}</h3><p class='sub review'>{review}</p><p class='sub'>{facts}{link}</p>"
        f"<div class='strip after'>{''.join(cells)}</div>"
        + (f"<div class='strip before'>{before}</div>" if before else "")
        + "</div>"
    )


def _linked_cells(job_dir: Path, frames: list[Path], picks: list[int], link_root: str) -> list[str]:
    """A strip whose pictures link to the job's files (start.png, the picked frames, end.png)."""

    def cell(path: Path, caption: str, kind: str) -> str:
        if not path.is_file():
            return _img_cell(None, caption, kind)
        href = Path(link_root, *path.relative_to(job_dir.parent.parent).parts).as_posix()
        return _img_cell(href, caption, kind, lazy=True)

    cells = [cell(job_dir / "start.png", "start key", "key")]
    cells += [cell(frames[i], f"#{i + 1} of {len(frames)}", "gen") for i in picks]
    return [*cells, cell(job_dir / "end.png", "end key", "key")]


def _present(value) -> bool:
    return value is not None and value == value and value != ""  # value == value: not NaN


def _original_cells(record: dict, picks: list[int], count: int, generated: list) -> str:
    """The original frames a replace row swaps out, at the same places in the gap as the generated frames
    shown above them ('' for insert rows, image pairs or a source that cannot be read)."""
    source = record.get("source")
    start = _int(record.get("start_frame"))
    if record.get("mode") != "replace" or not isinstance(source, str) or start is None or not picks:
        return ""
    from semfi_batch.review.cards import decode_frames

    height, width = generated[0][1].shape[:2]
    try:
        originals = decode_frames(probe_video(Path(source)), start + 1, max(picks) + 1, (width, height))
    except (SemfiError, OSError):
        return ""
    return "".join(_cell(originals[i], f"original #{i + 1} of {count}", "truth") for i in picks if i < len(originals))


def _spread(n: int, k: int) -> list[int]:
    """Up to k distinct indices of 0..n-1, evenly spread, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def _cell(image: np.ndarray | None, caption: str, kind: str) -> str:
    return _img_cell(None if image is None else _jpeg_uri(_small(image, SHEET_THUMB_WIDTH)), caption, kind)


def _img_cell(uri: str | None, caption: str, kind: str, *, lazy: bool = False) -> str:
    """A captioned picture of a strip, or a 'not available' box of the same shape. `lazy`: a full-size file
    the browser loads when it scrolls into view, shown at the thumbnails' width."""
    if uri is None:
        picture, kind = "<div class='none'>not available</div>", f"{kind} missing"
    elif lazy:
        picture = f"<img src='{_e(uri)}' alt='{_e(caption)}' loading='lazy' width='{SHEET_THUMB_WIDTH}'>"
    else:
        picture = f"<img src='{uri}' alt='{_e(caption)}'>"
    return f"<figure class='{kind}'>{picture}<figcaption>{_e(caption)}</figcaption></figure>"


def _jobs_table(jobs: pd.DataFrame, pending: Sequence[str]) -> str:
    rows = [
        [
            r.get("pair_id"),
            r.get("source_name") or "",
            r.get("timecode") or "",
            r.get("reason") if _present(r.get("reason")) else "",
            _fmt(r.get("score"), 3) if _present(r.get("score")) else "",
            r.get("decision"),
            r.get("status"),
            r.get("backend"),
            _fmt(r.get("frames"), 0),
            _fmt(r.get("wall_s"), 2),
            _fmt(r.get("s_per_frame"), 3),
            _fmt(r.get("peak_rss_mb"), 0),
            _fmt(r.get("warp_error"), 2),
        ]
        for r in jobs.to_dict("records")
    ]
    rows += [[p, "", "", "", "", "", "not run", "", "", "", "", "", ""] for p in pending]
    head = ["pair_id", "source", "timecode", "reason", "score", "decision", "status", "backend", "frames", "wall s"]
    return _table([*head, "s/frame", "peak RSS MB", "warp error"], rows)


def _plot_time_per_job(jobs: pd.DataFrame) -> bytes:
    fig = _new_figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    ax_time, ax_mem = fig.subplots(1, 2, width_ratios=[3, 1])
    wall = _col(jobs, "wall_s").fillna(0).to_numpy()
    colors = [COLORS.get(s, COLORS["failed"]) for s in jobs["status"]]
    x = np.arange(len(jobs))
    ax_time.bar(x, wall, color=colors, width=0.8)
    failed = (jobs["status"] != "done").to_numpy()
    if failed.any():  # a job that failed at once has no visible bar
        ax_time.scatter(x[failed], wall[failed], marker="x", color=COLORS["failed"], zorder=3, label="failed")
        ax_time.legend(fontsize=7)
    if len(jobs) <= 40:
        ax_time.set_xticks(x, [str(p) for p in jobs["pair_id"]], rotation=60, ha="right", fontsize=7)
    else:
        ax_time.set_xlabel("job (manifest order)")
    ax_time.set_ylabel("wall time (s)")
    ax_time.set_title("time per job (blue: done, red: failed)")
    spf = _col(jobs[jobs["status"] == "done"], "s_per_frame").dropna()
    ax_mem.hist(spf, bins=min(20, max(3, len(spf))), color=COLORS["done"])
    ax_mem.set_xlabel("seconds per frame")
    ax_mem.set_ylabel("jobs")
    ax_mem.set_title("time per frame")
    return _png(fig)


def _plot_run_quality(done: pd.DataFrame) -> bytes:
    fig = _new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    ax_hist, ax_gap = fig.subplots(1, 2)
    we = _col(done, "warp_error")
    ok = we.notna()
    ax_hist.hist(we[ok], bins=min(20, max(3, int(ok.sum()))), color=COLORS["done"])
    ax_hist.set_xlabel("warp error (8-bit levels; lower is steadier)")
    ax_hist.set_ylabel("jobs")
    ax_hist.set_title("warp error distribution")
    ax_gap.scatter(_col(done, "gap_frames")[ok], we[ok], color=COLORS["done"], s=18)
    ax_gap.set_xlabel("gap frames")
    ax_gap.set_ylabel("warp error")
    ax_gap.set_title("warp error vs gap length")
    return _png(fig)


# ----------------------------------------------------------------------------------------- eval pages


def eval_report_html(path: Path) -> str:
    """The HTML page for an eval Parquet file."""
    path = Path(path).absolute()
    rows, meta = read_eval(path)
    summaries = summarize(rows) if len(rows) else []
    done = rows[rows["status"] == "done"]
    failed = rows[rows["status"] != "done"]
    settings = [
        ("file", str(path)),
        ("created", str(meta.get("created", "-"))),
        ("held out", str(meta.get("drop") or ", ".join(sorted(rows["drop"].unique())))),
        ("size", "x".join(map(str, meta["size"])) if meta.get("size") else "full size"),
        ("clips", ", ".join(rows["clip_name"].unique())),
        ("gaps", str(rows["pair_id"].nunique())),
        ("backends", ", ".join(rows["backend"].unique())),
    ]
    plots = []
    if len(done):
        plots.append(("backend-comparison", "Per-backend comparison", _plot_backend_bars(summaries)))
        plots.append(("quality-distribution", "Quality distribution over gaps", _plot_distributions(done)))
        plots.append(("speed-vs-quality", "Speed and quality", _plot_speed_quality(done, summaries)))
        if done["clip_name"].nunique() > 1:
            plots.append(("per-clip", "Mean PSNR per clip", _plot_per_clip(done)))
    body = [
        f"<h1>semfi-batch eval report</h1><p class='sub'>{_e(str(path))} &middot; written {_now()}</p>",
        _section("settings", "Settings", _facts_table(settings)),
        _section("summary", "Summary per backend", _summary_table(summaries)),
        _section("plots", "Plots", "".join(_figure(i, t, png) for i, t, png in plots) or "<p>No results.</p>"),
        _section("samples", "Side by side", _eval_samples(rows)),
        _section(
            "failures",
            f"Failures ({len(failed)})",
            _table(
                ["clip", "gap", "backend", "error"],
                [[r["clip_name"], r["pair_id"], r["backend"], r.get("error") or ""] for r in failed.to_dict("records")],
                cls="failures",
            )
            if len(failed)
            else "<p>No failures.</p>",
        ),
    ]
    return _page("semfi-batch eval report", body)


def _summary_table(summaries: Sequence[BackendSummary]) -> str:
    rows = [
        [
            ("★ " if s.best else "") + s.backend,
            f"{s.gaps}" + (f" ({s.failed} failed)" if s.failed else ""),
            _fmt(s.psnr, 2),
            f"{_fmt(s.worst_psnr, 2)} ({s.worst_clip})",
            _fmt(s.ssim, 4),
            _fmt(s.worst_ssim, 4),
            f"{_fmt(s.warp_error, 2)} ({_fmt(s.warp_error_truth, 2)})",
            format_seconds(s.s_per_frame),
        ]
        for s in summaries
    ]
    head = [
        "backend",
        "gaps",
        "PSNR dB",
        "worst clip PSNR",
        "SSIM",
        "worst clip SSIM",
        "warp error (originals)",
        "s/frame",
    ]
    note = (
        "<p class='sub'>★ best: highest mean PSNR. Means over gaps; the worst clip is the one with the lowest "
        "mean PSNR. Warp error: lower is steadier; the originals' own figure is in brackets.</p>"
    )
    best = {i for i, s in enumerate(summaries) if s.best}
    return _table(head, rows, cls="summary", marked=best) + note


def _backend_colors(names: Sequence[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _plot_backend_bars(summaries: Sequence[BackendSummary]) -> bytes:
    names = [s.backend for s in summaries]
    colors = _backend_colors(names)
    fig = _new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    x = np.arange(len(names))
    for ax, mean, worst, label in (
        (axes[0], [s.psnr for s in summaries], [s.worst_psnr for s in summaries], "PSNR (dB)"),
        (axes[1], [s.ssim for s in summaries], [s.worst_ssim for s in summaries], "SSIM"),
    ):
        ax.bar(x, mean, color=[colors[n] for n in names])
        ax.scatter(x, worst, color="black", marker="v", zorder=3, label="worst clip")
        ax.set_xticks(x, [("★ " if s.best else "") + s.backend for s in summaries], rotation=20)
        ax.set_ylabel(label)
        finite = [v for v in mean + worst if v == v]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.3 or abs(hi) * 0.05 or 1.0
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"mean {label} (higher is better)")
        ax.legend(loc="lower right", fontsize=7)
    ax = axes[2]
    ax.bar(x, [s.warp_error for s in summaries], color=[colors[n] for n in names])
    truth = [s.warp_error_truth for s in summaries if s.warp_error_truth == s.warp_error_truth]
    if truth:
        ax.axhline(float(np.mean(truth)), color="black", linestyle="--", label="originals")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xticks(x, names, rotation=20)
    ax.set_title("warp error (lower is steadier)")
    return _png(fig)


def _plot_distributions(done: pd.DataFrame) -> bytes:
    names = list(dict.fromkeys(done["backend"]))
    colors = _backend_colors(names)
    fig = _new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    for ax, column, label in zip(fig.subplots(1, 2), ("psnr", "ssim"), ("PSNR (dB)", "SSIM"), strict=True):
        data = [done.loc[done["backend"] == n, column].dropna().to_numpy() for n in names]
        parts = ax.boxplot(data, patch_artist=True, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
        for patch, name in zip(parts["boxes"], names, strict=True):
            patch.set_facecolor(colors[name])
            patch.set_alpha(0.6)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per gap")
    return _png(fig)


def _plot_speed_quality(done: pd.DataFrame, summaries: Sequence[BackendSummary]) -> bytes:
    names = [s.backend for s in summaries]
    colors = _backend_colors(names)
    fig = _new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    ax_scatter, ax_time = fig.subplots(1, 2)
    for name in names:
        part = done[done["backend"] == name]
        ax_scatter.scatter(part["s_per_frame"].clip(lower=1e-4), part["psnr"], s=14, color=colors[name], label=name)
    ax_scatter.set_xscale("log")
    ax_scatter.set_xlabel("seconds per frame (log)")
    ax_scatter.set_ylabel("PSNR (dB)")
    ax_scatter.set_title("each gap: quality against speed")
    ax_scatter.legend(fontsize=7)
    x = np.arange(len(names))
    ax_time.bar(x, [max(s.s_per_frame, 1e-4) for s in summaries], color=[colors[n] for n in names])
    ax_time.set_yscale("log")
    ax_time.set_xticks(x, names, rotation=20)
    ax_time.set_ylabel("seconds per frame (log)")
    ax_time.set_title("time per frame")
    return _png(fig)


def _plot_per_clip(done: pd.DataFrame) -> bytes:
    table = done.pivot_table(index="clip_name", columns="backend", values="psnr", aggfunc="mean", sort=False)
    names = list(table.columns)
    colors = _backend_colors(list(dict.fromkeys(done["backend"])))
    fig = _new_figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table.index))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ax.bar(x + i * width - 0.4 + width / 2, table[name], width=width, color=colors[name], label=name)
    ax.set_xticks(x, list(table.index), rotation=20, ha="right", fontsize=8)
    finite = table.to_numpy()[np.isfinite(table.to_numpy())]
    if finite.size:
        ax.set_ylim(finite.min() - 2, finite.max() + 1)
    ax.set_ylabel("mean PSNR (dB)")
    ax.legend(fontsize=7)
    return _png(fig)


def _eval_samples(rows: pd.DataFrame) -> str:
    if "thumb_truth" not in rows:
        return "<p>No pictures in this file.</p>"
    shown = rows[rows["thumb_truth"].notna()]
    if shown.empty:
        return "<p>No pictures in this file.</p>"
    out = []
    for (clip, pair_id), group in shown.groupby(["clip_name", "pair_id"], sort=False):
        first = group.iloc[0]
        cells = [_bytes_cell(first["thumb_start"], f"start key (frame {first['start_frame']})", "key")]
        cells.append(_bytes_cell(first["thumb_truth"], "original (held out)", "truth"))
        for r in group.to_dict("records"):
            caption = f"{r['backend']}: {_fmt(r.get('psnr'), 2)} dB, SSIM {_fmt(r.get('ssim'), 3)}"
            cells.append(_bytes_cell(r.get("thumb_output"), caption, "gen"))
        cells.append(_bytes_cell(first["thumb_end"], f"end key (frame {first['end_frame']})", "key"))
        out.append(
            f"<div class='sheet' data-pair='{_e(str(pair_id))}'><h3>{_e(str(clip))}: frames "
            f"{first['start_frame']}-{first['end_frame']}</h3><p class='sub'>the gap whose keys differ most; "
            f"middle held-out frame</p><div class='strip'>{''.join(cells)}</div></div>"
        )
    return "".join(out)


def _bytes_cell(data, caption: str, kind: str) -> str:
    if data is None or (isinstance(data, float) and math.isnan(data)):
        return _img_cell(None, caption, kind)
    return _img_cell("data:image/jpeg;base64," + base64.b64encode(bytes(data)).decode(), caption, kind)


# -------------------------------------------------------------------------------------------- HTML


def _new_figure(**kw) -> Figure:
    # matplotlib is imported when a plot is drawn, not when a run that writes no plot starts.
    from matplotlib.figure import Figure

    return Figure(**kw)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _jpeg_uri(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ReportError("cannot encode a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def _figure(plot_id: str, title: str, png: bytes) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    return (
        f"<figure class='plot-box'><img class='plot' data-plot='{_e(plot_id)}' src='{uri}' alt='{_e(title)}'>"
        f"<figcaption>{_e(title)}</figcaption></figure>"
    )


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value, digits: int, unit: str = "") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.{digits}f}{unit}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def _section(section_id: str, title: str, content: str) -> str:
    return f"<section id='{section_id}'><h2>{_e(title)}</h2>{content}</section>"


def _facts_table(facts: Sequence[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    return f"<table class='facts'>{cells}</table>"


def _table(head: Sequence[str], rows: Sequence[Sequence], cls: str = "", marked: set[int] | None = None) -> str:
    """An HTML table; rows whose index is in `marked` get class 'best'."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        mark = " class='best'" if marked and i in marked else ""
        body.append(f"<tr{mark}>" + "".join(f"<td>{_e('' if v is None else v)}</td>" for v in row) + "</tr>")
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#1d2330;background:#fff;padding:0 16px}
h1{font-size:24px;margin:0}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
h3{font-size:14px;margin:0 0 2px}.sub{color:#5d6678;margin:2px 0 8px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 10px;border-bottom:1px solid #e6e9ef;text-align:left;
vertical-align:top}thead th{background:#f3f5f9}table.facts th{font-weight:600;color:#3b4254}
tr.best td{background:#eaf6ea;font-weight:600}table.failures td:last-child{color:#a3271f;font-family:monospace}
figure{margin:0}.plot-box{margin:10px 0 18px}.plot{max-width:100%;border:1px solid #e6e9ef}
.plot-box figcaption{color:#5d6678}.sheet{margin:14px 0;padding:10px;border:1px solid #e6e9ef;border-radius:6px}
.strip{display:flex;gap:6px;flex-wrap:wrap}.strip figure{text-align:center;font-size:12px;color:#3b4254}
.strip img{display:block;max-width:200px;border:2px solid #cfd6e2}.strip .key img{border-color:#7a8699}
.strip .truth img{border-color:#4aa564}.strip.before{margin-top:4px}.strip .gen img{border-color:#3b7dd8}
.none{width:160px;height:90px;display:flex;align-items:center;justify-content:center;background:#f3f5f9;color:#8a93a5}
"""
# Counts the pictures that decoded; a headless browser test reads the attributes from the DOM.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
});
"""


def _page(title: str, body: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_SCRIPT}</script></body></html>"
    )
