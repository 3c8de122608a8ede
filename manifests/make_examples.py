"""Regenerate the example manifests in manifests/examples/ (paths are relative to that folder).

    .venv/bin/python manifests/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

from semfi_batch.manifest import write_manifest

HERE = Path(__file__).resolve().parent / "examples"
SINTEL = "../../../shared/footage/frames/sintel_demo"


def main() -> None:
    # Image pairs (animation keyframes): insert in-betweens between consecutive Sintel frames 16, 18, 20.
    write_manifest(
        [
            {"pair_id": "sintel_16_18", "start_image": f"{SINTEL}/frame_0016.png",
             "end_image": f"{SINTEL}/frame_0018.png", "gap_frames": 1, "shot": "sintel"},
            {"pair_id": "sintel_18_20", "start_image": f"{SINTEL}/frame_0018.png",
             "end_image": f"{SINTEL}/frame_0020.png", "gap_frames": 3, "shot": "sintel"},
        ],
        HERE / "images.parquet",
    )  # fmt: skip
    # Video rows on the demo clip: regenerate damaged stretches (replace) and re-time one moment (insert).
    write_manifest(
        [
            {"pair_id": "bunny_wakes", "source": "../../demo/bbb_720p25_5s.mp4", "start_frame": 20,
             "end_frame": 24, "reason": "manual"},
            {"pair_id": "bunny_slowmo", "source": "../../demo/bbb_720p25_5s.mp4", "start_frame": 60,
             "end_frame": 61, "mode": "insert", "gap_frames": 3, "reason": "slow motion x4"},
            {"pair_id": "bunny_half_size", "source": "../../demo/bbb_720p25_5s.mp4", "start_frame": 100,
             "end_frame": 103, "width": 640, "height": 360, "backend": "blend", "reason": "preview"},
        ],
        HERE / "demo.parquet",
    )  # fmt: skip


if __name__ == "__main__":
    main()
