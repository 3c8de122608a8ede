"""The report page of a run folder: summary (done / failed / not run, time in total and per frame, memory),
time per job, quality (warp error of each job's start key -> frames -> end key, motion estimated on the frames
themselves), a contact sheet per job, and the failures with their errors.

`run` writes it at its end (`quick`: no plots, no warp error measured, the run's own frame files linked), so
it is made from the job records as plain dicts: no pandas, whose import and teardown cost a small run about
0.4 s (bench/whole_run.py); matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import pyarrow.parquet as pq

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import SemfiError
from semfi_batch.manifest import KeyframePair, load_manifest
from semfi_batch.media.frames import as_rgb8, read_image_rgb8, resize
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.metrics import job_warp_error
from semfi_batch.report.page import (
    SHEET_THUMB_WIDTH,
    ReportError,
    duration,
    esc,
    facts_table,
    figure_html,
    figure_png,
    fmt,
    html_table,
    img_cell,
    jpeg_uri,
    new_figure,
    now,
    page_html,
    section,
)
from semfi_batch.run.sources import rows_as_run
from semfi_batch.run.stale import UNUSABLE, run_planner, unusable_reason

SHEET_FRAMES = 4  # generated frames shown per contact sheet, evenly spread over the gap
QUALITY_CACHE = ".report-quality.json"
COLORS = {"done": "#3b7dd8", "failed": "#d8453b"}


@dataclass
class RunJobs:
    """What the page shows of a run folder. `jobs`: one row per manifest row that has a job record, in
    manifest order (a row is a record, a dict: a field it lacks is missing, None from .get); `order`: the
    manifest's pair_ids; `outside`: records of jobs the manifest no longer has (an earlier manifest's), which
    splice leaves out and the page lists apart, counting none of them; `sources`: each row's source video,
    resolved as splice resolves it (not against the current directory); `info`: run.json; `unusable`: records of
    the manifest's rows that are no longer their row's job (stale: the row, an input or the settings changed
    since) or whose outputs no longer match them (damaged), each with `why`: splice leaves them out, the next
    run makes them again, and the page counts them apart, in no figure of the done jobs."""

    jobs: list[dict]
    order: list[str]
    outside: list[dict]
    sources: dict[str, Path]
    info: dict
    unusable: list[dict] = field(default_factory=list)


def load_run(run_dir: Path) -> RunJobs:
    """The jobs of a run folder. Job records (jobs/<pair_id>/record.json) are the truth of each job while they
    are their row's job (as splice and merge judge: `published_job`, outputs checked by size and count), the
    run's manifest (its copy, manifest.parquet) of which jobs are the run's; metrics.parquet adds the user's
    columns."""
    run_dir = Path(run_dir)
    jobs = run_dir / "jobs"
    if not jobs.is_dir() and not (run_dir / "metrics.parquet").exists():
        raise ReportError(f"{run_dir} is not a run folder (no jobs/ or metrics.parquet; see `semfi-batch run`)")
    info = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):  # run.json only adds the manifest's path
        info = json.loads((run_dir / "run.json").read_text())
    order, sources, pairs = _manifest_rows(run_dir)
    records = {}
    for path in sorted(jobs.glob("*/record.json")) if jobs.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a record is written atomically; an unreadable one belongs to no finished job
        if not isinstance(record, dict):
            continue
        # A job is its folder, as run, splice and review read it (jobs/<pair_id>), whatever id its record names:
        # a folder renamed or copied by hand (jobs/p1 kept as jobs/p1_old) is not p1's job, and stood for it.
        records[path.parent.name] = {**record, "pair_id": path.parent.name}
    unusable = []
    if pairs:
        planner = run_planner(run_dir)
        for pair_id in list(records):
            if pair_id in pairs and (why := unusable_reason(run_dir / "jobs" / pair_id, pairs[pair_id], planner)):
                unusable.append({**records.pop(pair_id), "why": why})
    rows = list(records.values())
    metrics = _read_metrics(run_dir / "metrics.parquet")
    if metrics is not None:
        columns, metric_rows = metrics
        if not jobs.is_dir() and not order:
            # A folder of metrics.parquet alone: its rows are all there is. Beside a manifest or jobs/, a row
            # without a readable record is no finished job (the record is the truth), however metrics.parquet
            # once counted it.
            rows = metric_rows
        elif rows and "pair_id" in columns:
            known = {name for row in rows for name in row}
            extra = [c for c in columns if c not in known]
            by_pair = {}
            for row in metric_rows:
                by_pair.setdefault(row.get("pair_id"), row)
            rows = [{**row, **{c: by_pair.get(row.get("pair_id"), {}).get(c) for c in extra}} for row in rows]
    rank = {p: i for i, p in enumerate(order)}
    rows.sort(key=lambda row: (rank.get(row.get("pair_id"), len(rank)), str(row.get("pair_id"))))
    unusable.sort(key=lambda row: rank.get(row.get("pair_id"), len(rank)))
    if not order:  # a folder without a manifest: its records are all there is
        return RunJobs(rows, order, [], sources, info)
    current = [r for r in rows if r.get("pair_id") in rank]
    return RunJobs(current, order, [r for r in rows if r.get("pair_id") not in rank], sources, info, unusable)


def _manifest_rows(run_dir: Path) -> tuple[list[str], dict[str, Path], dict[str, KeyframePair]]:
    """(pair_ids of the run's manifest in order, each video row's source resolved as splice resolves it, each
    row by pair_id with its files so resolved)."""
    path = run_dir / "manifest.parquet"
    if not path.exists():
        return [], {}, {}
    from semfi_batch.run.sources import manifest_sources

    try:
        manifest = load_manifest(path, check_media=False)
    except SemfiError:  # rows that no longer validate: the page still counts them, without their sources
        with pq.ParquetFile(path) as parquet:  # not pq.read_table: see _read_metrics
            return [str(p) for p in parquet.read(columns=["pair_id"]).column("pair_id").to_pylist()], {}, {}
    return [p.pair_id for p in manifest.pairs], manifest_sources(run_dir, manifest), rows_as_run(run_dir, manifest)


def _read_metrics(path: Path) -> tuple[list[str], list[dict]] | None:
    """(column names, rows) of metrics.parquet; None when absent or unreadable (the job records are the truth
    anyway)."""
    if not path.exists():
        return None
    try:
        with pq.ParquetFile(path) as parquet:  # not pq.read_table, which imports pyarrow.dataset (0.06 s)
            table = parquet.read()
        return table.column_names, table.to_pylist()
    except Exception as exc:  # noqa: BLE001 - a damaged metrics file must not take the page down
        print(f"notice: {path} is unreadable ({type(exc).__name__}); the report uses the job records", file=sys.stderr)
        return None


def run_report_html(run_dir: Path, *, max_sheets: int = 200, link_root: str = ".", quick: bool = False) -> str:
    """The HTML page for a run folder; links to files of the run start with `link_root` (the run folder
    relative to where the page will be)."""
    run_dir = Path(run_dir).absolute()
    run = load_run(run_dir)
    jobs, order, info = run.jobs, run.order, run.info
    failed = [r for r in jobs if r.get("status") != "done"]
    measured = _run_quality(run_dir, jobs, measure=not quick)
    jobs = [{**r, "warp_error": measured.get(str(r.get("pair_id")), math.nan)} for r in jobs]
    jobs = _with_review_facts(run_dir, jobs, run.sources)
    done = [r for r in jobs if r.get("status") == "done"]

    unusable = run.unusable
    listed = {r.get("pair_id") for r in [*jobs, *unusable]}
    pending = [p for p in order if p not in listed]
    frames = sum(_numbers(done, "frames"))
    wall_done = sum(_numbers(done, "wall_s"))
    facts = [
        ("jobs in manifest", str(len(order) if order else len(jobs))),
        ("done", str(len(done))),
        ("failed", str(len(failed))),
        ("stale or damaged (made again by the next run)", str(len(unusable))),
        ("skipped / not run yet", str(len(pending))),
        ("frames generated", f"{frames:.0f}"),
        ("total job time", duration(sum(_numbers(jobs, "wall_s")))),
        ("time per frame", f"{wall_done / frames:.3f} s" if frames else "-"),
        ("median time per frame", fmt(_median(_numbers(done, "s_per_frame")), 3, " s")),
        ("peak memory (RSS)", fmt(max(_numbers(jobs, "peak_rss_mb"), default=math.nan), 0, " MB")),
        ("peak GPU memory", fmt(max(_numbers(jobs, "peak_gpu_mb"), default=math.nan), 0, " MB")),
        ("backends", ", ".join(f"{b} ({n})" for b, n in _counts(jobs, "backend")) or "-"),
        ("mean warp error", fmt(_mean(_numbers(done, "warp_error")), 2)),
        ("review decisions", ", ".join(f"{n} {d}" for d, n in _counts(jobs, "decision")) or "-"),
    ]
    if info.get("manifest"):
        facts.insert(0, ("manifest", str(info["manifest"])))

    figures = []
    if jobs and not quick:
        figures.append(("time-per-job", "Time per job", _plot_time_per_job(jobs)))
        if done:
            figures.append(("quality", "Quality: temporal consistency per job", _plot_run_quality(done)))
    if quick:
        plot_html = f"<p>Plots are drawn by <code>semfi-batch report {esc(str(run_dir))}</code>.</p>"
    else:
        plot_html = "".join(figure_html(i, t, png) for i, t, png in figures) or "<p>No finished jobs.</p>"
    max_sheets = max(0, max_sheets)
    sheets = [_contact_sheet(run_dir, row, link_root, linked=quick) for row in done[:max_sheets]]
    omitted = max(0, len(done) - max_sheets)

    body = [
        f"<h1>semfi-batch run report</h1><p class='sub'>{esc(str(run_dir))} &middot; written {now()}</p>",
        section("summary", "Summary", facts_table(facts)),
        section("plots", "Plots", plot_html),
        section(
            "failures",
            f"Failures ({len(failed)})",
            html_table(
                ["pair_id", "backend", "wall s", "error"],
                [[r.get("pair_id"), r.get("backend"), fmt(r.get("wall_s"), 2), r.get("error") or ""] for r in failed],
                cls="failures",
            )
            if len(failed)
            else "<p>No failures.</p>",
        ),
        section(
            "sheets",
            "Contact sheets",
            "<p class='sub'>start key, generated frames (numbered within the gap), end key; below them, for "
            "replace rows, the original frames they replace (before / after).</p>"
            + "".join(sheets)
            + (f"<p>{omitted} more finished job(s) not shown (--max-sheets {max_sheets}).</p>" if omitted else ""),
        ),
        section("jobs", "All jobs", _jobs_table(jobs, pending, unusable)),
    ]
    if unusable:
        body.insert(4, _unusable_section(unusable))
    if run.outside:
        body.append(_outside_section(run.outside))
    return page_html("semfi-batch run report", body)


def job_quality(run_dir: Path, *, measure: bool = True) -> dict[str, float]:
    """Warp error per finished job of a run folder (recorded, cached, or measured now and cached)."""
    jobs = load_run(Path(run_dir)).jobs
    return _run_quality(Path(run_dir).absolute(), jobs, measure=measure) if jobs else {}


def _with_review_facts(run_dir: Path, jobs: list[dict], sources: dict[str, Path]) -> list[dict]:
    """Add what a reviewer judges by: the row's source (`source_path`, resolved as splice resolves it) and its
    file name, timecode of the gap at the source's rate, and the decision from `semfi-batch review`
    (RUN/decisions.json); reason and score come with the manifest's columns."""
    from semfi_batch.review.decisions import DecisionError, current_decisions, decision_of
    from semfi_batch.review.timecode import file_timecode_rate, timecode

    try:
        decisions = current_decisions(run_dir, unusable={str(r.get("pair_id")): "" for r in jobs})  # judged already
    except DecisionError:
        decisions = {}
    clocks: dict[Path, tuple[float | None, str | None]] = {}  # source -> (frame rate, start timecode)
    rows = []
    for r in jobs:
        source = sources.get(str(r.get("pair_id")))
        row = {**r, "source_path": source, "source_name": "", "timecode": ""}
        row["decision"] = decision_of(decisions, str(r.get("pair_id")))
        rows.append(row)
        if source is None:
            continue
        if source not in clocks:
            try:
                info = probe_video(source)
                # The nominal rate (29.97 for a 29.97 fps file with frames missing), as the review page counts.
                clocks[source] = (file_timecode_rate(source, info.avg_fps) if info.avg_fps else None, info.timecode)
            except (SemfiError, OSError):
                clocks[source] = (None, None)
        row["source_name"] = source.name
        (fps, zero), start, end = clocks[source], _int(r.get("start_frame")), _int(r.get("end_frame"))
        if fps and start is not None and end is not None:
            last = end - 1 if r.get("mode") == "replace" else end
            row["timecode"] = f"{timecode(start + 1, fps, zero)}-{timecode(max(start + 1, last), fps, zero)}"
    return rows


