"""Audio keeps its codec through a splice: copied, or re-encoded where time is inserted, into the container the
output's name asks for (splice/final_mux.py, splice/audio.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from semfi_batch.splice import splice_run
from semfi_batch.splice.audio import audio_encoding
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


KEPT = {
    "pcm_f32be-mov": ("mov", ("-c:a", "pcm_f32be")),
    "wmav2-mkv": ("mkv", ("-c:a", "wmav2")),
    "adpcm_ima_wav-avi": ("avi", ("-c:a", "adpcm_ima_wav")),
    "truehd-24bit-mkv": ("mkv", ("-c:a", "truehd", "-sample_fmt", "s32", "-strict", "experimental")),
}


@pytest.mark.parametrize("name", KEPT)
def test_rebuilt_audio_keeps_a_codec_this_ffmpeg_encodes(name, tmp_path):
    """Codecs outside a fixed table of encoders came back as AAC LC, without a word in the summary."""
    ext, audio = KEPT[name]
    src = tmp_path / f"src.{ext}"
    _clip(src, audio)
    summary = splice_run(make_run(tmp_path / "run", src, [INSERT]), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    assert "re-encoded as" not in result.audio_note, result.audio_note
    before, after = _audio(src), _audio(result.output)
    assert after["codec_name"] == before["codec_name"]
    assert (after["sample_fmt"], after.get("bits_per_raw_sample")) == (
        before["sample_fmt"],
        before.get("bits_per_raw_sample"),
    )


def test_a_codec_the_container_cannot_take_becomes_lossless_and_says_so(tmp_path):
    """24-bit PCM from MOV spliced into MP4, which holds no PCM: FLAC, still 24-bit, named in the summary."""
    src = tmp_path / "pcm.mov"
    _clip(src, ("-c:a", "pcm_s24be"))
    summary = splice_run(make_run(tmp_path / "run", src, [INSERT]), output=tmp_path / "out.mp4")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    assert "audio 1: pcm_s24be re-encoded as flac: this ffmpeg cannot write pcm_s24be into mp4" in result.audio_note
    after = _audio(result.output)
    assert (after["codec_name"], after["bits_per_raw_sample"]) == ("flac", "24")


def test_he_aac_keeps_its_profile_or_says_why_not():
    """ffmpeg's own AAC encoder takes `-profile:a aac_he` and writes a file marked HE-AAC that no decoder
    opens: the profile is kept only where the encoded file decodes as HE-AAC, and the summary names the loss."""
    stream = {"index": 1, "codec_name": "aac", "profile": "HE-AAC", "sample_rate": "48000", "channels": 2,
              "sample_fmt": "fltp", "bit_rate": "64000"}  # fmt: skip
    encoding = audio_encoding(stream, "mp4")
    if ("profile", "aac_he") in encoding.settings:  # an ffmpeg with libfdk_aac
        assert encoding.note == ""
    else:
        assert encoding.encoder == "aac"
        assert encoding.note.startswith("audio 1: HE-AAC re-encoded as AAC LC: this ffmpeg's aac encoder")


def test_dts_hd_master_audio_is_kept_lossless_not_made_dts_core():
    """ffmpeg's DTS encoder writes the lossy core only: a DTS-HD MA track (lossless) re-encoded with it lost
    its lossless part without a word. It becomes FLAC (24-bit here), and the summary says why."""
    stream = {"index": 1, "codec_name": "dts", "profile": "DTS-HD MA", "sample_rate": "48000", "channels": 6,
              "sample_fmt": "s32p", "bits_per_raw_sample": "24", "bit_rate": "3500000"}  # fmt: skip
    encoding = audio_encoding(stream, "matroska")
    assert (encoding.encoder, encoding.lossless, encoding.settings) == ("flac", True, ())
    assert encoding.note == (
        "audio 1: dts re-encoded as flac: this ffmpeg's dts encoder writes no DTS-HD MA, only lossy dts"
    )
    core = audio_encoding({**stream, "profile": "DTS"}, "matroska")  # plain DTS stays DTS
    assert core.encoder == "dca" and core.note == ""


def _kinds(path) -> list[tuple[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [(s["codec_type"], s.get("codec_name", "")) for s in json.loads(out)["streams"]]


STEREO = "aevalsrc=sin(440*2*PI*t)|sin(550*2*PI*t):s=48000:d=2"


@pytest.mark.parametrize("job", [REPLACE, INSERT], ids=["copied", "re-encoded"])
def test_pcm_spliced_into_ts_is_still_audio(job, tmp_path):
    """MPEG-TS holds no plain PCM: ffmpeg writes it without a word as a data stream that no player plays (a
    copy, and the trial file that asked whether it can be written). It is SMPTE 302M there (PCM as broadcast
    TS carries it), named in the summary."""
    src = tmp_path / "pcm.mov"
    _clip(src, ("-c:a", "pcm_s16le"), tone=STEREO)
    summary = splice_run(make_run(tmp_path / "run", src, [job]), output=tmp_path / "out.ts")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    assert _kinds(result.output) == [("video", "h264"), ("audio", "s302m")]
    assert "audio 1: pcm_s16le re-encoded as s302m: this ffmpeg cannot write pcm_s16le into mpegts" in (
        result.audio_note
    )


def test_audio_no_codec_of_the_container_holds_is_refused_not_lost(tmp_path):
    """Mono PCM into MPEG-TS: SMPTE 302M holds pairs of channels only, and no other lossless codec goes into
    TS. Written, it was a data stream, exit 0: the splice fails instead, and says why."""
    src = tmp_path / "pcm.mov"
    _clip(src, ("-c:a", "pcm_s16le"))
    summary = splice_run(make_run(tmp_path / "run", src, [REPLACE]), output=tmp_path / "out.ts")
    assert [f.output.name for f in summary.failed] == ["out.ts"]
    assert "cannot hold the source's pcm_s16le audio (stream 1): it came out as data" in summary.failed[0].why
    assert not (tmp_path / "out.ts").exists()


def test_pcm_copied_from_mxf_into_mov_is_checked_by_where_it_starts(tmp_path):
    """MXF holds PCM one packet per frame (1920 samples at 25 fps), MOV reads it back in chunks of 1024 and
    896: packet n of one was compared with packet n of the other, and every such splice failed ("audio stream 1
    would be 0.0 ms early against the picture ..., even after a correction"), its sound in place."""
    src = tmp_path / "src.mxf"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=256x144:r=25:d=2", "-f", "lavfi",
         "-i", STEREO, "-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p", "-c:a", "pcm_s16le",
         "-shortest", str(src)],
        check=True,
    )  # fmt: skip
    summary = splice_run(make_run(tmp_path / "run", src, [REPLACE]), output=tmp_path / "out.mov")
    assert not summary.failed, summary.failed
    assert _kinds(summary.results[0].output)[:2] == [("video", "dnxhd"), ("audio", "pcm_s16le")]
    assert summary.results[0].audio_note == "audio copied"
