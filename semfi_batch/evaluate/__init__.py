"""Held-out-frame evaluation: drop frames from real footage, rebuild them with each backend, compare.

For every clip (a video file, or a folder of consecutive frames):
1. shots: the clip is streamed once at a small size through PySceneDetect's AdaptiveDetector, so that no
   gap ever spans a cut;
2. gaps: inside each shot, windows of `gap_frames + 2` frames are laid end to end (`every:K`: all of them,
   frames 0, K, 2K... are kept and the K-1 between rebuilt; `gaps:N`: N consecutive frames dropped at
   positions spread evenly over the clip); `max_gaps` limits how many per clip;
3. the clip is streamed again at the evaluation size (never held whole in memory); each window's two end
   frames go to every backend, and its output is compared with the dropped originals: PSNR, SSIM (mean
   and worst frame), warp error along the original footage's motion (see semfi_batch.metrics), and
   seconds per generated frame.

Frames are made and compared as `run` makes them: an interlaced video (run/job.interlaced) is resized field by
field and its frames are made per field and woven (media/fields.py), and its motion (warp error) is measured
along each field sequence, the two fields of a frame being two moments; its rows name the field order.

Results are one row per (clip, gap, backend) in Parquet (EVAL_COLUMNS); `summarize` gives the per-backend
table that `semfi-batch eval` prints and `semfi-batch report` shows.

Modules: settings (EvalSettings, DropSpec for `--drop`, EvalError), gaps (shots from cuts, plan_gaps), clips
(Clip, open_clip, clip_names, detect_cuts), scoring (one gap: each backend's frames made and measured,
thumbnails), evaluation (evaluate: every check before any work, then clip by clip), results (the eval Parquet
file written and read; summarize, format_seconds).
"""

from __future__ import annotations

from semfi_batch.evaluate.clips import IMAGE_SUFFIXES, SHOT_WIDTH, Clip, clip_names, detect_cuts, open_clip
from semfi_batch.evaluate.evaluation import ClipReport, evaluate
from semfi_batch.evaluate.gaps import DEFAULT_MAX_GAPS, Gap, plan_gaps, shots_from_cuts
from semfi_batch.evaluate.results import (
    EVAL_COLUMNS,
    EVAL_META_KEY,
    EVAL_SCHEMA,
    BackendSummary,
    format_seconds,
    is_eval_file,
    read_eval,
    summarize,
    write_eval,
)
from semfi_batch.evaluate.scoring import THUMB_WIDTH
from semfi_batch.evaluate.settings import DropSpec, EvalError, EvalSettings

__all__ = [
    "BackendSummary",
    "Clip",
    "ClipReport",
    "DEFAULT_MAX_GAPS",
    "DropSpec",
    "EVAL_COLUMNS",
    "EVAL_META_KEY",
    "EVAL_SCHEMA",
    "EvalError",
    "EvalSettings",
    "Gap",
    "IMAGE_SUFFIXES",
    "SHOT_WIDTH",
    "THUMB_WIDTH",
    "clip_names",
    "detect_cuts",
    "evaluate",
    "format_seconds",
    "is_eval_file",
    "open_clip",
    "plan_gaps",
    "read_eval",
    "shots_from_cuts",
    "summarize",
    "write_eval",
]
