"""splice on the formats archives hold (a subset of `make formats`, tests/format_matrix.py): the output keeps
the source's codec, profile, pixel format, field order, timecode, audio and frame count; intra-only codecs
keep every untouched frame bit-identical; generated frames land where they belong. Also: one failing source
does not stop the others."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from semfi_batch.errors import MediaError
from semfi_batch.media.encode import (
    StreamFacts,
    available_encoders,
    choose_encoder,
    probe_stream_facts,
    raw_frame_bytes,
    read_packets,
    smart_cut_blocker,
)
from semfi_batch.splice import splice_run
from tests.format_matrix import (
    EDITS,
    avi_index_flags_every_frame_key,
    check_splice,
    expected_order,
    generated_pictures,
    make_clip,
    recipe,
    write_run_folder,
)

# One cell per way a format can break: intra packet copy in MOV with a tmcd track and in MXF with its
# timecode, interlaced MPEG-2 in TS, odd-sized FFV1, a sparse Cinepak AVI, an AVI codec with no peer in
# newer containers, MPEG-4 B-frames in AVI (no presentation times), 10-bit HEVC smart cut; ProRes 4444 XQ with
# alpha, interlaced ProRes, MXF at 29.97, an MPEG program stream, uncompressed v210, DV PAL and NTSC in AVI
# (interlaced, no field order stated; AVI's clock is the frame period), an RGB-tagged FFV1, VP9 with its alpha
# beside the picture (WebM).
CELLS = (
    "prores-hq-mov",
    "dnxhr-hq-mxf",
    "mpeg2-tff-ts",
    "ffv1-odd-mkv",
    "cinepak-sparse-avi",
    "msmpeg4v3-avi",
    "mpeg4-bframes-avi",
    "hevc-10bit-mp4",
    "prores-xq-alpha-mov",
    "prores-hq-bff-mov",
    "dnxhr-sq-2997-mxf",
    "mpeg2-ps-mpg",
    "v210-mov",
    "dv-pal-avi",
    "dv-ntsc-avi",
    "ffv1-rgb-mkv",
    "vp9-alpha-webm",
    "h264-24p-ts",
)


@pytest.fixture(scope="session")
def matrix_clips(tmp_path_factory):
    """Each cell's clip, made once per session."""
    folder = tmp_path_factory.mktemp("formats")
    return lambda name: make_clip(recipe(name), folder)


@pytest.mark.parametrize("name", CELLS)
def test_splice_returns_the_source_format(name, matrix_clips, tmp_path):
    r = recipe(name)
    missing = [e for e in r.needs if e not in available_encoders()]
    if missing:
        pytest.skip(f"this ffmpeg has no {', '.join(missing)}")
    clip = matrix_clips(name)
    facts = probe_stream_facts(clip)
    run_dir = write_run_folder(tmp_path / "run", clip, EDITS, facts.display_size, facts.pix_fmt)
    output = tmp_path / f"out.{r.ext}"
    summary = splice_run(run_dir, output=output)
    assert not summary.failed, summary.failed
    frames = read_packets(clip, facts.index, facts.time_base).frame_pts.shape[0]
    order = expected_order(frames, EDITS)
    result = check_splice(r, clip, output, order, generated_pictures(run_dir, EDITS, order), facts.rotation)
    assert result.ok, f"{name}: {result.problems} ({summary.results[0].note})"
    if r.intra:
        assert summary.results[0].method == "smart cut"  # only the generated frames' packets are new
        assert summary.results[0].frames_reencoded == 7


