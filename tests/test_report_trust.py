"""The run page says what splice would do: a job counts as done only from its own readable record (never from
metrics.parquet alone), timecodes count at the source's nominal rate as the review page's do, and links to the
run's files work whatever the run folder is called."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from semfi_batch.cli import main
from semfi_batch.report import write_report
from tests.faults.conftest import image_manifest, run_args


def facts(html: str) -> dict[str, str]:
    return dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html))


def sheets(html: str) -> list[str]:
    return re.findall(r"class='sheet' data-pair='([^']+)'", html)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    manifest = image_manifest(folder, 3)
    assert main(run_args(manifest, folder / "out")) == 0
    return folder / "out"


@pytest.mark.parametrize(
    "damage", ["records deleted", "jobs deleted", "records corrupt", "one record deleted", "one job folder renamed"]
)
def test_a_job_without_a_readable_record_is_not_counted_done(image_run, tmp_path, damage):
    # metrics.parquet still lists every job as done; with no record left the page counted them all done.
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    if damage == "records deleted":
        for path in run.glob("jobs/*/record.json"):
            path.unlink()
    elif damage == "jobs deleted":
        shutil.rmtree(run / "jobs")
    elif damage == "records corrupt":
        for path in run.glob("jobs/*/record.json"):
            path.write_text("{truncated")
    elif damage == "one record deleted":
        (run / "jobs" / "p00" / "record.json").unlink()
    else:  # kept aside by hand: its record still names p00, which the page counted done from it
        (run / "jobs" / "p00").rename(run / "jobs" / "p00_old")
    html = write_report(run, tmp_path / "page.html").read_text()
    shown = facts(html)
    left = 2 if damage in ("one record deleted", "one job folder renamed") else 0
    assert (shown["jobs in manifest"], shown["done"], shown["failed"]) == ("3", str(left), "0")
    assert shown["skipped / not run yet"] == str(3 - left)
    assert len(sheets(html)) == left and "p00" not in sheets(html)
    if damage == "one job folder renamed":
        assert "Jobs not in the manifest (1)" in html and "<td>p00_old</td>" in html


def test_timecodes_count_at_the_sources_nominal_rate_as_the_review_page_does(tmp_path):
    # A 29.97 fps clip with 26 frames missing averages 29.6 fps: the page counted its timecode at that.
    from semfi_batch.manifest import write_manifest
    from semfi_batch.review.cards import RunReview

    clip = tmp_path / "clip.mp4"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30000/1001"]
    args += ["-vf", "select='not(between(n,30,55))'", "-fps_mode", "passthrough", "-frames:v", "2100"]
    subprocess.run([*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "0", str(clip)], check=True)
    rows = [{"pair_id": "late", "source": "clip.mp4", "start_frame": 2000, "end_frame": 2004, "mode": "replace"}]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    assert main(["run", str(manifest), "--out", str(tmp_path / "run"), "--quiet", "--backend", "blend"]) == 0
    card = RunReview(tmp_path / "run").cards()[0]
    assert card.fps == pytest.approx(30000 / 1001) and ";" in card.timecode_in
    html = write_report(tmp_path / "run", tmp_path / "page.html").read_text()
    assert f"<td>{card.timecode_in}-{card.timecode_out}</td>" in html


@pytest.mark.parametrize("name", ["run #1", "run?2", "run%41 100%"])
def test_links_to_the_runs_files_work_whatever_the_run_folder_is_called(image_run, tmp_path, name):
    # A '#' made the rest of the link a fragment, a '?' a query, a '%' an escape: the links pointed nowhere.
    import html as html_module
    from urllib.parse import unquote, urljoin, urlsplit

    run = tmp_path / name
    shutil.copytree(image_run, run)
    (run / "jobs" / "p00" / "clip.mp4").write_bytes(b"a preview clip")
    page = write_report(run, tmp_path / "pages" / "page.html", quick=True)
    links = [html_module.unescape(h) for h in re.findall(r"(?:href|src)=['\"]([^'\"]+)['\"]", page.read_text())]
    links = [h for h in links if not h.startswith(("data:", "#", "http"))]
    assert any(h.endswith("clip.mp4") for h in links) and any(h.endswith("start.png") for h in links)
    for href in links:
        url = urlsplit(urljoin(page.as_uri(), href))
        assert not url.fragment and not url.query, href
        assert Path(unquote(url.path)).is_file(), href
