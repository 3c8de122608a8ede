"""Footage -> detect -> run -> splice -> report, through the CLI, on a clip with a hole in its timestamps."""

import numpy as np
import pyarrow.parquet as pq

from semfi_batch.cli import main
from semfi_batch.media.probe import probe_video
from tests.media_fixtures import BARCODE, decode_all, frame_number, make_clip, shot


def test_hole_in_timestamps_is_filled_without_moving_the_rest(tmp_path):
    # 60 numbered frames at 25 fps; frames 30-32 dropped from the file, their time left empty.
    graph = f"{shot(60)},{BARCODE},select='not(between(n,30,32))'[out]"
    clip = make_clip(tmp_path / "holed.mp4", graph, keep_timestamps=True)
    source = probe_video(clip)
    assert source.frame_count == 57

    manifest = tmp_path / "damage.parquet"
    assert main(["detect", str(clip), "-o", str(manifest), "--mode", "damage"]) == 0
    rows = pq.read_table(manifest).to_pylist()
    assert [(r["start_frame"], r["end_frame"], r["mode"], r["gap_frames"], r["reason"]) for r in rows] == [
        (29, 30, "insert", 3, "timestamp_gap")
    ]
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend"]) == 0
    spliced = tmp_path / "filled.mp4"
    assert main(["splice", str(run), "-o", str(spliced)]) == 0
    assert main(["report", str(run), "-o", str(tmp_path / "report.html")]) == 0

    out = probe_video(spliced)
    assert out.frame_count == 60
    assert np.allclose(np.diff(out.frame_times), 0.04, atol=1e-3)  # the hole is filled, evenly
    assert abs(out.frame_times[-1] - source.frame_times[-1]) < 1e-3  # nothing after it moved
    numbers = [frame_number(f) for f in decode_all(spliced)]
    assert numbers[:30] == list(range(30)) and numbers[33:] == list(range(33, 60))
    assert (tmp_path / "report.html").stat().st_size > 10_000
