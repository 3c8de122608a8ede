"""A file with a damaged frame mid-stream, which the decoder skips without a word: the splice places every
source frame by its time, never by its count, so nothing after the damage moves by a frame; a damaged frame
that no row replaces, where the splice has to decode it, is an error naming its time."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from semfi_batch.errors import FrameExtractError
from semfi_batch.media.encode import probe_stream_facts, read_packets
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.splice import splice_run
from tests.conftest import frame_number, numbered_clip
from tests.test_splice import decode_rgb, job_colour, make_run, solid

FPS = 25
DAMAGED = 60  # a keyframe (GOPs of 12)


def damage_frame(path, frame: int) -> None:
    """Overwrite the packet of `frame` (presentation order) with bytes no decoder takes."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,dts,pos,size", "-of",
         "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    packets = json.loads(out)["packets"]
    order = sorted(packets, key=lambda p: int(p["pts"] if p.get("pts") not in (None, "N/A") else p["dts"]))
    packet = order[frame]
    data = bytearray(path.read_bytes())
    pos, size = int(packet["pos"]), int(packet["size"])
    data[pos : pos + size] = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def frames_by_time(path, *, slots: bool = False) -> dict:
    """Each decoded frame by its presentation time: on the file's own clock (s, to the ms), or with `slots`
    as its frame slot from the start (time x 25)."""
    info = probe_video(path)
    frames = decode_rgb(path)
    assert len(frames) == info.frame_count
    return {
        int(round(t * FPS)) if slots else round(info.start_time + t, 3): frame
        for t, frame in zip(info.frame_times, frames)
    }


def check(path, generated: dict[int, tuple[int, int]]) -> None:
    """Every frame at slot n shows source frame n, except the generated ones: slot -> (job, k)."""
    for slot, frame in frames_by_time(path, slots=True).items():
        if slot in generated:
            assert solid(frame, job_colour(*generated[slot])), f"slot {slot} should be generated"
        else:
            assert frame_number(frame) == slot, f"slot {slot} shows source frame {frame_number(frame)}"


@pytest.fixture
def damaged_mp4(tmp_path):
    clip = numbered_clip(tmp_path / "damaged.mp4", 120)
    damage_frame(clip, DAMAGED)
    info = probe_video(clip)
    assert info.frame_count == 120  # listed by its packets: the damaged frame keeps its number
    return clip


@pytest.mark.parametrize("damaged", [DAMAGED, 12], ids=["mid-stream", "among-the-first-frames-probed"])
def test_a_damaged_frame_keeps_its_number_and_is_never_read_as_another(tmp_path, damaged):
    """Frame 12 lies among the frames the probe decodes to check the packet list: its skip does not make the
    file listed by a decode (which would renumber every later frame). Reading the damaged frame is an
    error, alone or with its neighbours, never the next frame under its number."""
    clip = numbered_clip(tmp_path / "damaged.mp4", 120)
    damage_frame(clip, damaged)
    info = probe_video(clip)
    assert (info.frame_count, info.frames_from) == (120, "packets")
    got = extract_frames(info, [damaged - 1, damaged + 5])
    assert [frame_number(got[i]) for i in (damaged - 1, damaged + 5)] == [damaged - 1, damaged + 5]
    for wanted in ([damaged], [damaged - 1, damaged, damaged + 1]):
        with pytest.raises(FrameExtractError, match=f"cannot decode frame {damaged} "):
            extract_frames(info, wanted)


def test_a_damaged_frame_moves_nothing_after_it(damaged_mp4, tmp_path):
    jobs = [
        {"pair_id": "damaged", "mode": "replace", "start": DAMAGED - 1, "end": DAMAGED + 1},
        {"pair_id": "later", "mode": "replace", "start": 89, "end": 91},
    ]
    summary = splice_run(make_run(tmp_path / "run", damaged_mp4, jobs), output=tmp_path / "out.mp4")
    assert not summary.failed, summary.failed
    check(tmp_path / "out.mp4", {DAMAGED: (0, 0), 90: (1, 0)})


