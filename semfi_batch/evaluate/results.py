"""Results: the eval Parquet file (EVAL_SCHEMA, one row per clip, gap and backend, with the settings and
backend parameters as metadata), written and read; the per-backend summary that `semfi-batch eval` prints
and `semfi-batch report` shows."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semfi_batch.atomic_write import write_atomic
from semfi_batch.backends import backend_class
from semfi_batch.evaluate.settings import EvalError, EvalSettings

EVAL_META_KEY = b"semfi_batch.eval"

EVAL_SCHEMA = pa.schema(
    [
        ("clip", pa.string()),  # path as given
        ("clip_name", pa.string()),
        ("clip_kind", pa.string()),  # "video" | "frames"
        ("drop", pa.string()),
        ("gap_index", pa.int64()),
        ("pair_id", pa.string()),
        ("start_frame", pa.int64()),  # the two kept frames (0-based, decode order)
        ("end_frame", pa.int64()),
        ("gap_frames", pa.int64()),
        ("shot", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        # The field order (tt, bb, tb, bt) of a clip whose frames were made per field, as `run` notes it; null for
        # progressive clips and frame folders.
        ("fields", pa.string()),
        ("backend", pa.string()),
        ("status", pa.string()),  # "done" | "failed"
        ("error", pa.string()),
        ("psnr", pa.float64()),  # mean over the gap's frames, dB
        ("psnr_min", pa.float64()),  # worst frame of the gap
        ("ssim", pa.float64()),
        ("ssim_min", pa.float64()),
        ("warp_error", pa.float64()),  # output: start key, generated frames, end key
        ("warp_error_truth", pa.float64()),  # the same figure for the original frames
        ("wall_s", pa.float64()),
        ("s_per_frame", pa.float64()),
        # Thumbnails (JPEG) for one telling gap per clip, null elsewhere: what `report` shows side by side.
        ("thumb_start", pa.binary()),
        ("thumb_truth", pa.binary()),
        ("thumb_output", pa.binary()),
        ("thumb_end", pa.binary()),
    ]
)
EVAL_COLUMNS = tuple(EVAL_SCHEMA.names)


def write_eval(rows: Sequence[dict], path: Path, settings: EvalSettings | None = None) -> Path:
    """Write rows to Parquet at `path` atomically, with the settings and backend parameters as metadata."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise EvalError(f"-o {path} is a folder; give a file name such as {path / 'eval.parquet'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{c: r.get(c) for c in EVAL_COLUMNS} for r in rows], schema=EVAL_SCHEMA)
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if settings is not None:
        meta.update(settings.describe())
        meta["backend_params"] = {
            n: {"version": backend_class(n).version, **backend_class(n).key_params(settings.options)}
            for n in settings.backends
        }
    table = table.replace_schema_metadata({EVAL_META_KEY: json.dumps(meta, default=str).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(path, sink.getvalue().to_pybytes())
    return path


def read_eval(path: Path) -> tuple[pd.DataFrame, dict]:
    """(rows, settings metadata) of an eval Parquet file; EvalError when it is not one."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise EvalError(f"eval file not found: {path}") from None
    except (OSError, pa.ArrowException) as exc:
        raise EvalError(f"cannot read {path} as Parquet: {exc}") from None
    missing = [c for c in ("clip_name", "backend", "status", "psnr", "ssim") if c not in table.column_names]
    if missing:
        raise EvalError(f"{path} is not a `semfi-batch eval` file: no column(s) {', '.join(missing)}")
    raw = (table.schema.metadata or {}).get(EVAL_META_KEY)
    return table.to_pandas(), json.loads(raw) if raw else {}


def is_eval_file(path: Path) -> bool:
    """True when `path` is a Parquet file with eval metadata or eval columns."""
    try:
        schema = pq.read_schema(path)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not an eval file
        return False
    return EVAL_META_KEY in (schema.metadata or {}) or {"clip_name", "psnr", "ssim"} <= set(schema.names)


@dataclass(frozen=True)
class BackendSummary:
    """One backend's figures over an evaluation: means over its gaps, and its worst clip (the clip with
    the lowest mean PSNR, and its figures)."""

    backend: str
    gaps: int
    failed: int
    psnr: float
    ssim: float
    warp_error: float
    warp_error_truth: float
    s_per_frame: float
    worst_clip: str
    worst_psnr: float
    worst_ssim: float
    best: bool = False


def summarize(rows: pd.DataFrame) -> list[BackendSummary]:
    """Per-backend summary, in first-seen order; `best` marks the highest mean PSNR (SSIM breaks ties) among
    the backends that made every gap: one whose failed gaps are left out of its means is not compared."""
    out = []
    for name, group in rows.groupby("backend", sort=False):
        done = group[group["status"] == "done"]
        failed = int((group["status"] != "done").sum())
        if done.empty:
            nan = float("nan")
            out.append(BackendSummary(name, 0, failed, nan, nan, nan, nan, nan, "", nan, nan))
            continue
        per_clip = done.groupby("clip_name", sort=False)[["psnr", "ssim"]].mean()
        worst = per_clip["psnr"].idxmin()
        frames = float(done["gap_frames"].sum())
        out.append(
            BackendSummary(
                backend=str(name),
                gaps=len(done),
                failed=failed,
                psnr=float(done["psnr"].mean()),
                ssim=float(done["ssim"].mean()),
                warp_error=float(done["warp_error"].mean()),
                warp_error_truth=float(done["warp_error_truth"].mean()),
                s_per_frame=float(done["wall_s"].sum() / frames) if frames else float("nan"),
                worst_clip=str(worst),
                worst_psnr=float(per_clip.loc[worst, "psnr"]),
                worst_ssim=float(per_clip.loc[worst, "ssim"]),
            )
        )
    ranked = [s for s in out if s.gaps and not s.failed]
    if ranked:
        top = max(ranked, key=lambda s: (s.psnr, s.ssim))
        out = [BackendSummary(**{**s.__dict__, "best": s is top}) for s in out]
    return out


def format_seconds(value: float | None) -> str:
    """About three significant digits without exponents: blend takes microseconds a frame, a video model
    minutes."""
    if value is None or math.isnan(value):
        return "-"
    for limit, digits in ((10, 0), (1, 1), (0.1, 2), (0.01, 3), (0.001, 4)):
        if value >= limit:
            return f"{value:.{digits}f}"
    return f"{value:.6f}"
