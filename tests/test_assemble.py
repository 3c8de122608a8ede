import numpy as np

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.media.probe import probe_video


def test_assemble_keys_and_inbetweens_in_order(tmp_path, capsys):
    for i in range(3):
        write_png(tmp_path / f"k{i}.png", np.full((32, 48, 3), 60 * i, np.uint8))
    rows = [
        {"pair_id": "a", "start_image": "k0.png", "end_image": "k1.png", "gap_frames": 2},
        {"pair_id": "b", "start_image": "k1.png", "end_image": "k2.png", "gap_frames": 3},
    ]
    manifest = write_manifest(rows, tmp_path / "keys.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend"]) == 0
    clip = tmp_path / "keys.mp4"
    assert main(["assemble", str(run), "-o", str(clip), "--fps", "10"]) == 0
    info = probe_video(clip)
    assert info.frame_count == 3 + 2 + 3  # three keys (the shared one once) and five in-betweens
    assert abs(info.avg_fps - 10) < 1e-6
    assert "5 generated" in capsys.readouterr().out


def test_assemble_refuses_video_runs(tmp_path, clip_factory, capsys):
    manifest = write_manifest(
        [{"pair_id": "v", "source": str(clip_factory(12)), "start_frame": 1, "end_frame": 4}], tmp_path / "v.parquet"
    )
    assert main(["run", str(manifest), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["assemble", str(tmp_path / "run"), "-o", str(tmp_path / "x.mp4")]) == 1
    assert "use `semfi-batch splice`" in capsys.readouterr().err
