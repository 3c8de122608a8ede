"""Assembled H.264 and ProRes clips: RGB keys become YUV by the matrix the clip is tagged with."""

import json
import subprocess

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png

KEY_COLOURS = [(200, 30, 30), (30, 160, 60), (40, 60, 200)]
SIZE = (24, 32)  # height, width


@pytest.fixture(scope="module")
def flat_keys_run(tmp_path_factory):
    """Three flat keys, one in-between each pair (blend)."""
    folder = tmp_path_factory.mktemp("colour")
    for n, colour in enumerate(KEY_COLOURS):
        write_png(folder / f"k{n}.png", np.full((*SIZE, 3), colour, np.uint8))
    rows = [
        {"pair_id": f"p{n}", "start_image": f"k{n}.png", "end_image": f"k{n + 1}.png", "gap_frames": 1} for n in (0, 1)
    ]
    run = folder / "run"
    manifest = write_manifest(rows, folder / "keys.parquet")
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    return run


def colour_tags(clip) -> dict:
    listing = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=color_space,color_primaries,color_transfer,color_range", "-of", "json", str(clip)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(listing)["streams"][0]


def keys_as_tagged(clip, tags: dict) -> list[list[int]]:
    """The key frames (0, 2, 4) decoded by the matrix and range the clip is tagged with, centre pixel."""
    matrix = {"bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601"}[tags["color_space"]]
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-vf",
         f"scale=in_color_matrix={matrix}:in_range={tags['color_range']}:flags=accurate_rnd+full_chroma_int,"
         "format=rgb24", "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, *SIZE, 3)
    return [frames[n, SIZE[0] // 2, SIZE[1] // 2].tolist() for n in (0, 2, 4)]


@pytest.mark.parametrize("name,codec", [("hd.mp4", "h264"), ("hd.mov", "prores")])
def test_clips_are_tagged_with_the_matrix_they_were_encoded_by(flat_keys_run, tmp_path, name, codec):
    """Untagged BT.601 clips came back shifted in players that take HD as BT.709 (200,30,30 -> 213,46,28)."""
    clip = tmp_path / name
    assert main(["assemble", str(flat_keys_run), "-o", str(clip), "--codec", codec]) == 0
    tags = colour_tags(clip)
    assert (tags.get("color_space"), tags.get("color_primaries"), tags.get("color_transfer")) == ("bt709",) * 3
    assert tags.get("color_range") == "tv"
    for got, key in zip(keys_as_tagged(clip, tags), KEY_COLOURS):
        assert np.abs(np.array(got) - key).max() <= 3, (got, key)
