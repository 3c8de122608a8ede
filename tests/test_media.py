import subprocess

import numpy as np
import pytest

from semfi_batch.errors import FrameExtractError, MediaError, VideoOpenFailure
from semfi_batch.media.frames import image_size, read_image, write_png
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frame
from tests.conftest import frame_number
from tests.media_fixtures import TO_RGB24


@pytest.mark.parametrize(
    ("codec", "name"), [("libx264", "c.mp4"), ("mpeg4", "c.avi"), ("libvpx", "c.webm"), ("ffv1", "c.mkv")]
)
def test_extract_frame_is_exact(clip_factory, codec, name):
    info = probe_video(clip_factory(30, name=name, codec=codec))
    assert info.frame_count == 30
    assert [frame_number(extract_frame(info, i)) for i in range(30)] == list(range(30))


def test_extract_frame_exact_with_odd_rate(clip_factory):
    info = probe_video(clip_factory(24, name="odd.mp4", fps="179/6"))
    assert abs(info.avg_fps - 29.8333) < 1e-3
    assert [frame_number(extract_frame(info, i)) for i in (0, 1, 11, 12, 13, 23)] == [0, 1, 11, 12, 13, 23]


def test_extract_frame_matches_sequential_decode_on_real_vfr_clip(real_clip):
    path = real_clip("fire_vfr_handheld_720p_audio.mp4")
    info = probe_video(path)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough", *TO_RGB24, "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3)
    assert len(frames) == info.frame_count == 25
    for i in (0, 7, 13, 24):
        assert np.abs(extract_frame(info, i).astype(int) - frames[i]).mean() < 0.5


def test_extract_frame_out_of_range(clip_factory):
    info = probe_video(clip_factory(5))
    with pytest.raises(FrameExtractError, match="outside"):
        extract_frame(info, 5)


def test_probe_rejects_missing_corrupt_and_audio_only(tmp_path):
    with pytest.raises(VideoOpenFailure):
        probe_video(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoOpenFailure):
        probe_video(tmp_path / "junk.mp4")
    wav = tmp_path / "a.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.2", str(wav)], check=True
    )  # fmt: skip
    with pytest.raises(VideoOpenFailure, match="no video stream"):
        probe_video(wav)


def test_png_roundtrip_and_image_errors(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", rgb)
    assert image_size(tmp_path / "a.png") == (13, 9)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    assert not list(tmp_path.glob(".*tmp*"))  # nothing left under a temporary name
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.png"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:40])
    with pytest.raises(MediaError, match="cut.png"):
        read_image(tmp_path / "cut.png")
