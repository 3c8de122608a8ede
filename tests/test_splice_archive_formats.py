"""Archive and broadcast formats the format matrix does not make (found by trying them, exit 0 with a wrong
result or a misleading refusal): a 16-bit JPEG 2000 master gets lossless generated frames (ffmpeg's own
jpeg2000 encoder is not lossless at 16 bits; libopenjpeg is), DVCPRO HD keeps its variant's tag in MOV, and
an HDV-style `.m2t` is written as the MPEG-TS it is."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.encode import available_encoders
from semfi_batch.media.frames import read_image
from semfi_batch.splice import splice_run
from tests.test_splice import make_run


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _stream(path, entries: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", f"stream={entries}", "-of", "json",
         str(path)], capture_output=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["streams"][0]


def _frames(path, pix_fmt: str, width: int, height: int, channels: int, dtype) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype).reshape(-1, height, width, channels)


def test_a_16_bit_jpeg_2000_master_gets_lossless_generated_frames(tmp_path):
    if "libopenjpeg" not in available_encoders():
        pytest.skip("this ffmpeg has no libopenjpeg")
    master = tmp_path / "master.mxf"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1.2", "-c:v", "libopenjpeg", "-pix_fmt", "rgb48le", master)
    rows = [
        {"pair_id": "r", "source": str(master), "start_frame": 10, "end_frame": 14, "mode": "replace"},
        {"pair_id": "i", "source": str(master), "start_frame": 20, "end_frame": 21, "mode": "insert", "gap_frames": 2},
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    summary = splice_run(run, output=tmp_path / "out.mxf")
    assert not summary.failed, summary.failed
    source = _frames(master, "rgb48le", 160, 120, 3, "<u2")
    output = _frames(summary.results[0].output, "rgb48le", 160, 120, 3, "<u2")
    assert len(output) == 30 + 2
    generated = {11: ("r", 1), 12: ("r", 2), 13: ("r", 3), 21: ("i", 1), 22: ("i", 2)}
    for j, (pair_id, k) in generated.items():
        picture = read_image(run / "jobs" / pair_id / "frames" / f"{k:06d}.png")
        assert picture.dtype == np.uint16
        assert np.array_equal(output[j], picture), f"output frame {j} is not {pair_id}'s frame {k} exactly"
    untouched = [j for j in range(len(output)) if j not in generated]
    kept = [j if j <= 20 else j - 2 for j in untouched]
    assert all(np.array_equal(output[j], source[s]) for j, s in zip(untouched, kept, strict=True))


def test_dvcpro_hd_keeps_its_variant_in_mov(tmp_path):
    clip = tmp_path / "dvhd.mov"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1440x1080:r=25:d=0.8,setfield=tff", "-c:v", "dvvideo", "-pix_fmt",
            "yuv422p", "-flags", "+ildct", "-top", "1", clip)  # fmt: skip
    assert _stream(clip, "codec_tag_string")["codec_tag_string"] == "dvh5"  # DVCPRO HD 1080i50
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 5, "end": 9}])
    summary = splice_run(run, output=tmp_path / "out.mov")
    assert not summary.failed, summary.failed
    out = _stream(summary.results[0].output, "codec_tag_string,r_frame_rate,nb_frames")
    assert (out["codec_tag_string"], out["r_frame_rate"], out["nb_frames"]) == ("dvh5", "25/1", "20")


def test_an_hdv_style_m2t_is_written_as_mpeg_ts(tmp_path):
    clip = tmp_path / "tape.m2t"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=2", "-f", "lavfi", "-i", "sine=r=48000:d=2", "-c:v",
            "mpeg2video", "-g", "12", "-bf", "2", "-c:a", "mp2", "-f", "mpegts", clip)  # fmt: skip
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 20, "end": 24}])
    summary = splice_run(run, output=tmp_path / "out.m2t")
    assert not summary.failed, summary.failed
    first = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name,start_time", "-of",
                            "json", str(summary.results[0].output)], capture_output=True, check=True)  # fmt: skip
    assert json.loads(first.stdout)["format"]["format_name"] == "mpegts"


def _picture_types(path) -> set[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pict_type", "-of", "csv=p=0",
         str(path)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {line.strip(",") for line in out.split() if line.strip(",")}


def _frame_md5s(path) -> list[str]:
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split(",")[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("delay", ["+low_delay", "-low_delay"])
def test_an_i_frame_only_mpeg2_master_stays_i_frame_only(tmp_path, delay):
    """IMX/D-10 style: MPEG-2 4:2:2, every frame an I-frame, decoded as it is shown (low delay; the other
    kind decodes a frame ahead). Only the generated frames are encoded, as I-frames; the rest are its own
    packets (the low-delay kind came back long-GOP, every frame re-encoded)."""
    clip = tmp_path / "imx.mxf"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2", "-c:v", "mpeg2video", "-pix_fmt", "yuv422p", "-g",
            "1", "-flags", delay, "-intra_vlc", "1", "-b:v", "20M", clip)  # fmt: skip
    assert _picture_types(clip) == {"I"}
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 10, "end": 14}])
    summary = splice_run(run, output=tmp_path / "out.mxf")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    assert (result.method, result.frames_reencoded) == ("smart cut", 3), result.note
    assert _picture_types(result.output) == {"I"}
    source, output = _frame_md5s(clip), _frame_md5s(result.output)
    assert len(output) == 50 and output[:11] == source[:11] and output[14:] == source[14:]


def test_avc_intra_in_mxf_is_written_with_its_parameter_sets_in_band(tmp_path):
    """H.264 High 4:2:2 Intra in MXF (as ffmpeg writes it): the re-encoded video reaches the MXF muxer in Annex B
    form, from which it reads the profile (it was refused: "h264 profile not supported")."""
    clip = tmp_path / "avci.mxf"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1.2", "-c:v", "libx264", "-pix_fmt", "yuv422p10le",
            "-profile:v", "high422", "-x264-params", "keyint=1:bframes=0", "-crf", "12", "-timecode",
            "01:00:00:00", clip)  # fmt: skip
    assert _stream(clip, "profile")["profile"] == "High 4:2:2 Intra"
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 10, "end": 14}])
    summary = splice_run(run, output=tmp_path / "out.mxf")
    assert not summary.failed, summary.failed
    assert _stream(summary.results[0].output, "profile")["profile"] == "High 4:2:2 Intra"
    assert len(_frame_md5s(summary.results[0].output)) == 30


def _joined_recording(path, segments: list[list[str]]):
    """Two or more MPEG-TS recordings joined end to end (an ad break, a programme change); each segment is
    its own ffmpeg inputs and options (its clock continues where the last one ended unless told otherwise)."""
    parts = []
    for n, args in enumerate(segments):
        parts.append(path.with_name(f"{path.stem}-part{n}.ts"))
        _ffmpeg(*args, "-f", "mpegts", parts[-1])
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path


def _refusal(tmp_path, clip, job: dict, size=None) -> str:
    """Why the splice of `clip` with one `job` was refused (it must be, writing nothing)."""
    run = make_run(tmp_path / f"run-{job['mode']}", clip, [job], size)
    output = tmp_path / f"out-{job['mode']}{clip.suffix}"
    summary = splice_run(run, output=output)
    assert not summary.results and len(summary.failed) == 1 and not output.exists()
    return summary.failed[0].why


@pytest.mark.parametrize(
    ("second", "change"),
    [("-s 352x288", "352x288 yuv420p"), ("-vf setsar=4/3", "(aspect 4/3)"),
     ("-pix_fmt yuv422p", "320x240 yuv422p")],
)  # fmt: skip
def test_a_recording_whose_picture_changes_mid_way_is_refused_not_converted(tmp_path, second, change):
    """A broadcast recording joined at an ad break: the second half has another size, aspect ratio or pixel
    format. Frames made there would be encoded in the first half's format, and ffmpeg would scale or convert
    them without a word (a whole re-encode came back so, exit 0): the splice refuses, naming the change."""
    picture = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-c:v", "libx264", "-g", "25"]
    clip = _joined_recording(
        tmp_path / "recording.ts", [picture, [*picture, *second.split(), "-output_ts_offset", "2.08"]]
    )
    why = _refusal(tmp_path, clip, {"pair_id": "a", "mode": "replace", "start": 60, "end": 64}, (320, 240))
    assert "its picture changes at" in why and change in why and "split the file" in why, why


def test_an_sd_broadcast_switching_to_16_9_is_refused_where_its_gops_are_re_encoded(tmp_path):
    """SD DVB switches between 4:3 and 16:9 by its pictures' aspect alone (MPEG-2 in TS). The smart cut decodes
    the GOPs it re-encodes from a copy whose container states the first picture's aspect for every frame: an
    edit in the 16:9 part was re-encoded at 4:3, exit 0. Refused, naming the change."""
    picture = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-c:v", "mpeg2video", "-g", "12", "-bf", "2"]
    clip = _joined_recording(
        tmp_path / "dvb.ts", [[*picture, "-aspect", "4:3"], [*picture, "-aspect", "16:9", "-output_ts_offset", "2.08"]]
    )
    why = _refusal(tmp_path, clip, {"pair_id": "a", "mode": "replace", "start": 60, "end": 64}, (320, 240))
    assert "its picture changes at" in why and "aspect 4/3) where the video is" in why, why


def _pictures(path) -> list[str]:
    """Each frame's size, aspect and pixel format, in order."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
         "frame=width,height,sample_aspect_ratio,pix_fmt", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.strip(",") for line in out.split()]


