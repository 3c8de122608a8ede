"""The run page counts a job as done only while splice would use it: a job of a row edited since (its key
differs) or whose files no longer match its record is shown as stale or damaged, with the reason, counted apart
and left out of the done jobs' figures (frames, warp error, contact sheets)."""

from __future__ import annotations

import re

import cv2

from semfi_batch.cli import main
from semfi_batch.manifest import read_table, write_manifest
from semfi_batch.plan import shard_of
from semfi_batch.report import write_report
from tests.faults.conftest import image_manifest, run_args


def facts(html: str) -> dict[str, str]:
    return dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html))


def sheets(html: str) -> list[str]:
    return re.findall(r"class='sheet' data-pair='([^']+)'", html)


def test_a_job_of_a_row_edited_since_is_stale_not_done(tmp_path):
    # Shard 0 ran the row with 2 frames; the row was edited to 3 before shard 1 ran (its manifest is the root's
    # now): the page said done, with the old frame count.
    manifest = image_manifest(tmp_path, 6)
    rows = read_table(manifest).to_pylist()
    edited = next(r for r in rows if shard_of(r["pair_id"], 2) == 0)
    out = tmp_path / "out"
    assert main(run_args(manifest, out, "--shard", "0/2")) == 0
    edited["gap_frames"] = 3
    write_manifest(rows, manifest)
    assert main(run_args(manifest, out, "--shard", "1/2")) == 0
    html = write_report(out, tmp_path / "page.html").read_text()
    shown = facts(html)
    assert (shown["done"], shown["stale or damaged (made again by the next run)"]) == ("5", "1")
    assert shown["frames generated"] == "10" and shown["skipped / not run yet"] == "0"
    assert edited["pair_id"] not in sheets(html)
    unusable = html[html.index("<section id='unusable'>") :]
    assert f"<td>{edited['pair_id']}</td>" in unusable and "its key differs" in unusable
    assert re.search(rf"<td>{edited['pair_id']}</td>(<td>[^<]*</td>){{5}}<td>stale or damaged</td>", html)


def test_a_job_with_a_frame_deleted_or_replaced_is_damaged_not_done(tmp_path):
    # A deleted frame left the job done; a garbage frame stopped the page (or made its mean warp error "-").
    manifest = image_manifest(tmp_path, 4)
    out = tmp_path / "out"
    assert main(run_args(manifest, out)) == 0
    (out / "jobs" / "p01" / "frames" / "000002.png").unlink()
    (out / "jobs" / "p02" / "frames" / "000001.png").write_bytes(b"not a picture")
    html = write_report(out, tmp_path / "page.html").read_text()
    shown = facts(html)
    assert (shown["done"], shown["stale or damaged (made again by the next run)"]) == ("2", "2")
    assert shown["frames generated"] == "4" and shown["mean warp error"] not in ("-", "")
    assert sheets(html) == ["p00", "p03"]
    unusable = html[html.index("<section id='unusable'>") :]
    assert "frames/ holds 1 files, its record lists 2" in unusable
    assert "frames/000001.png has 13 bytes" in unusable


def test_image_keys_named_relative_to_the_manifest_are_found_as_run_found_them(tmp_path, monkeypatch):
    # The run's copy of the manifest resolved `a.png` against the run folder: every such job would be stale.
    image_manifest(tmp_path, 2)
    rows = [{"pair_id": f"p{i}", "start_image": f"k00{i}.png", "end_image": f"k00{i + 1}.png", "gap_frames": 2}
            for i in range(2)]  # fmt: skip
    write_manifest(rows, tmp_path / "rel.parquet")
    monkeypatch.chdir(tmp_path)
    assert main(run_args("rel.parquet", "out")) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    shown = facts(write_report(tmp_path / "out", tmp_path / "page.html").read_text())
    assert (shown["done"], shown["stale or damaged (made again by the next run)"]) == ("2", "0")


def test_a_frame_painted_over_in_place_at_its_own_size_is_damaged(tmp_path):
    # The page checks outputs by size and count (no hashes, for a page of every job); a frame rewritten in
    # place at the same size, after its record, passed for the generated one and was counted done.
    manifest = image_manifest(tmp_path, 3)
    out = tmp_path / "out"
    assert main(run_args(manifest, out)) == 0
    frame = out / "jobs" / "p01" / "frames" / "000001.png"
    painted = same_size_other_picture(frame)
    with open(frame, "r+b") as fh:  # in place, as an image editor saving over it does
        fh.write(painted)
    html = write_report(out, tmp_path / "page.html").read_text()
    shown = facts(html)
    assert (shown["done"], shown["stale or damaged (made again by the next run)"]) == ("2", "1")
    assert sheets(html) == ["p00", "p02"]
    assert "frames/000001.png was altered" in html[html.index("<section id='unusable'>") :]


def same_size_other_picture(path) -> bytes:
    """A valid PNG of the picture in `path` with one pixel changed, of exactly its byte count (the first such
    among a few hundred one-pixel edits, each encoded at every compression level)."""
    size = path.stat().st_size
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    for n in range(400):
        edited = picture.copy()
        y, x = divmod(n * 7, picture.shape[1])
        edited[y % picture.shape[0], x] ^= 1
        for level in range(10):
            ok, data = cv2.imencode(".png", edited, [cv2.IMWRITE_PNG_COMPRESSION, level])
            if ok and len(data) == size:
                return data.tobytes()
    raise AssertionError(f"no one-pixel edit of {path} encodes to {size} bytes")