def test_an_avi_index_that_calls_every_frame_a_keyframe_is_checked_not_trusted(matrix_clips, tmp_path):
    """Copying packets around generated frames of an MS-MPEG4 AVI whose index flags every frame as a keyframe
    would leave P frames that point at the generated ones: the decoder is asked, and the video is re-encoded
    from a decode from the start."""
    clip = tmp_path / "lying.avi"
    clip.write_bytes(matrix_clips("msmpeg4v3-avi").read_bytes())
    avi_index_flags_every_frame_key(clip)
    facts = probe_stream_facts(clip)
    assert read_packets(clip, facts.index, facts.time_base).key.all()
    run_dir = write_run_folder(tmp_path / "run", clip, EDITS, facts.display_size, facts.pix_fmt)
    summary = splice_run(run_dir, output=tmp_path / "out.avi")
    assert not summary.failed, summary.failed
    assert "calls every frame a keyframe" in summary.results[0].note
    order = expected_order(read_packets(clip, facts.index, facts.time_base).frame_pts.shape[0], EDITS)
    r = recipe("msmpeg4v3-avi")
    result = check_splice(r, clip, tmp_path / "out.avi", order, generated_pictures(run_dir, EDITS, order), 0, True)
    assert result.ok, result.problems


def test_generated_frames_that_decode_as_another_picture_send_the_video_to_a_whole_re_encode(
    matrix_clips, tmp_path, monkeypatch
):
    """Planar 4:2:2 raw video copied through MOV (which cannot hold that layout) gives generated frames that
    decode without error, in their places, as garbage: the output's generated frames are decoded and compared
    with their pictures, and the video is re-encoded whole."""
    import semfi_batch.splice as splice_pkg

    monkeypatch.setattr(
        splice_pkg, "smart_cut_blocker", lambda facts: None if facts.codec == "rawvideo" else smart_cut_blocker(facts)
    )
    clip = matrix_clips("raw-yuv422p-avi")
    facts = probe_stream_facts(clip)
    run_dir = write_run_folder(tmp_path / "run", clip, EDITS, facts.display_size, facts.pix_fmt)
    summary = splice_run(run_dir, output=tmp_path / "out.avi")
    assert not summary.failed, summary.failed
    assert summary.results[0].method == "full re-encode"
    assert "decodes as another picture" in summary.results[0].note
    order = expected_order(read_packets(clip, facts.index, facts.time_base).frame_pts.shape[0], EDITS)
    r = recipe("raw-yuv422p-avi")
    result = check_splice(r, clip, tmp_path / "out.avi", order, generated_pictures(run_dir, EDITS, order), 0, True)
    assert result.ok, result.problems


def test_raw_frame_size_of_odd_sizes():
    # 4:2:0 chroma of a 175x143 picture is 88x72: a YUV lavfi source would measure 174x142.
    assert raw_frame_bytes("yuv420p", 175, 143) == 175 * 143 + 2 * 88 * 72
    assert raw_frame_bytes("yuv422p10le", 175, 143) == 2 * (175 * 143 + 2 * 88 * 143)


