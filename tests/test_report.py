"""The HTML report, rendered in a real browser (headless Chromium): a run on a real clip with a failed job,
and an eval of real footage. Chromium comes from Debian (`make system-deps`); without it these tests skip,
except under CI, where they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.evaluate import read_eval, summarize
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image, write_png
from semfi_batch.report import write_report
from tests.conftest import FOOTAGE

PLOT_BLUE = np.array([0x3B, 0x7D, 0xD8])  # report.COLORS["done"], the first backend's colour


def chromium() -> str:
    """Path of Debian's chromium; skip when missing, unless CI is set (then the missing browser fails)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("chromium is not installed; `make system-deps` installs it (apt-get install -y chromium)")
    pytest.skip("chromium is not installed (`make system-deps` installs it); under CI this test fails instead")


def render(page: Path, tmp: Path) -> tuple[str, np.ndarray]:
    """(DOM after load, screenshot as RGB) of `page` in headless Chromium, offline."""
    base = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--hide-scrollbars", "--window-size=1280,2000",
    ]  # fmt: skip
    dom = subprocess.run(
        [*base, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()], capture_output=True, timeout=120, check=True
    ).stdout.decode()
    shot = tmp / f"{page.stem}.png"
    subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    return dom, read_image(shot)


def images_loaded(dom: str) -> tuple[int, int]:
    """(pictures that decoded, pictures) as counted by the page's own load handler."""
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = re.search(r'data-images-total="(\d+)"', body)
    loaded = re.search(r'data-images-loaded="(\d+)"', body)
    assert total and loaded, f"the page's load handler did not run: {body}"
    return int(loaded.group(1)), int(total.group(1))


def assert_not_blank(shot: np.ndarray) -> None:
    gray = shot.mean(axis=-1)
    assert gray.std() > 25, "screenshot is (nearly) one colour"
    assert (gray < 200).mean() > 0.05, "screenshot is mostly white"
    near_blue = (np.abs(shot.astype(int) - PLOT_BLUE).sum(axis=-1) < 40).sum()
    assert near_blue > 2000, f"no plot bars visible ({near_blue} plot-blue pixels)"


