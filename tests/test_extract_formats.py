"""Frame i is the i-th frame of a sequential decode, on every format an archive holds: extraction (one frame,
a batch, after a seek) against a full decode, and `detect` finding a planted black frame at its index.
The clips (tests/formats.py) are made once per session."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from semfi_batch.detect import DetectOptions, detect_video
from semfi_batch.media import video_frames as video_frames_mod
from semfi_batch.media.frame_pipes import TO_RGB_SCALE_FLAGS, UPRIGHT_FILTERS, exact_rgb_graph
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frame, extract_frames, frame_layout, full_scale_alpha
from tests.conftest import frame_number
from tests.format_matrix import decoder
from tests.formats import BLACK_AT, FORMATS, ClipFormat, make_clip

IDS = [f.name for f in FORMATS]


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("formats")


@pytest.fixture(scope="session")
def decoded(clip_dir):
    """clip path -> its full sequential decode (made once per session)."""
    return {}


@pytest.fixture(params=FORMATS, ids=IDS)
def fmt_clip(request, clip_dir):
    fmt: ClipFormat = request.param
    return fmt, make_clip(fmt, clip_dir)


def truth_of(path, decoded: dict) -> np.ndarray:
    if path not in decoded:
        decoded[path] = sequential_decode(path, probe_video(path))
    return decoded[path]


def sequential_decode(path, info) -> np.ndarray:
    """Every frame of a full decode from the start, in the layout extraction delivers: the ground truth."""
    pix_fmt, dtype, channels = frame_layout(info)
    # Converted and turned upright as extraction does (the frames compared must be the same frames).
    exact = exact_rgb_graph(info.pix_fmt, info.color_space, info.color_range)  # deep YUV: by zscale
    graph = (f"{exact}," if exact else "") + f"scale=flags={TO_RGB_SCALE_FLAGS},format={pix_fmt}"
    turn = UPRIGHT_FILTERS.get(round(-info.rotation) % 360)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", *decoder(path), *(["-noautorotate"] if turn else [])]
    cmd += ["-i", str(path), "-map", "0:v:0", "-vf", f"{graph},{turn}" if turn else graph]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    width, height = info.display_size
    frames = np.frombuffer(raw, dtype).reshape(-1, height, width, channels).copy()
    if channels == 4 and 8 < info.bit_depth < 16:
        frames[..., 3] = full_scale_alpha(frames[..., 3], info.bit_depth)
    return frames


def as8(frame: np.ndarray) -> np.ndarray:
    rgb = frame[..., :3]
    return rgb if rgb.dtype == np.uint8 else (rgb.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)


def test_frames_equal_a_sequential_decode(fmt_clip, decoded):
    fmt, path = fmt_clip
    info = probe_video(path)
    truth = truth_of(path, decoded)
    assert info.frame_count == len(truth)
    if not (fmt.edit_list or fmt.rotate or "select" in "".join(fmt.filters)):
        # The clip's own numbering: frame i shows i (the planted black frame aside).
        assert [frame_number(as8(truth[i])) for i in (0, 1, 2, 10, 11)] == [0, 1, 2, 10, 11]
    rng = np.random.default_rng(len(fmt.name))
    singles = sorted({0, info.frame_count - 1, *rng.integers(0, info.frame_count, 3).tolist()})
    for i in singles:
        assert np.array_equal(extract_frame(info, i), truth[i]), f"frame {i}"
    batch = rng.choice(info.frame_count, size=min(9, info.frame_count), replace=False).tolist()
    got = extract_frames(info, batch)
    assert sorted(got) == sorted(batch)
    for i in batch:
        assert np.array_equal(got[i], truth[i]), f"frame {i} of a batch"
    # Depth and alpha are kept, never reduced.
    assert got[batch[0]].dtype == (np.uint16 if fmt.deep else np.uint8)
    assert got[batch[0]].shape[2] == (4 if fmt.alpha else 3)
    if fmt.alpha:
        assert len({int(truth[i][..., 3].mean()) for i in (1, 2, 3)}) > 1  # the alpha ramp moves per frame
    if fmt.field_order != "progressive":
        assert info.field_order == fmt.field_order and info.interlaced
    if fmt.rotate:
        assert info.rotation != 0 and got[batch[0]].shape[:2] == (info.width, info.height)  # upright


SEEKABLE = [f for f in FORMATS if f.name in (
    "h264_mp4", "h264_mkv_opengop", "h264_ts", "hevc_10bit_mp4", "vp9_webm", "mpeg2_ts_tff", "dnxhr_hq_mxf",
    "prores_hq_mov", "h264_mp4_editlist", "vp9_alpha_webm",
)]  # fmt: skip


@pytest.mark.parametrize("fmt", SEEKABLE, ids=[f.name for f in SEEKABLE])
def test_frames_after_a_seek_are_verified_by_time(fmt, clip_dir, decoded, monkeypatch):
    path = make_clip(fmt, clip_dir)
    info = probe_video(path)
    truth = truth_of(path, decoded)
    monkeypatch.setattr(video_frames_mod, "SEEK_MIN_FRAMES", 0)
    monkeypatch.setattr(video_frames_mod, "SEEK_LEAD_S", 0.2)
    wanted = [13, 17, 18, info.frame_count - 1]
    seen: list[int] = []
    real = video_frames_mod._decode_by_time

    def spy(info, wanted, seek, *rest, **kwargs):
        for index, frame in real(info, wanted, seek, *rest, **kwargs):
            seen.append((index, seek is not None))
            yield index, frame

    monkeypatch.setattr(video_frames_mod, "_decode_by_time", spy)
    got = extract_frames(info, wanted)
    for i in wanted:
        assert np.array_equal(got[i], truth[i]), f"frame {i}"
    if info.seekable:
        assert seen == [(i, True) for i in wanted]  # all read after the seek, each named by its time


def test_detect_finds_a_planted_black_frame_at_its_index(fmt_clip, decoded):
    fmt, path = fmt_clip
    if fmt.frames <= BLACK_AT + 1:
        pytest.skip("clip too short for a planted frame (DNxHD's smallest frames are 1280x720)")
    info = probe_video(path)
    luma = truth_of(path, decoded)[..., :3].reshape(info.frame_count, -1).mean(axis=1)
    black = [int(i) for i in np.flatnonzero(luma < 20)]
    assert len(black) == 1  # where the planted frame lies in this file (edit lists and drops move it)
    assert fmt.edit_list or "select" in "".join(fmt.filters) or black == [BLACK_AT]
    b = black[0]
    found = detect_video(path, DetectOptions(mode="damage"))
    spans = [(r.start_frame, r.end_frame, r.mode) for r in found.rows]
    assert (b - 1, b + 1, "replace") in spans, spans


def test_transport_stream_whose_audio_starts_first(tmp_path):
    """In a TS the audio often starts before the video (here by about 21 ms): frame times are the file's own
    minus the container start on every path, so each frame is found by its time and equals the sequential
    decode's (a frame list made relative to the video's own start found no frame at all)."""
    clip = tmp_path / "av.ts"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=64x48:r=25", "-f", "lavfi", "-i",
         "sine=r=48000", "-t", "1.2", "-c:v", "libx264", "-bf", "2", "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    info = probe_video(clip)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    sequential = np.frombuffer(raw, np.uint8).reshape(-1, 48, 64, 3)
    assert info.frame_times[0] > 0  # the video starts after the container's start
    got = extract_frames(info, range(info.frame_count))
    assert len(sequential) == info.frame_count
    assert all(np.array_equal(got[k], sequential[k]) for k in range(info.frame_count))


@pytest.mark.parametrize("matrix", ["hflip", "rotate-and-flip"])
def test_a_mirrored_display_matrix_is_refused_by_name(tmp_path, matrix):
    """ffmpeg 5.1 turns frames by a display matrix's angle and ignores its mirroring (a flipped clip came back
    upside down, exit 0): every stage refuses such a file, naming it."""
    import struct

    from semfi_batch.errors import MediaError
    from semfi_batch.media.stream_facts import probe_stream_facts

    clip = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.4", "-pix_fmt",
                    "yuv420p", "-c:v", "libx264", str(clip)], check=True)  # fmt: skip
    data = bytearray(clip.read_bytes())
    at = data.find(b"tkhd") + 4 + 40  # the video track header's matrix (version 0)
    one = 1 << 16
    values = (
        [-one, 0, 0, 0, one, 0, 64 << 16, 0, 1 << 30] if matrix == "hflip" else [0, one, 0, one, 0, 0, 0, 0, 1 << 30]
    )
    data[at : at + 36] = b"".join(struct.pack(">i", v) for v in values)
    mirrored = tmp_path / "mirrored.mp4"
    mirrored.write_bytes(bytes(data))
    for read in (probe_video, probe_stream_facts):
        with pytest.raises(MediaError, match=r"mirrored.mp4: its display matrix mirrors the picture"):
            read(mirrored)
    probe_video(clip)  # the same file unmirrored is read
