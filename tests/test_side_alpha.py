"""VP8/VP9 alpha kept beside the picture (WebM): read with libvpx's decoders, never silently dropped."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.errors import MediaError
from semfi_batch.media import side_alpha
from semfi_batch.media.probe import probe_video
from semfi_batch.media.stream_facts import probe_stream_facts
from semfi_batch.media.video_frames import extract_frames

ALPHA = "if(lt(Y,H/2),255,96)"


def _webm(path, alpha: bool):
    pix = "yuva420p" if alpha else "yuv420p"
    graph = f"testsrc2=s=64x48:r=25:d=1,format=yuva420p,geq=lum='lum(X,Y)':cb='cb(X,Y)':cr='cr(X,Y)':a='{ALPHA}'"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-c:v", "libvpx-vp9", "-pix_fmt",
         pix, "-auto-alt-ref", "0", "-crf", "10", "-b:v", "0", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_vp9_alpha_is_read_through_libvpx(tmp_path):
    clip = _webm(tmp_path / "alpha.webm", alpha=True)
    info, facts = probe_video(clip), probe_stream_facts(clip)
    assert (info.decoder, info.pix_fmt, info.has_alpha) == ("libvpx-vp9", "yuva420p", True)
    assert (facts.decoder, facts.pix_fmt) == ("libvpx-vp9", "yuva420p")
    frame = extract_frames(info, [3])[3]
    assert frame.shape[2] == 4
    top, bottom = frame[:20, :, 3].mean(), frame[28:, :, 3].mean()
    assert top > 250 and abs(bottom - 96) < 4  # the clip's own alpha, not an opaque default

    plain = probe_video(_webm(tmp_path / "plain.webm", alpha=False))
    assert (plain.decoder, plain.has_alpha) == (None, False)


def test_an_ffmpeg_without_libvpx_is_an_error_naming_the_file(tmp_path, monkeypatch):
    clip = _webm(tmp_path / "alpha.webm", alpha=True)
    monkeypatch.setattr(side_alpha, "ffmpeg_codecs", lambda kind: frozenset({"vp9", "vp8"}))
    with pytest.raises(MediaError, match=r"alpha\.webm.*libvpx-vp9"):
        probe_stream_facts(clip)


def test_a_splice_that_would_drop_the_alpha_is_an_error(tmp_path):
    from semfi_batch.splice import splice_run
    from tests.test_splice import make_run

    clip = _webm(tmp_path / "alpha.webm", alpha=True)
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 10, "end": 13}])
    summary = splice_run(run, output=tmp_path / "out.mp4")
    assert len(summary.failed) == 1 and "write the output as .webm or .mkv" in summary.failed[0].why
    assert not (tmp_path / "out.mp4").exists()
