"""`assemble` of keys of an odd size into H.264, whose 4:2:0 colour needs even sides: the clip was padded with a
black column and row, without a word; now the edge is repeated and a note says the clip's size."""

import subprocess

import numpy as np

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.media.probe import probe_video


def test_an_odd_size_is_made_even_by_repeating_the_edge_and_said(tmp_path, capsys):
    for name, level in (("a", 60), ("b", 160)):
        write_png(tmp_path / f"{name}.png", np.full((47, 33, 3), level, np.uint8))
    manifest = write_manifest(
        [{"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1}], tmp_path / "k.parquet"
    )
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    capsys.readouterr()
    clip = tmp_path / "odd.mp4"
    assert main(["assemble", str(run), "-o", str(clip)]) == 0
    assert "33x47 frames are 34x48 in odd.mp4" in capsys.readouterr().err
    info = probe_video(clip)
    assert (info.width, info.height) == (34, 48)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "1", "-vf",
         "scale=in_color_matrix=bt709:in_range=tv:flags=accurate_rnd+full_chroma_int,format=gray",
         "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    first = np.frombuffer(raw, np.uint8).reshape(48, 34)
    assert np.abs(first[:, -1].astype(int) - 60).max() <= 3 and np.abs(first[-1].astype(int) - 60).max() <= 3