def _int(value) -> int | None:
    number = _float(value)
    return None if math.isnan(number) else int(number)


def _numbers(rows: list[dict], name: str) -> list[float]:
    """The values of field `name` that are numbers (or read as one), in order; missing ones and NaN left out."""
    values = (_float(r.get(name)) for r in rows)
    return [v for v in values if not math.isnan(v)]


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _counts(rows: list[dict], name: str) -> list[tuple[object, int]]:
    """(value, count) of field `name` over `rows`, most frequent first (ties in order of appearance); rows
    without it are not counted."""
    return Counter(r.get(name) for r in rows if _present(r.get(name))).most_common()


def _job_frames(job_dir: Path) -> list[Path]:
    return sorted((job_dir / "frames").glob("*.png"))


def _small(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if w <= width:
        return frame
    return cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def _run_quality(run_dir: Path, jobs: list[dict], *, measure: bool = True) -> dict[str, float]:
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
    for record in (r for r in jobs if r.get("status") == "done"):
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
        if record.get("source_path"):
            info = probe_video(record["source_path"])
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
        esc(text)
        for text in (
            record.get("source_name") or "",
            f"reason {record.get('reason')}" if _present(record.get("reason")) else "",
            f"score {fmt(record.get('score'), 3)}" if _present(record.get("score")) else "",
            record.get("timecode") or "",
            f"decision: {record.get('decision', 'undecided')}",
        )
        if text
    )
    facts = (
        f"{esc(str(record.get('backend', '')))} &middot; {len(frames)} frames &middot; "
        f"{fmt(record.get('wall_s'), 2, ' s')} ({fmt(record.get('s_per_frame'), 3, ' s/frame')}) &middot; "
        f"warp error {fmt(record.get('warp_error'), 2)}"
    )
    href = _href(link_root, "jobs", pair_id, "clip.mp4")
    link = f" &middot; <a href='{esc(href)}'>preview clip</a>" if (job_dir / "clip.mp4").exists() else ""
    return (
        f"<div class='sheet' data-pair='{esc(pair_id)}' data-decision='{esc(str(record.get('decision', '')))}'>"
        f"<h3>{esc(pair_id)}</h3><p class='sub review'>{review}</p><p class='sub'>{facts}{link}</p>"
        f"<div class='strip after'>{''.join(cells)}</div>"
        + (f"<div class='strip before'>{before}</div>" if before else "")
        + "</div>"
    )


