"""Audio keeps its codec through a splice: copied, or re-encoded where time is inserted, into the container the
output's name asks for (splice/final_mux.py, splice/audio.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from semfi_batch.splice import splice_run
from tests.test_splice import make_run

INSERT = {"pair_id": "a", "mode": "insert", "start": 20, "end": 21, "gap": 3}
REPLACE = {"pair_id": "a", "mode": "replace", "start": 20, "end": 24}


def _clip(path, audio: tuple[str, ...], tone: str = "sine=f=440:r=48000:d=2") -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2", "-f", "lavfi",
         "-i", tone, "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", *audio, str(path)],
        check=True,
    )  # fmt: skip


def _audio(path) -> dict:
    """The first audio stream's codec, profile, sample format and bits per sample."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,profile,sample_fmt,bits_per_raw_sample", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"][0]


@pytest.mark.parametrize("job", [REPLACE, INSERT], ids=["copied", "re-encoded"])
def test_flac_in_mp4_is_written(job, tmp_path):
    """ffmpeg writes FLAC into MP4 only when told that experimental support will do: every such splice failed
    ("flac in MP4 support is experimental, add '-strict -2'"), also where the audio was only copied."""
    src = tmp_path / "flac.mp4"
    _clip(src, ("-c:a", "flac", "-strict", "experimental"))
    summary = splice_run(make_run(tmp_path / "run", src, [job]), output=tmp_path / "out.mp4")
    assert not summary.failed, summary.failed
    assert _audio(summary.results[0].output)["codec_name"] == "flac"
