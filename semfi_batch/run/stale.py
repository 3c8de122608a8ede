"""Is a published job still the job of its manifest row? `splice` and `merge` ask before using one: its record's
key must be the key the row gives now (inputs by content, settings from run.json), and every output must match
the record. A job made from an older version of its source (the file replaced under the same name), or before
the row's source changed to other content, is stale: left out, with the reason. A row that names the same
content at another path (the source moved) keeps its job, as `run` does (the key is by content)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

from semfi_batch.manifest import KeyframePair
from semfi_batch.review.decisions import regeneration_overrides
from semfi_batch.run.inputs import CACHE_NAME, InputHashes
from semfi_batch.run.job import ENGINE_VERSION, JobPlanner
from semfi_batch.run.ledger import check_job_folder, read_record

# Why a job marked to regenerate is not used before a run has made it anew (its frames were judged not good).
REGENERATION_PENDING = "marked to regenerate in review: run the manifest again to make its new frames"
# A job's status on the report and review pages while splice would leave it out (`unusable_reason`).
UNUSABLE = "stale or damaged"


def run_planner(run_dir: Path) -> JobPlanner | None:
    """A planner giving the keys the run in `run_dir` gave (its run.json settings), or None for runs made before
    settings were kept."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    settings = info.get("settings") if isinstance(info, dict) else None
    if not isinstance(settings, dict):
        return None
    # Jobs regenerated from `review` were planned with their new seed/backend: so are their keys here.
    overrides = regeneration_overrides(Path(run_dir))
    return JobPlanner.from_settings(settings, InputHashes(Path(run_dir) / CACHE_NAME), overrides)


def published_job(
    job_dir: Path, pair: KeyframePair, planner: JobPlanner | None, source: Path | None = None, *, hashes: bool = True
) -> tuple[dict | None, str]:
    """(record, "") when `job_dir` holds a finished or failed job of `pair` as the row stands now (`source`: the
    row's source as resolved by the caller), else (None, why it cannot be used). A failed job counts only while
    its key is the row's (a failure of another version of the row says nothing of this one). `hashes=False`
    checks the outputs by size and count only (the page of a run), not by content."""
    record = read_record(job_dir)
    if record is None:
        return None, "no finished job (run `semfi-batch run` on the manifest first)"
    if source is not None:
        pair = dataclasses.replace(pair, source=source)
    if planner is None and "outputs" not in record:
        return record, ""  # a run made before records listed their outputs: only its frame count can be checked
    why = stale_reason(record, pair, planner)
    if why:
        return None, why if why == REGENERATION_PENDING else f"stale job: {why}"
    checked, why = check_job_folder(job_dir, None, hashes=hashes)
    if checked is None:
        return None, f"job folder does not match its record: {why}"
    return checked, ""


def unusable_reason(job_dir: Path, pair: KeyframePair, planner: JobPlanner | None, *, hashes: bool = False) -> str:
    """Why the finished or failed job in `job_dir` is not `pair`'s job as the row stands now (stale) or its
    outputs no longer match its record (damaged): the rule of splice and merge (`published_job`) as the report
    and review pages show it; "" when it is usable or has no readable record (not run: nothing to judge). A job
    marked to regenerate keeps its frames, and their decision, while they match its record, until a run makes
    them anew. `hashes=False`: outputs checked by size and count only (cheap enough for a page of every job)."""
    if read_record(job_dir) is None:
        return ""
    record, why = published_job(job_dir, pair, planner, hashes=hashes)
    if record is None and why == REGENERATION_PENDING:
        record, why = check_job_folder(job_dir, None, hashes=hashes)
    return "" if record is not None else why or "its job folder cannot be checked"


def unusable_jobs(run_dir: Path, pair_ids: Iterable[str] | None = None, *, hashes: bool = False) -> dict[str, str]:
    """`unusable_reason` of each job of the run folder's manifest (`pair_ids`: of these only; ids the manifest
    lacks are left out), its rows resolved as run resolved them; {} when the manifest cannot be read."""
    from semfi_batch.errors import SemfiError
    from semfi_batch.manifest import load_manifest
    from semfi_batch.run.sources import rows_as_run

    run_dir = Path(run_dir)
    try:
        rows = rows_as_run(run_dir, load_manifest(run_dir / "manifest.parquet", check_media=False))
    except (SemfiError, OSError):
        return {}
    wanted = [p for p in (rows if pair_ids is None else pair_ids) if p in rows]
    if not wanted:
        return {}
    planner = run_planner(run_dir)
    return {pid: unusable_reason(run_dir / "jobs" / pid, rows[pid], planner, hashes=hashes) for pid in wanted}


def stale_reason(record: dict, pair: KeyframePair, planner: JobPlanner | None) -> str:
    """Why a done or failed record is not the job `pair` gives now; "" when it is. A failed record lists no
    input hashes (its inputs may not have been read): its key alone decides."""
    recorded = str(record.get("source") or record.get("start_image") or "")
    current = str(pair.source or pair.start_image or "")
    moved = ""
    if recorded and current and Path(recorded).resolve() != Path(current).resolve():
        moved = f"made from {recorded}, the row now names {current}"
    files = (record.get("keyframes") or {}).get("files")
    hashed = isinstance(files, dict) or record.get("status") == "failed"
    if planner is None or not hashed:
        return moved or ("" if hashed else "made by an older version (no input hashes in its record)")
    if pair.keyframe_size is None and not pair.width and record.get("width") and record.get("height"):
        pair = dataclasses.replace(pair, keyframe_size=(int(record["width"]), int(record["height"])))
    if record.get("requested_backend") == "auto" and (pair.backend or planner.default_backend) == "auto":
        # `auto` chose by what this machine had when the job ran; the key is the chosen backend's.
        pair = dataclasses.replace(pair, backend=str(record.get("backend")))
    try:
        job = planner.plan(pair)
    except Exception as exc:  # noqa: BLE001 - an unknown backend and the like: the job cannot be confirmed
        return f"its key cannot be computed ({exc})"
    if job.key == record.get("key"):
        return ""  # the same content and settings: a source moved or copied elsewhere gives the same frames
    if moved:
        return moved
    old = list((files or {}).values())
    for (path, (_, digest)), before in zip(job.inputs.items(), old, strict=False):
        if isinstance(before, dict) and before.get("sha256") != digest:
            what = "is missing" if digest == "missing" else "was replaced or changed (its content differs)"
            return f"{path} {what} since the job ran"
    if pair.pair_id in planner.overrides and planner.without_overrides().plan(pair).key == record.get("key"):
        # The row and settings are as they were: only the regeneration asked for in `review` is pending.
        return REGENERATION_PENDING
    made_by = record.get("engine_version", 2)  # records before version 3 do not say: they were 2
    if made_by != ENGINE_VERSION:
        return (
            f"made by an older version of semfi-batch (engine {made_by}; this is {ENGINE_VERSION}), whose frames "
            "differ: run the manifest again to make it anew"
        )
    return "the row or the run's settings changed since the job ran (its key differs)"
