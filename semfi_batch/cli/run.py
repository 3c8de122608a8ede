"""`semfi-batch run`: run every job of a manifest, resumably."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from semfi_batch.backends import DEFAULT_BACKEND, BackendOptions
from semfi_batch.backends.base import DEFAULT_MODELS_DIR, DEFAULT_SEMFI_CKPT
from semfi_batch.cli.app import INVOCATION, ManifestArg, app, console, stdout
from semfi_batch.errors import OptionError, RunInterrupted
from semfi_batch.run.finished import invocation, print_counts, write_stamp


@app.command(
    epilog="Example: semfi-batch run manifests/examples/demo.parquet --out runs/demo --backend flow",
)
def run(
    manifest: ManifestArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output root. Default: runs/<manifest stem>.")] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend", "-b", help="Backend for rows without their own (see `semfi-batch backends`), or auto."
        ),
    ] = DEFAULT_BACKEND,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run again the jobs that failed.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run every job again, finished or not.")] = False,
    device: Annotated[str, typer.Option(help="Device for model backends: auto, cpu, cuda, cuda:N.")] = "auto",
    models_dir: Annotated[Path, typer.Option(help="Folder of model files (semfi, wan-flf2v).")] = DEFAULT_MODELS_DIR,
    semfi_ckpt: Annotated[Path, typer.Option(help="SemFi Mixture-of-LoRA checkpoint.")] = DEFAULT_SEMFI_CKPT,
    vram_limit: Annotated[
        float | None, typer.Option(help="GPU memory budget in GB; above it the model is offloaded.")
    ] = None,
    memory: Annotated[
        str, typer.Option(help="Model placement: auto (all on the GPU when it fits), gpu, or offload.")
    ] = "auto",
    max_area: Annotated[
        int, typer.Option(help="Largest frame area (pixels) a video model generates at; larger keys are scaled.")
    ] = 1280 * 720,
    ckpt_every: Annotated[
        int, typer.Option(help="Save denoising state every K steps so a killed job resumes (0: off).")
    ] = 0,
    workers: Annotated[
        str,
        typer.Option(
            help="Worker processes (each loads the model once), or Ray actors with --executor ray. auto: one per "
            "physical core for the CPU backends (flow, blend, minterpolate) when there are enough jobs, else 1."
        ),
    ] = "auto",
    gpus: Annotated[str | None, typer.Option(help="GPUs to pin workers to, round-robin, e.g. 0,1,2,3.")] = None,
    shard: Annotated[
        str | None, typer.Option(help="Run only shard i of N (i/N, 0-based), by a stable hash of pair_id.")
    ] = None,
    executor: Annotated[str, typer.Option(help="local (processes on this machine) or ray.")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray instance).")
    ] = None,
    lease_ttl: Annotated[
        float | None, typer.Option(hidden=True, help="Seconds before a silent worker's lease expires (tests).")
    ] = None,
    preview: Annotated[
        bool,
        typer.Option(
            help="Also encode a preview clip.mp4 per job (an ffmpeg process per job: more than flow's own cost; "
            "`semfi-batch review` makes its own previews)."
        ),
    ] = False,
    rife_model: Annotated[
        Path | None, typer.Option(help="Practical-RIFE flownet.pkl for rife. Default: models/rife/flownet.pkl.")
    ] = None,
    rife_scale: Annotated[float, typer.Option(help="RIFE flow scale: 1.0, or 0.5 for 4K.")] = 1.0,
    rife_ensemble: Annotated[
        bool, typer.Option(help="RIFE: average flipped and time-reversed passes (4x the cost).")
    ] = False,
    allow_morph: Annotated[
        bool, typer.Option(help="Let non-generative backends bridge cuts and different shots (a morph).")
    ] = False,
    semantic_gap: Annotated[
        int, typer.Option(min=1, help="auto: gaps of at least this many frames go to semfi (with a GPU).")
    ] = 12,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    deinterlace: Annotated[
        bool,
        typer.Option(help="Interlaced sources: deinterlace the keys (bwdif) instead of generating per field."),
    ] = False,
) -> None:
    """Run an interpolation job per manifest row, skipping jobs already done.

    Outputs go to OUT/jobs/<pair_id>/frames/*.png (exactly gap_frames lossless frames), with --preview a
    preview OUT/jobs/<pair_id>/clip.mp4, and OUT/metrics.parquet. Kill it at any moment and run the same command
    again to finish the rest. Exit status 1 when any job failed."""
    from semfi_batch.run.engine import run_manifest

    started = invocation(INVOCATION)  # the code and settings this run starts with (its finished stamp)

    if memory not in ("auto", "gpu", "offload"):
        raise OptionError(f"--memory must be auto, gpu or offload, got {memory!r}")
    options = BackendOptions(
        device=device, models_dir=models_dir, semfi_ckpt=semfi_ckpt, vram_limit_gb=vram_limit,
        ckpt_every=ckpt_every, extra={
            "memory": memory, "max_area": max_area, "rife_model": rife_model, "rife_scale": rife_scale,
            "rife_ensemble": rife_ensemble, "allow_morph": allow_morph, "semantic_gap": semantic_gap,
            **({"deinterlace": True} if deinterlace else {}),
        },
    )  # fmt: skip
    if _finished_read_only(manifest, out, backend, options, retry_failed, force, shard):
        return
    try:
        summary = run_manifest(
            manifest, out, backend=backend, options=options, retry_failed=retry_failed, force=force,
            show_progress=not quiet, workers=parse_workers(workers), gpus=gpus.split(",") if gpus else None,
            shard=parse_shard(shard) if shard else None, executor=executor, ray_address=ray_address,
            lease_ttl_s=lease_ttl, preview=preview, command_options=_given_options(locals()),
        )  # fmt: skip
    except RunInterrupted as exc:  # before any job ran (reading the manifest, preparing the output root)
        console.print(f"interrupted by {signal.Signals(exc.signum).name}; re-run the same command to resume")
        raise typer.Exit(exc.exit_code) from None
    if summary.interrupted is not None:
        name = signal.Signals(summary.interrupted.signum).name
        console.print(
            f"interrupted by {name}: {summary.done} of {summary.total} jobs done, {summary.failed} failed; "
            f"metrics: {summary.metrics}. Re-run the same command to resume."
        )
        raise typer.Exit(summary.interrupted.exit_code)
    print_counts(
        stdout, str(manifest), summary.total, summary.done, summary.failed, summary.ran, summary.skipped,
        summary.wall_s,
    )  # fmt: skip
    if summary.failures:
        failed = Table(title="failed jobs", show_edge=False)
        failed.add_column("pair_id")
        failed.add_column("error")
        for pair_id, error in summary.failures:
            failed.add_row(pair_id, error)
        stdout.print(failed)
        console.print("re-run with --retry-failed to try the failed jobs again")
    stdout.print(f"outputs: {summary.out}/jobs/<pair_id>/frames  metrics: {summary.metrics}")
    _print_report_path(summary.out, up_to_date=summary.ran == 0)
    for death in summary.dead_workers:
        console.print(f"[red]error:[/red] {death}; the other workers went on", markup=True)
    if summary.dead_workers and summary.done + summary.failed < summary.total:
        console.print("re-run the same command to finish the jobs left")
    if summary.failed or summary.dead_workers:
        raise typer.Exit(1)
    if summary.done == summary.total and not (shard or force or retry_failed) and summary.deciding_files is not None:
        root = summary.out
        outputs = [root / "run.json", root / "ledger.jsonl", summary.metrics]
        counts = {"manifest": str(manifest), "total": summary.total}
        planned = summary.planned_files | summary.deciding_files
        write_stamp(root, started, planned, outputs, summary.job_keys, counts)


# The options that choose what the jobs make or whether a job may run (a morph across a cut), which a command
# to run the root again must repeat; --workers, --shard and the like only choose how the jobs are run.
_RERUN_OPTIONS = (
    "device", "models_dir", "semfi_ckpt", "vram_limit", "memory", "max_area", "ckpt_every", "rife_model",
    "rife_scale", "rife_ensemble", "allow_morph", "semantic_gap",
)  # fmt: skip


def _given_options(values: dict) -> list[str]:
    """The words of the `_RERUN_OPTIONS` this `run` was given other than their defaults, paths made absolute."""
    import inspect

    defaults = inspect.signature(run).parameters
    words: list[str] = []
    for name in _RERUN_OPTIONS:
        value = values[name]
        if value == defaults[name].default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag)  # every one of these flags is off unless given
        else:
            words += [flag, str(Path(value).absolute() if isinstance(value, Path) else value)]
    return words


def _finished_read_only(manifest, out, backend, options, retry_failed, force, shard) -> bool:
    """On a read-only output root (an archived run, a read-only mount): say that all is done when every job is
    finished, instead of failing on the first file the run would rewrite. False when the root is writable."""
    import json

    from semfi_batch.errors import OutputPathError
    from semfi_batch.manifest import check_writable, load_manifest
    from semfi_batch.review.decisions import regeneration_overrides
    from semfi_batch.run.engine import default_out_dir, run_settings, settings_differences, split_jobs
    from semfi_batch.run.job import JobPlanner
    from semfi_batch.run.layout import RunLayout
    from semfi_batch.run.ledger import JobLedger

    root = Path(out) if out else default_out_dir(manifest)
    if not (root / "jobs").is_dir():
        return False
    try:
        check_writable(root / "run.json")
        return False
    except OutputPathError:
        pass
    pairs = load_manifest(manifest).pairs
    planner = JobPlanner(backend, options, overrides=regeneration_overrides(root, pairs))
    jobs = [planner.plan(pair) for pair in pairs]
    if shard:
        from semfi_batch.plan import shard_of

        index, count = parse_shard(shard)
        jobs = [job for job in jobs if shard_of(job.pair_id, count) == index]
    ledger = JobLedger(RunLayout(root.absolute())).load()
    plan = split_jobs(jobs, ledger, retry_failed=retry_failed, force=force)
    if plan.todo:
        try:  # jobs that "need to run" because this run's settings are not the root's: say which
            kept = json.loads((root / "run.json").read_text()).get("settings") or {}
        except (OSError, ValueError, AttributeError):
            kept = {}
        differences = settings_differences(kept, run_settings(backend, planner, options, kept.get("preview", False)))
        made_with = f" (it holds results made with other settings: {'; '.join(differences)})" if differences else ""
        raise OutputPathError(
            f"output root {root} is read-only and {len(plan.todo)} of {len(jobs)} jobs still need to run{made_with}; "
            "make it writable or give another --out"
        )
    failed = [job.pair_id for job in plan.finished if ledger.status(job.pair_id, job.key) == "failed"]
    stdout.print(
        f"all {len(jobs)} jobs are finished in {root} ({len(jobs) - len(failed)} done, {len(failed)} failed); "
        "nothing to do (the folder is read-only, so nothing was rewritten)"
    )
    if failed:
        stdout.print(f"failed: {', '.join(failed[:20])}")
        raise typer.Exit(1)
    return True


def parse_workers(text: str) -> int | str:
    """--workers: "auto" or a positive whole number."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise typer.BadParameter(f"{text!r} is not a positive whole number or auto", param_hint="'--workers'")
    return int(text)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise OptionError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise OptionError(f"--shard {text}: need 0 <= i < N")
    return index, count


def _print_report_path(out: Path, *, up_to_date: bool = False) -> None:
    """Write the run's HTML report (unless nothing ran and it exists) and say where it is."""
    page = out / "report.html"
    if up_to_date and page.is_file():
        stdout.print(f"report: {page}  (with plots and quality figures: semfi-batch report {out})")
        return
    from semfi_batch.report import write_report

    try:
        # Warp error, plots and drawn thumbnails are left for `semfi-batch report`: they cost more per job
        # than `flow` itself.
        page = write_report(out, quick=True)
        stdout.print(f"report: {page}  (with plots and quality figures: semfi-batch report {out})")
    except Exception as exc:  # noqa: BLE001 - the run's outputs are done; a report problem must not fail it
        console.print(f"report not written ({type(exc).__name__}: {exc}); try: semfi-batch report {out}")


@app.command(
    epilog="Example: semfi-batch merge runs/big  (after `semfi-batch run big.parquet --out runs/big --shard i/4`)",
)
def merge(
    roots: Annotated[list[Path], typer.Argument(help="Output root(s) the shards wrote to.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Default: ROOT/metrics.parquet (one root), FIRST/metrics.merged.parquet (several)."
        ),
    ] = None,
) -> None:
    """Gather the records of a sharded run into one metrics.parquet. Exit 1 when jobs failed or are missing; exit 2
    when the roots were made with other settings or from other manifests."""
    from semfi_batch.output_files import check_output_file
    from semfi_batch.run.merge import merge_runs

    if out is not None:
        check_output_file(out, (".parquet",), "Parquet metrics", roots)
    summary = merge_runs(roots, out)
    stdout.print(
        f"{summary.out}: {summary.done} done, {summary.failed} failed, {len(summary.missing)} without a record, "
        f"{len(summary.stale)} stale"
    )
    if summary.missing:
        stdout.print(f"missing (first 20): {', '.join(summary.missing[:20])}")
    for pair_id, why in summary.stale[:20]:
        stdout.print(f"left out {pair_id}: {why}", markup=False)
    if summary.failed or summary.missing or summary.stale:
        raise typer.Exit(1)
