"""The run page shows the run as splice sees it: each row's source resolved as splice resolves it (never
against the directory `report` runs in), and only the rows of the run's manifest counted."""

from __future__ import annotations

import re
from pathlib import Path

from semfi_batch.backends import BackendOptions
from semfi_batch.manifest import write_manifest
from semfi_batch.report import write_report
from semfi_batch.run.engine import run_manifest
from tests.conftest import numbered_clip


def run_from(folder: Path, manifest: str, run_dir: str, monkeypatch) -> None:
    """`semfi-batch run MANIFEST --out RUN_DIR --backend blend` in `folder`, paths as given (relative)."""
    monkeypatch.chdir(folder)
    summary = run_manifest(Path(manifest), Path(run_dir), backend="blend", options=BackendOptions(),
                           show_progress=False, preview=False)  # fmt: skip
    assert not summary.failures


def facts(html: str) -> dict[str, str]:
    return dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html))


def test_the_run_page_finds_a_relative_source_wherever_report_runs(tmp_path, monkeypatch):
    (tmp_path / "man").mkdir()
    numbered_clip(tmp_path / "man" / "clip.mp4", 30)
    write_manifest([{"pair_id": "p1", "source": "clip.mp4", "start_frame": 20, "end_frame": 24}],
                   tmp_path / "man" / "m.parquet")  # fmt: skip
    run_from(tmp_path / "man", "m.parquet", "../run", monkeypatch)
    # Another clip.mp4 (another timecode) where the page is written from: not the run's source.
    (tmp_path / "other").mkdir()
    numbered_clip(tmp_path / "other" / "clip.mp4", 60, fps="30000/1001")
    pages = {}
    for cwd in ("man", "other", "."):
        monkeypatch.chdir(tmp_path / cwd)
        pages[cwd] = write_report(tmp_path / "run", tmp_path / f"from_{cwd}.html").read_text()
    for cwd, html in pages.items():
        assert "<td>p1</td><td>clip.mp4</td><td>00:00:00:21-00:00:00:23</td>" in html, cwd
        assert len(re.findall(r"<figcaption>original #", html)) == 3, cwd


def test_the_run_page_counts_only_the_rows_of_the_runs_manifest(tmp_path, monkeypatch):
    numbered_clip(tmp_path / "clip.mp4", 30)
    write_manifest([{"pair_id": "p1", "source": "clip.mp4", "start_frame": 10, "end_frame": 14}],
                   tmp_path / "m1.parquet")  # fmt: skip
    write_manifest([{"pair_id": "p2", "source": "clip.mp4", "start_frame": 20, "end_frame": 23}],
                   tmp_path / "m2.parquet")  # fmt: skip
    run_from(tmp_path, "m1.parquet", "run", monkeypatch)
    run_from(tmp_path, "m2.parquet", "run", monkeypatch)  # p1's job stays in jobs/, not in the manifest
    html = write_report(tmp_path / "run", tmp_path / "page.html").read_text()
    shown = facts(html)
    assert (shown["jobs in manifest"], shown["done"], shown["frames generated"]) == ("1", "1", "2")
    assert re.findall(r"class='sheet' data-pair='([^']+)'", html) == ["p2"]
    outside = html[html.index("<section id='outside'>") :]
    assert "Jobs not in the manifest (1)" in outside and "<td>p1</td>" in outside