def test_a_recording_whose_picture_changes_after_its_edits_keeps_both_pictures(tmp_path):
    """Edits before the change: the smart cut re-encodes their GOP in the first half's format and copies the
    second half's packets as they are, so the output changes picture where the source does, frame for frame."""
    picture = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-c:v", "libx264", "-g", "25"]
    clip = _joined_recording(
        tmp_path / "recording.ts", [picture, [*picture, "-s", "352x288", "-output_ts_offset", "2.08"]]
    )
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 10, "end": 14}], (320, 240))
    result = splice_run(run, output=tmp_path / "out.ts").results[0]
    assert result.method == "smart cut"
    assert _pictures(result.output) == _pictures(clip) and len(set(_pictures(clip))) == 2


def _audio_layouts(path) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "frame=channel_layout", "-of",
         "csv=p=0", str(path)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return list(dict.fromkeys(line.strip(",") for line in out.split() if line.strip(",")))


def test_audio_that_turns_5_1_mid_way_is_copied_or_refused_never_downmixed(tmp_path):
    """A recording whose audio is stereo, then 5.1 (a programme after the ads). Inserted frames rebuild the
    audio, which would keep stereo throughout (it came back downmixed, exit 0): refused, naming the change.
    Replaced frames keep the audio's packets: both layouts stay."""
    both = ["-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2", "-f", "lavfi", "-i", "sine=r=48000:d=2", "-c:v",
            "libx264", "-g", "25", "-c:a", "aac"]  # fmt: skip
    clip = _joined_recording(
        tmp_path / "recording.ts", [[*both, "-ac", "2"], [*both, "-ac", "6", "-output_ts_offset", "2.08"]]
    )
    assert _audio_layouts(clip) == ["stereo", "5.1"]
    why = _refusal(tmp_path, clip, {"pair_id": "a", "mode": "insert", "start": 20, "end": 21, "gap": 3})
    assert "changes at" in why and "from stereo at 48000 Hz to 5.1 at 48000 Hz" in why, why
    replace = make_run(tmp_path / "replace", clip, [{"pair_id": "a", "mode": "replace", "start": 20, "end": 24}])
    summary = splice_run(replace, output=tmp_path / "replaced.ts")
    assert not summary.failed, summary.failed
    assert _audio_layouts(summary.results[0].output) == ["stereo", "5.1"]