def test_one_failing_source_does_not_stop_the_others(matrix_clips, tmp_path):
    good = matrix_clips("ffv1-odd-mkv")
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(b"not a video" * 100)
    run_dir = tmp_path / "run"
    write_run_folder(run_dir, good, EDITS, (175, 143))
    # A second source in the same manifest: rows of the broken file.
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "manifest.parquet").to_pylist()
    extra = [{**row, "pair_id": f"b-{row['pair_id']}", "source": str(bad)} for row in table]
    from semfi_batch.manifest import write_manifest

    write_manifest(table + extra, run_dir / "manifest.parquet")
    for row in extra:
        src = run_dir / "jobs" / row["pair_id"][2:]
        dst = run_dir / "jobs" / row["pair_id"]
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        record = (dst / "record.json").read_text().replace(f'"{row["pair_id"][2:]}"', f'"{row["pair_id"]}"')
        (dst / "record.json").write_text(record)
    out_dir = tmp_path / "spliced"
    proc = subprocess.run(
        [sys.executable, "-m", "semfi_batch", "splice", str(run_dir), "--out-dir", str(out_dir)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mkv" in errors[0], proc.stderr
    assert "failed" in proc.stdout and "ffv1-odd-mkv.mkv" in proc.stdout
    assert (out_dir / "ffv1-odd-mkv.spliced.mkv").exists()
    assert not list(out_dir.glob("broken*")) and not [p for p in out_dir.iterdir() if p.name.startswith(".")]


def _facts(codec: str, **kw) -> StreamFacts:
    base = dict(path=Path("x"), index=0, codec=codec, profile="", level=-99, pix_fmt="yuv420p", width=64, height=48,
                sar=None, color_range=None, color_space=None, color_primaries=None, color_transfer=None,
                field_order=None, time_base=Fraction(1, 90000), frame_rate=Fraction(30000, 1001), bit_rate=None,
                extradata=b"", rotation=0, format_name="mpegts", format_start=0.0, nb_streams=1)  # fmt: skip
    return StreamFacts(**{**base, **kw})


def test_encoder_choice_keeps_the_codec_profile_and_field_order():
    if not {"prores_ks", "dnxhd", "mpeg2video", "msmpeg4"} <= available_encoders():
        pytest.skip("this ffmpeg lacks one of the encoders")
    prores = choose_encoder(_facts("prores", profile="HQ", pix_fmt="yuv422p10le"), full=False)
    assert prores.encoder == "prores_ks" and "-profile:v" in prores.args and "3" in prores.args
    alpha = choose_encoder(_facts("prores", profile="4444", pix_fmt="yuva444p12le"), full=False)
    assert "yuva444p10le" in alpha.args and "-alpha_bits" in alpha.args  # the nearest format prores_ks takes
    dnxhr = choose_encoder(_facts("dnxhd", profile="DNXHR HQ", pix_fmt="yuv422p"), full=False)
    assert dnxhr.encoder == "dnxhd" and "dnxhr_hq" in dnxhr.args
    dnxhd = choose_encoder(_facts("dnxhd", profile="DNXHD", pix_fmt="yuv422p", bit_rate=91_750_400), full=False)
    assert "90M" in dnxhd.args  # the listed DNxHD rate nearest the measured one
    tff = choose_encoder(_facts("mpeg2video", field_order="tt"), full=False, reorder=1)
    assert tff.encoder == "mpeg2video" and tff.args[tff.args.index("-top") + 1] == "1"
    # One -flags (ffmpeg keeps only the last), with the interlacing's and the closed GOPs' both.
    assert tff.args.count("-flags") == 1 and tff.args[tff.args.index("-flags") + 1] == "+cgop+ilme+ildct"
    assert tff.output_args == ("-field_order", "tt") and tff.time_base == Fraction(1001, 30000)
    bff = choose_encoder(_facts("mpeg2video", field_order="bb"), full=True)
    assert bff.args[bff.args.index("-top") + 1] == "0"
    assert choose_encoder(_facts("msmpeg4v3"), full=True).encoder == "msmpeg4"  # not H.264
    assert smart_cut_blocker(_facts("h264", format_name="avi")) is not None  # AVC in AVI: whole re-encode
    assert smart_cut_blocker(_facts("dnxhd", format_name="mxf")) is None  # intra: copied through MOV
    # Which field comes first: the decoder's word (top_field_first) over the container's label, whose tb/bt
    # writers read differently; without it, the label's displayed field (tb: bottom first).
    labelled = choose_encoder(_facts("mpeg2video", field_order="tb"), full=True)
    assert labelled.args[labelled.args.index("-top") + 1] == "0" and labelled.output_args == ("-field_order", "tb")
    decoded = choose_encoder(
        _facts("prores", profile="HQ", pix_fmt="yuv422p10le", field_order="bt", top_field_first=False), full=False
    )
    assert "+ilme+ildct" in decoded.args and decoded.args[decoded.args.index("-top") + 1] == "0"
    xq = choose_encoder(_facts("prores", profile="XQ", pix_fmt="yuva444p12le"), full=False)
    assert xq.args[xq.args.index("-profile:v") + 1] == "5"  # ffprobe says "XQ" for 4444 XQ
    tagged = choose_encoder(_facts("prores", profile="", codec_tag="ap4x", pix_fmt="yuv444p12le"), full=False)
    assert tagged.args[tagged.args.index("-profile:v") + 1] == "5"
    assert choose_encoder(_facts("v210", pix_fmt="yuv422p10le"), full=True).encoder == "v210"  # its own encoder
    assert smart_cut_blocker(_facts("rawvideo", format_name="avi", pix_fmt="yuv422p")) is not None
    dnxhr_rgb = _facts("dnxhd", color_space="gbr", profile="DNXHR 444", pix_fmt="gbrp10le")
    assert choose_encoder(dnxhr_rgb, full=True).args.count("rgb") == 1


def test_encoder_choice_keeps_interlacing_and_the_pixel_format():
    if not {"libx264", "libaom-av1", "libvpx"} <= available_encoders():
        pytest.skip("this ffmpeg lacks one of the encoders")
    # Interlaced H.264 (re-encoded whole) is coded interlaced again, in its field order (it came back
    # progressive: x264 was given neither the flags nor the field).
    tff = choose_encoder(_facts("h264", field_order="tt", format_name="mpegts"), full=True)
    assert "+ilme+ildct" in tff.args and tff.args[tff.args.index("-top") + 1] == "1"
    assert tff.output_args == ("-field_order", "tt") and "interlaced (tt)" in tff.note
    assert "-top" not in choose_encoder(_facts("h264", format_name="mpegts"), full=True).args
    # AV1 outside SVT-AV1's 4:2:0 at 8/10 bits goes to libaom (SVT turned 4:4:4 12-bit GOPs into 4:2:0 10-bit).
    for pix_fmt in ("yuv444p12le", "yuv444p", "yuv420p12le"):
        assert choose_encoder(_facts("av1", pix_fmt=pix_fmt), full=False).encoder == "libaom-av1", pix_fmt
    # DNxHR HQX at 12 bits: its generated frames at the encoder's 10 bits, as ProRes 4444's (not refused).
    hqx = choose_encoder(_facts("dnxhd", profile="DNXHR HQX", pix_fmt="yuv422p12le"), full=False)
    assert hqx.args[hqx.args.index("-pix_fmt") + 1] == "yuv422p10le"
    # An encoder that cannot take the source's pixel format is an error, never a silent conversion.
    with pytest.raises(MediaError, match=r"libvpx cannot encode vp8 in yuv444p"):
        choose_encoder(_facts("vp8", pix_fmt="yuv444p"), full=True)


def test_a_matroska_splice_declares_the_sources_frame_duration(tmp_path):
    # The joined H.264 stream took its rate from a one-frame MP4 on a millisecond clock: the output declared
    # 33 ms frames (DefaultDuration; 30.3 frames/s to an editor conforming by it) for a 29.97 source.
    from semfi_batch.cli import main
    from semfi_batch.manifest import write_manifest

    clip = tmp_path / "ntsc.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=30000/1001:d=3",
         "-c:v", "libx264", "-g", "24", "-pix_fmt", "yuv420p", str(clip)], check=True,
    )  # fmt: skip
    rows = [{"pair_id": "r", "source": str(clip), "start_frame": 50, "end_frame": 54, "mode": "replace"}]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    summary = splice_run(run, output=tmp_path / "out.mkv")
    assert not summary.failed and summary.results[0].method == "smart cut", summary
    rates = [
        subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate",
                        "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout.strip()
        for path in (clip, summary.results[0].output)
    ]  # fmt: skip
    assert rates == ["30000/1001", "30000/1001"]
    times = [read_packets(path, 0, Fraction(1, 1000)).frame_pts.tolist() for path in (clip, summary.results[0].output)]
    assert times[0] == times[1]  # only the declaration changed