def _linked_cells(job_dir: Path, frames: list[Path], picks: list[int], link_root: str) -> list[str]:
    """A strip whose pictures link to the job's files (start.png, the picked frames, end.png)."""

    def cell(path: Path, caption: str, kind: str) -> str:
        if not path.is_file():
            return img_cell(None, caption, kind)
        href = _href(link_root, *path.relative_to(job_dir.parent.parent).parts)
        return img_cell(href, caption, kind, lazy=True)

    cells = [cell(job_dir / "start.png", "start key", "key")]
    cells += [cell(frames[i], f"#{i + 1} of {len(frames)}", "gen") for i in picks]
    return [*cells, cell(job_dir / "end.png", "end key", "key")]


def _href(*parts: str) -> str:
    """A link to a file of the run: its path with every segment percent-encoded, so that a folder named with `#`,
    `?` or `%` is a path and not a fragment, a query or an escape (HTML-escaped after, where it is written)."""
    return quote(Path(*parts).as_posix(), safe="/")


def _present(value) -> bool:
    return value is not None and value == value and value != ""  # value == value: not NaN


def _original_cells(record: dict, picks: list[int], count: int, generated: list) -> str:
    """The original frames a replace row swaps out, at the same places in the gap as the generated frames
    shown above them ('' for insert rows, image pairs or a source that cannot be read)."""
    source = record.get("source_path")
    start = _int(record.get("start_frame"))
    if record.get("mode") != "replace" or source is None or start is None or not picks:
        return ""
    from semfi_batch.review.cards import decode_frames

    height, width = generated[0][1].shape[:2]
    try:
        originals = decode_frames(probe_video(source), start + 1, max(picks) + 1, (width, height))
    except (SemfiError, OSError):
        return ""
    return "".join(_cell(originals[i], f"original #{i + 1} of {count}", "truth") for i in picks if i < len(originals))