def test_a_damaged_frame_no_row_replaces_is_an_error_naming_its_time(damaged_mp4, tmp_path):
    jobs = [{"pair_id": "near", "mode": "replace", "start": DAMAGED + 2, "end": DAMAGED + 4}]  # same GOP
    summary = splice_run(make_run(tmp_path / "run", damaged_mp4, jobs), output=tmp_path / "out.mp4")
    assert len(summary.failed) == 1 and not (tmp_path / "out.mp4").exists()
    assert "at 2.400 s does not decode" in summary.failed[0].why


def test_avi_whose_decoder_skips_a_frame_is_spliced_in_the_decoders_numbering(tmp_path):
    clip = tmp_path / "damaged.avi"
    lum = "if(lt(X,W/2),16*mod(N,14)+16,16*floor(N/14)+16)"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "nullsrc=s=64x48:r=25", "-vf",
         f"geq=lum='{lum}':cb=128:cr=128", "-frames:v", "120", "-c:v", "mpeg4", "-q:v", "1", "-g", "12",
         str(clip)],
        check=True,
    )  # fmt: skip
    damage_frame(clip, DAMAGED)
    info = probe_video(clip)
    assert info.frame_count == 119  # listed by a decode, which skips the damaged frame
    # As `detect --mode damage` writes them, in the decoder's numbering: an insert that fills the damaged
    # frame's time (decoded frames 59 and 60 are 2 frames apart), and a replace of decoded frame 89 (#90).
    jobs = [
        {"pair_id": "hole", "mode": "insert", "start": DAMAGED - 1, "end": DAMAGED, "gap": 1},
        {"pair_id": "later", "mode": "replace", "start": 88, "end": 90},
    ]
    summary = splice_run(make_run(tmp_path / "run", clip, jobs), output=tmp_path / "out.avi")
    assert not summary.failed, summary.failed
    check(tmp_path / "out.avi", {DAMAGED: (0, 0), 90: (1, 0)})


def test_a_stream_cut_inside_a_gop_whose_first_frames_do_not_decode(tmp_path):
    """A stream copy cut between keyframes of an open-GOP MPEG-2 stream: its first packets are B-frames that
    refer to a frame left behind, and the decoder skips them. The rows count the decoded frames; the splice
    finds them among the packets by time (before, every frame was two off and the splice failed)."""
    full, cut = tmp_path / "full.ts", tmp_path / "cut.ts"
    lum = "if(lt(X,W/2),16*mod(N,14)+16,16*floor(N/14)+16)"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "nullsrc=s=64x48:r=25", "-vf",
         f"geq=lum='{lum}':cb=128:cr=128", "-frames:v", "150", "-c:v", "mpeg2video", "-q:v", "2", "-g", "12",
         "-bf", "2", str(full)],
        check=True,
    )  # fmt: skip
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", "2.1", "-i", str(full), "-c", "copy", str(cut)])
    info = probe_video(cut)
    facts = probe_stream_facts(cut)
    assert read_packets(cut, facts.index, facts.time_base).frame_pts.size > info.frame_count  # undecodable
    jobs = [{"pair_id": "r", "mode": "replace", "start": 60, "end": 63}]
    summary = splice_run(make_run(tmp_path / "run", cut, jobs), output=tmp_path / "out.ts")
    assert not summary.failed, summary.failed
    source, output = frames_by_time(cut), frames_by_time(tmp_path / "out.ts")
    replaced = {round(info.start_time + info.frame_times[i], 3) for i in (61, 62)}
    assert set(output) == set(source)
    for t, frame in output.items():
        if t in replaced:
            assert solid(frame), f"{t} s should be generated"
        else:
            assert frame_number(frame) == frame_number(source[t]), f"{t} s shows another frame than the source"
