"""One self-contained HTML page for a run folder or an eval file: numbers, matplotlib plots and pictures,
all embedded (data: URIs), so the page works offline and can be mailed or archived as one file.

- `run_page`: the run page (summary, time per job, quality, a contact sheet per job, failures). `run` writes
  it at its end (`quick`), so it is made from the job records without pandas or matplotlib.
- `eval_page`: the eval page (per-backend summary, plots, one gap per clip side by side), made from the
  eval file's pandas table; imported only when an eval file is asked for.
- `page`: the HTML pieces both are made of."""

from __future__ import annotations

import os
from pathlib import Path

from semfi_batch.atomic_write import remove_dead_temporaries, write_atomic
from semfi_batch.report.page import ReportError
from semfi_batch.report.run_page import job_quality, run_report_html
from semfi_batch.run.layout import check_outside_state

__all__ = ["ReportError", "default_report_path", "job_quality", "write_report"]


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
        check_outside_state(out, source)
        # Links to the preview clips are relative to the page, so a run folder can be moved with its report.
        link_root = os.path.relpath(source.absolute(), out.absolute().parent)
        page = run_report_html(source, max_sheets=max_sheets, link_root=link_root, quick=quick)
    elif source.is_file() and _is_eval_file(source):
        from semfi_batch.report.eval_page import eval_report_html

        page = eval_report_html(source)
    elif source.exists():
        raise ReportError(f"{source} is neither a run folder nor an eval file (from `semfi-batch eval`)")
    else:
        raise ReportError(f"not found: {source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(out)
    write_atomic(out, page.encode("utf-8"))
    return out


def _is_eval_file(path: Path) -> bool:
    from semfi_batch.evaluate import is_eval_file  # with pandas: only for a file, never for a run folder

    return is_eval_file(path)