def _spread(n: int, k: int) -> list[int]:
    """Up to k distinct indices of 0..n-1, evenly spread, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def _cell(image: np.ndarray | None, caption: str, kind: str) -> str:
    return img_cell(None if image is None else jpeg_uri(_small(image, SHEET_THUMB_WIDTH)), caption, kind)


def _jobs_table(jobs: list[dict], pending: Sequence[str], unusable: Sequence[dict] = ()) -> str:
    rows = [
        [
            r.get("pair_id"),
            r.get("source_name") or "",
            r.get("timecode") or "",
            r.get("reason") if _present(r.get("reason")) else "",
            fmt(r.get("score"), 3) if _present(r.get("score")) else "",
            r.get("decision"),
            r.get("status"),
            r.get("backend"),
            fmt(r.get("frames"), 0),
            fmt(r.get("wall_s"), 2),
            fmt(r.get("s_per_frame"), 3),
            fmt(r.get("peak_rss_mb"), 0),
            fmt(r.get("warp_error"), 2),
        ]
        for r in jobs
    ]
    rows += [[r.get("pair_id"), "", "", "", "", "", UNUSABLE, r.get("backend"), "", "", "", "", ""] for r in unusable]
    rows += [[p, "", "", "", "", "", "not run", "", "", "", "", "", ""] for p in pending]
    head = ["pair_id", "source", "timecode", "reason", "score", "decision", "status", "backend", "frames", "wall s"]
    return html_table([*head, "s/frame", "peak RSS MB", "warp error"], rows)


def _unusable_section(unusable: list[dict]) -> str:
    """Jobs of the manifest's rows that splice leaves out (stale or damaged), with the reason."""
    rows = [[r.get("pair_id"), r.get("status"), r.get("backend"), fmt(r.get("frames"), 0), r.get("why")]
            for r in unusable]  # fmt: skip
    return section(
        "unusable",
        f"Stale or damaged jobs ({len(unusable)})",
        "<p class='sub'>not their row's job as it stands now, or their files no longer match their record: not "
        "counted as done or failed, not spliced; the next run makes them again.</p>"
        + html_table(["pair_id", "recorded status", "backend", "recorded frames", "why"], rows, cls="failures"),
    )


