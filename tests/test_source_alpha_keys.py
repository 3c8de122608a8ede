"""Jobs whose keys come from a video source with alpha enter their key with the premultiplied interpolation, as
image keys with alpha do: finished before it (made straight), they were kept by `run` and taken by `splice`
(a ProRes 4444 sprite's frames 65 of 155 visible pixels more than 8 levels off, up to 254, exit 0). The mark
is decided by the source's pixel format, probed once per source; sources without alpha keep their keys."""

from __future__ import annotations

import json
import subprocess

import pytest

import semfi_batch.run.job as job_mod
from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest, write_manifest
from semfi_batch.media.probe import stream_has_alpha
from semfi_batch.run.job import JobPlanner
from semfi_batch.run.stale import run_planner, stale_reason

# A white disk moving and fading over a transparent ground whose hidden colour is magenta and green.
SPRITE = (
    "color=c=black@0:s=32x24:r=12:d=0.75,format=rgba,"
    "geq=r=255:g=255*gt(X\\,16):b=255*lt(X\\,10):a=if(lt(hypot(X-8-T*12\\,Y-12)\\,6)\\,255*(1-T*0.8)\\,0)"
)
# name -> (encoder options, pixel format, whether its frames are read with alpha)
SOURCES = {
    "prores4444.mov": (["-c:v", "prores_ks", "-profile:v", "4444"], "yuva444p10le", True),
    "qtrle.mov": (["-c:v", "qtrle"], "argb", True),
    "ffv1.mkv": (["-c:v", "ffv1"], "yuva420p", True),
    "vp9.webm": (["-c:v", "libvpx-vp9", "-auto-alt-ref", "0", "-deadline", "realtime"], "yuva420p", True),
    "png.mov": (["-c:v", "png"], "rgba", True),
    "h264.mp4": (["-c:v", "libx264"], "yuv420p", False),
    "qtrle_rgb.mov": (["-c:v", "qtrle"], "rgb24", False),
    "vp9_plain.webm": (["-c:v", "libvpx-vp9", "-deadline", "realtime"], "yuv420p", False),
}


def _clip(path, encoder: list[str], pix_fmt: str):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", SPRITE, *encoder, "-pix_fmt", pix_fmt,
         str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_source_says_its_alpha_by_its_pixel_format(tmp_path, name):
    encoder, pix_fmt, alpha = SOURCES[name]
    assert stream_has_alpha(_clip(tmp_path / name, encoder, pix_fmt)) is alpha


def _keys(run, pair_ids) -> dict[str, str]:
    return {p: json.loads((run / "jobs" / p / "record.json").read_text())["key"] for p in pair_ids}


def test_jobs_of_a_source_with_alpha_are_made_again_and_others_kept(tmp_path, monkeypatch):
    sprite = _clip(tmp_path / "sprite.mov", *SOURCES["prores4444.mov"][:2])
    plain = _clip(tmp_path / "plain.mp4", *SOURCES["h264.mp4"][:2])
    rows = [
        {"pair_id": "alpha", "source": str(sprite), "start_frame": 1, "end_frame": 5, "gap_frames": 3},
        {"pair_id": "plain", "source": str(plain), "start_frame": 1, "end_frame": 5, "gap_frames": 3},
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    command = ["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]
    with monkeypatch.context() as before:  # as the engine planned before keys with alpha were premultiplied
        before.setattr(job_mod, "stream_has_alpha", lambda path: False, raising=False)
        assert main(command) == 0
    old = _keys(run, ("alpha", "plain"))
    pairs = {pair.pair_id: pair for pair in load_manifest(manifest).pairs}
    planner = run_planner(run)
    records = {p: json.loads((run / "jobs" / p / "record.json").read_text()) for p in pairs}
    # splice refuses the old frames of the source with alpha, and takes the others
    assert stale_reason(records["alpha"], pairs["alpha"], planner)
    assert not stale_reason(records["plain"], pairs["plain"], planner)
    assert main(command) == 0
    new = _keys(run, ("alpha", "plain"))
    assert new["plain"] == old["plain"] and new["alpha"] != old["alpha"]
    assert all(not stale_reason(json.loads((run / "jobs" / p / "record.json").read_text()), pairs[p], planner)
               for p in pairs)  # fmt: skip


def test_each_source_is_probed_once_however_many_rows_name_it(tmp_path, monkeypatch):
    sprite = _clip(tmp_path / "sprite.mov", *SOURCES["qtrle.mov"][:2])
    rows = [
        {"pair_id": f"p{i}", "source": str(sprite), "start_frame": i, "end_frame": i + 2, "gap_frames": 1}
        for i in range(5)
    ]
    pairs = load_manifest(write_manifest(rows, tmp_path / "m.parquet")).pairs
    asked = []
    monkeypatch.setattr(job_mod, "stream_has_alpha", lambda path: asked.append(path) or True)
    planner = JobPlanner.from_settings({"backend": "blend"})
    assert len({planner.plan(pair).key for pair in pairs}) == len(pairs)
    assert len(asked) == 1


def test_a_source_that_cannot_be_probed_gets_no_mark(tmp_path):
    """Planning does not stop at an unreadable source: the manifest's checks and the job name it."""
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"not a video")
    assert JobPlanner.from_settings({"backend": "blend"})._marks_of_source(broken) == ()