def test_a_recording_whose_time_goes_back_is_refused_naming_the_frame(tmp_path):
    """Two recordings joined, each starting its clock near zero: frames cannot be placed by time. The splice
    says which frame goes back, and when (it said "planned frame times are not strictly increasing")."""
    picture = ["-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=2", "-c:v", "libx264", "-g", "25"]
    clip = _joined_recording(tmp_path / "joined.ts", [picture, picture])
    why = _refusal(tmp_path, clip, {"pair_id": "a", "mode": "replace", "start": 10, "end": 14}, (96, 64))
    assert "its frame 50 comes at 1.480 s, not after frame 49 at 3.440 s" in why and "go back" in why, why


def test_a_progressive_video_that_turns_interlaced_mid_way_is_refused(tmp_path):
    """MPEG-2 whose first second is progressive and the rest coded in fields (TFF), the container saying
    progressive: a whole re-encode coded the interlaced part progressive (exit 0). Refused, naming the time."""
    first, second = tmp_path / "a.m2v", tmp_path / "b.m2v"
    mpeg2 = ["-c:v", "mpeg2video", "-q:v", "2", "-g", "12", "-bf", "2", "-sc_threshold", "1000000000"]
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1", *mpeg2, "-flags", "+cgop", "-f", "mpeg2video", first)
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1,setfield=tff", *mpeg2, "-flags", "+cgop+ilme+ildct",
            "-top", "1", "-f", "mpeg2video", second)  # fmt: skip
    joined = tmp_path / "joined.m2v"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    clip = tmp_path / "mixed.mov"
    _ffmpeg("-fflags", "+genpts", "-r", "25", "-i", joined, "-c:v", "copy", clip)
    # A row in the interlaced part: the GOPs re-encoded around it were coded progressive.
    why = _refusal(tmp_path, clip, {"pair_id": "a", "mode": "replace", "start": 35, "end": 39}, (160, 120))
    assert "its picture turns interlaced at" in why and "split the file" in why, why