def footage(*parts: str) -> Path:
    path = FOOTAGE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real footage not found: {path}")
    return path


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real `semfi-batch run` on an excerpt of a real clip (160x90 output), plus one job that fails."""
    clip = footage("clips", "bbb_720p25_5s_aac51.mp4")
    tmp = tmp_path_factory.mktemp("run")
    rows = [
        {"pair_id": f"p{i}", "source": str(clip), "start_frame": s, "end_frame": s + g + 1, "width": 160, "height": 90}
        for i, (s, g) in enumerate([(10, 3), (40, 1), (70, 6)])
    ]
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_png(tmp / name, rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    # A real failure at job time: ffmpeg's minterpolate refuses frames under 32x32.
    rows.append(
        {"pair_id": "tiny", "start_image": "a.png", "end_image": "b.png", "gap_frames": 2, "backend": "minterpolate"}
    )
    manifest = write_manifest(rows, tmp / "shots.parquet")
    out = tmp / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--preview"]) == 1  # 1: a job failed
    return out


def test_the_page_run_writes_links_the_jobs_files_and_decodes_nothing(real_run):
    """`run`'s own page (quick): no plots, no warp error measured, and each sheet's pictures are the job's
    own files, linked relative to the page (so the run folder moves with it), not thumbnails drawn in."""
    dom = (real_run / "report.html").read_text()
    assert "data:image" not in dom and "<img class='plot'" not in dom
    sources = re.findall(r"<img src='([^']+)' alt='([^']+)' loading='lazy'", dom)
    assert len(sources) == 5 + 3 + 6  # start key + generated frames (at most 4) + end key, per sheet
    assert all(not Path(src).is_absolute() and (real_run / src).is_file() for src, _ in sources)
    assert ("jobs/p2/frames/000006.png", "#6 of 6") in sources and ("jobs/p0/start.png", "start key") in sources


def test_run_report_renders_with_plots_sheets_and_failures(real_run, tmp_path, capsys):
    from semfi_batch.review.decisions import decide

    decide(real_run, ["p1"], "rejected")
    assert main(["report", str(real_run)]) == 0
    page = real_run / "report.html"
    assert f"report: {page}" in capsys.readouterr().out.replace("\n", "")
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched: works offline
    dom, shot = render(page, tmp_path)

    for section in ("summary", "plots", "failures", "sheets", "jobs"):
        assert f'id="{section}"' in dom
    assert len(re.findall(r'<img class="plot"', dom)) == 2
    assert re.findall(r'class="sheet" data-pair="([^"]+)"', dom) == ["p0", "p1", "p2"]
    # start key + generated frames (at most 4) + end key, per sheet: 5 + 3 + 6 = 14, plus the two plots,
    # plus the original frames under the generated ones (replace rows): 3 + 1 + 4.
    assert images_loaded(dom) == (24, 24)
    assert len(re.findall(r"<figcaption>original #", dom)) == 8
    # What a reviewer judges by: source, timecode at the source's rate (25 fps), decision.
    assert "<td>p0</td><td>bbb_720p25_5s_aac51.mp4</td><td>00:00:00:11-00:00:00:13</td>" in dom
    assert re.search(r'class="sheet" data-pair="p1" data-decision="rejected"', dom)
    assert "decision: rejected" in dom and "decision: undecided" in dom
    assert "minterpolate needs frames of at least 32x32" in dom
    assert 'href="jobs/p0/clip.mp4"' in dom and (real_run / "jobs/p0/clip.mp4").exists()  # relative: moves along
    facts = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", dom))
    assert (facts["jobs in manifest"], facts["done"], facts["failed"]) == ("4", "3", "1")
    assert facts["frames generated"] == "10" and facts["peak memory (RSS)"].endswith("MB")
    assert_not_blank(shot)


def test_run_report_counts_jobs_not_run_yet(real_run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(real_run, partial)
    shutil.rmtree(partial / "jobs" / "p1")  # as if the run was killed before p1 finished
    (partial / "metrics.parquet").unlink()
    page = write_report(partial, tmp_path / "partial.html")
    html = page.read_text()
    assert "<th>skipped / not run yet</th><td>1</td>" in html and "<th>done</th><td>2</td>" in html
    assert re.search(r"<td>p1</td>(<td>[^<]*</td>){5}<td>not run</td>", html)
    # Measured warp errors are cached per job (key and finish time) and not measured again.
    cache_path = partial / ".report-quality.json"
    cache = json.loads(cache_path.read_text())
    assert sorted(cache) == ["p0", "p2"] and all(v["warp_error"] > 0 for v in cache.values())
    cache["p0"]["warp_error"] = 42.0
    cache_path.write_text(json.dumps(cache))
    assert "warp error 42.00" in write_report(partial, tmp_path / "again.html").read_text()


def test_eval_report_on_real_footage_renders(tmp_path, capsys):
    clip = footage("clips", "bbb_720p25_5s_aac51.mp4")
    frames = footage("frames", "sintel_demo")
    out = tmp_path / "eval.parquet"
    args = ["eval", str(clip), str(frames), "-b", "flow,blend,minterpolate", "--drop", "every:2"]
    assert main([*args, "--size", "160x90", "--max-frames", "24", "--max-gaps", "3", "-o", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    page = tmp_path / "eval.html"
    assert page.exists() and str(page) in capsys.readouterr().out.replace("\n", "")
    dom, shot = render(page, tmp_path)

    plots = re.findall(r'<img class="plot" data-plot="([^"]+)"', dom)
    assert plots == ["backend-comparison", "quality-distribution", "speed-vs-quality", "per-clip"]
    sheets = re.findall(r'class="sheet" data-pair="([^"]+)"', dom)
    assert len(sheets) == 2  # one gap per clip, side by side
    # Each strip: start key, original, three backends, end key.
    assert images_loaded(dom) == (4 + 2 * 6, 4 + 2 * 6)
    best = next(s.backend for s in summarize(read_eval(out)[0]) if s.best)
    assert re.search(rf'<tr class="best"><td>★ {best}</td>', dom)
    assert_not_blank(shot)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "not found"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "is not a run folder"),
        (lambda d: write_manifest([{"pair_id": "a", "start_image": "x.png", "end_image": "y.png", "gap_frames": 1}],
                                  d / "m.parquet"), "neither a run folder nor an eval file"),
    ],
)  # fmt: skip
def test_report_on_wrong_input_gives_one_clear_error(tmp_path, capsys, make, message):
    assert main(["report", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_symlinked_report_is_refused_not_replaced(tmp_path, capsys):
    # Like every run file that is a symlink: refused with exit 2 (it was silently replaced by a file).
    from tests.faults.conftest import image_manifest, run_args

    manifest = image_manifest(tmp_path, 2)
    out = tmp_path / "out"
    assert main(run_args(manifest, out)) == 0
    (out / "report.html").unlink()
    (tmp_path / "elsewhere.html").write_text("keep")
    (out / "report.html").symlink_to(tmp_path / "elsewhere.html")
    assert main(["report", str(out)]) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert (out / "report.html").is_symlink() and (tmp_path / "elsewhere.html").read_text() == "keep"
