"""An image sequence given where a video is read (a row's `source`, `detect`): refused with "No such file or
directory" or "not a regular file", which did not say that sequences are not read nor what to use instead."""

from __future__ import annotations

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.errors import VideoOpenFailure
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.media.probe import probe_video


@pytest.fixture
def sequence(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for n in range(1001, 1004):
        write_png(folder / f"{n:04d}.png", np.full((8, 8, 3), n % 256, np.uint8))
    return folder


@pytest.mark.parametrize("name", ["%04d.png", "shot.####.png", None], ids=["printf", "hashes", "folder"])
def test_an_image_sequence_is_refused_as_a_video_naming_it_and_what_to_use(sequence, name):
    path = sequence / name if name else sequence
    with pytest.raises(VideoOpenFailure, match="image sequences are not read as sources") as refused:
        probe_video(path)
    assert str(path) in str(refused.value) and "manifest from-images" in str(refused.value)


def test_a_manifest_row_whose_source_is_a_sequence_pattern_says_so(sequence, tmp_path, capsys):
    manifest = write_manifest(
        [{"pair_id": "s", "source": "seq/%04d.png", "start_frame": 1, "end_frame": 3}], tmp_path / "m.parquet"
    )
    assert main(["run", str(manifest), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "seq/%04d.png: it names an image sequence" in error and "manifest from-images" in error


def test_a_manifest_row_whose_source_is_a_folder_says_so(sequence, tmp_path, capsys):
    manifest = write_manifest(
        [{"pair_id": "s", "source": "seq", "start_frame": 1, "end_frame": 3}], tmp_path / "m.parquet"
    )
    assert main(["run", str(manifest), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "seq: it is a folder" in error and "manifest from-images" in error