def _outside_section(outside: list[dict]) -> str:
    """Jobs whose pair_id the run's manifest no longer has: kept in jobs/, but not the run's (splice leaves
    them out), so counted nowhere on the page."""
    rows = [[r.get("pair_id"), r.get("status"), r.get("backend"), r.get("start_frame"), r.get("end_frame")]
            for r in outside]  # fmt: skip
    return section(
        "outside",
        f"Jobs not in the manifest ({len(outside)})",
        "<p class='sub'>left in jobs/ by an earlier manifest; not counted above and not spliced.</p>"
        + html_table(["pair_id", "status", "backend", "start frame", "end frame"], rows),
    )


def _plot_time_per_job(jobs: list[dict]) -> bytes:
    fig = new_figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    ax_time, ax_mem = fig.subplots(1, 2, width_ratios=[3, 1])
    wall = np.nan_to_num(np.array([_float(r.get("wall_s")) for r in jobs]), nan=0.0)
    status = [r.get("status") for r in jobs]
    colors = [COLORS.get(s, COLORS["failed"]) for s in status]
    x = np.arange(len(jobs))
    ax_time.bar(x, wall, color=colors, width=0.8)
    failed = np.array([s != "done" for s in status])
    if failed.any():  # a job that failed at once has no visible bar
        ax_time.scatter(x[failed], wall[failed], marker="x", color=COLORS["failed"], zorder=3, label="failed")
        ax_time.legend(fontsize=7)
    if len(jobs) <= 40:
        ax_time.set_xticks(x, [str(r.get("pair_id")) for r in jobs], rotation=60, ha="right", fontsize=7)
    else:
        ax_time.set_xlabel("job (manifest order)")
    ax_time.set_ylabel("wall time (s)")
    ax_time.set_title("time per job (blue: done, red: failed)")
    spf = _numbers([r for r in jobs if r.get("status") == "done"], "s_per_frame")
    ax_mem.hist(spf, bins=min(20, max(3, len(spf))), color=COLORS["done"])
    ax_mem.set_xlabel("seconds per frame")
    ax_mem.set_ylabel("jobs")
    ax_mem.set_title("time per frame")
    return figure_png(fig)


def _plot_run_quality(done: list[dict]) -> bytes:
    fig = new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    ax_hist, ax_gap = fig.subplots(1, 2)
    measured = [r for r in done if not math.isnan(_float(r.get("warp_error")))]
    we = [_float(r.get("warp_error")) for r in measured]
    ax_hist.hist(we, bins=min(20, max(3, len(we))), color=COLORS["done"])
    ax_hist.set_xlabel("warp error (8-bit levels; lower is steadier)")
    ax_hist.set_ylabel("jobs")
    ax_hist.set_title("warp error distribution")
    ax_gap.scatter([_float(r.get("gap_frames")) for r in measured], we, color=COLORS["done"], s=18)
    ax_gap.set_xlabel("gap frames")
    ax_gap.set_ylabel("warp error")
    ax_gap.set_title("warp error vs gap length")
    return figure_png(fig)
