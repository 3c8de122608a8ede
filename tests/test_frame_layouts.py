"""Bit depth, alpha and fields through a run: 16-bit and RGBA keys give 16-bit and RGBA frames, alpha moves
with the colour, interlaced sources are generated per field (or deinterlaced on request), and a run's
keyframes come from one forward decode per source through the keyframe cache."""

from __future__ import annotations

import numpy as np
import pytest

from semfi_batch.backends import BackendOptions
from semfi_batch.backends.blend import BlendBackend
from semfi_batch.backends.flow import FlowBackend
from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media import keyframe_cache as cache_mod
from semfi_batch.media.fields import interpolate_by_field, split_fields, weave
from semfi_batch.media.frames import read_image, write_png
from semfi_batch.media.keyframe_cache import KeyframeCache, fill_for_pairs
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.run.job import JobPlanner
from tests.formats import FORMATS, make_clip

BY_NAME = {f.name: f for f in FORMATS}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layout-clips")
    return lambda name: make_clip(BY_NAME[name], folder)


@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 3), (np.uint8, 4), (np.uint16, 3), (np.uint16, 4)], ids=str)
def test_png_keeps_depth_and_alpha(tmp_path, dtype, channels):
    frame = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, (7, 11, channels), dtype=dtype)
    write_png(tmp_path / "f.png", frame)
    back = read_image(tmp_path / "f.png")
    assert back.dtype == dtype and np.array_equal(back, frame)


def test_gray_and_palette_alpha_become_rgba_not_flattened(tmp_path):
    from PIL import Image

    Image.new("LA", (4, 4), (90, 10)).save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png")[0, 0].tolist() == [90, 90, 90, 10]
    pal = Image.new("P", (4, 4))
    pal.putpalette([200, 0, 0] * 256)
    pal.save(tmp_path / "p.png", transparency=0)
    assert read_image(tmp_path / "p.png")[0, 0].tolist() == [200, 0, 0, 0]


@pytest.mark.parametrize("backend", [FlowBackend, BlendBackend], ids=["flow", "blend"])
def test_flow_and_blend_work_at_16_bits_with_alpha(backend):
    from semfi_batch.backends.base import InterpolationRequest

    a = np.zeros((32, 48, 4), np.uint16)
    a[..., :3] = 1000
    a[..., 3] = 65535
    b = a.copy()
    b[..., :3] = 1003  # a difference 8 bits cannot hold
    out = list(backend().generate(InterpolationRequest("p", a, b, 3, 0)))
    assert [f.dtype for f in out] == [np.uint16] * 3 and out[0].shape == a.shape
    # 1000 + 3t for t = 1/4, 2/4, 3/4, rounded: steps 8 bits cannot hold
    assert [round(float(f[..., 0].mean())) for f in out] == [1001, 1002, 1002]
    a[..., 3] = 0  # the start key transparent: its colour shows nowhere, and in no frame
    out = list(backend().generate(InterpolationRequest("p", a, b, 3, 0)))
    alphas = [float(f[..., 3].mean()) for f in out]
    assert alphas == sorted(alphas) and 0 < alphas[0] < alphas[-1] < 65535  # alpha moves with the colour
    # (premultiplied at 16 bits, a colour under alpha 1/4 is kept to 4 levels of 65535)
    assert all(np.abs(f[..., :3].astype(int) - 1003).max() <= 1 for f in out)


def _disk(cx: int, ground: tuple[int, int, int]) -> np.ndarray:
    """A white disk of radius 10 at column cx, opaque, on a transparent ground whose hidden colour is `ground`."""
    yy, xx = np.mgrid[0:48, 0:64]
    inside = (xx - cx) ** 2 + (yy - 24) ** 2 <= 100
    frame = np.zeros((48, 64, 4), np.uint8)
    frame[..., :3] = ground
    frame[inside, :3] = 255
    frame[..., 3] = np.where(inside, 255, 0)
    return frame


@pytest.mark.parametrize("backend", [FlowBackend, BlendBackend], ids=["flow", "blend"])
@pytest.mark.parametrize("ground", [(0, 0, 0), (255, 0, 255)], ids=["black", "magenta"])
def test_the_colour_under_transparent_pixels_shows_in_no_frame(backend, ground):
    from semfi_batch.backends.base import InterpolationRequest

    # Every pixel that shows in either key is white: so is every pixel that shows in the frames. Interpolated
    # straight, the disk's moving and fading edges took the transparent ground's colour (blend: 448 of 541
    # visible pixels more than 8 levels off white, up to 127; flow: up to 254).
    (frame,) = backend().generate(InterpolationRequest("p", _disk(26, ground), _disk(38, ground), 1, 0))
    shows = frame[..., 3] > 0
    assert shows.sum() > 300 and (frame[shows, :3] == 255).all()
    # Identical keys with partial alpha give the key back wherever it shows, at 8 bits exactly.
    key = np.random.default_rng(4).integers(0, 256, (48, 64, 4), dtype=np.uint8)
    shows = key[..., 3] > 0
    for frame in backend().generate(InterpolationRequest("p", key, key.copy(), 2, 0)):
        assert np.array_equal(frame[shows], key[shows]) and (frame[~shows] == 0).all()


@pytest.mark.parametrize("size", [(40, 30), (100, 75)], ids=["smaller", "larger"])
def test_keys_resized_with_partial_alpha_keep_the_colour_that_shows(size):
    from semfi_batch.media.fields import resize_interlaced
    from semfi_batch.media.frames import resize

    # A row's width and height resize its keys: the white disk's edges took the transparent ground's magenta
    # (up to 239 levels off white shrunk, 254 enlarged, exit 0); whole frames and field by field alike.
    for fit in (resize, resize_interlaced):
        for deep in (False, True):
            key = _disk(30, (255, 0, 255))
            key = key.astype(np.uint16) * 257 if deep else key
            out = fit(key, *size)
            shows = out[..., 3] > 0
            assert out.shape == (size[1], size[0], 4) and out.dtype == key.dtype and shows.sum() > 100
            assert (out[shows, :3] == np.iinfo(key.dtype).max).all()


def test_fields_are_interpolated_apart_and_woven_back():
    # Keys whose two fields differ (combing): each field sequence is interpolated with itself only.
    start, end = np.zeros((8, 6, 3), np.uint8), np.zeros((8, 6, 3), np.uint8)
    start[0::2], start[1::2] = 100, 20
    end[0::2], end[1::2] = 200, 60

    def blend(first, last, part):
        from semfi_batch.backends.base import InterpolationRequest

        return BlendBackend().generate(InterpolationRequest("p", first, last, 1, 0))

    (mid,) = interpolate_by_field(blend, start, end)
    top, bottom = split_fields(mid)
    assert int(top.mean()) == 150 and int(bottom.mean()) == 40
    assert np.array_equal(weave(*split_fields(start)), start)


def run_rows(tmp_path, rows, *extra):
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend", "--no-preview", *extra]) == 0
    return out


def test_ten_bit_and_alpha_sources_give_16_bit_and_rgba_frames(tmp_path, clips):
    rows = [
        {"pair_id": "deep", "source": str(clips("h264_10bit_mov")), "start_frame": 2, "end_frame": 6},
        {"pair_id": "alpha", "source": str(clips("prores_4444_alpha_mov")), "start_frame": 3, "end_frame": 5},
        {"pair_id": "qtrle", "source": str(clips("qtrle_alpha_mov")), "start_frame": 3, "end_frame": 5},
    ]
    out = run_rows(tmp_path, rows)
    deep = read_image(out / "jobs/deep/frames/000001.png")
    assert deep.dtype == np.uint16 and deep.shape == (48, 64, 3)
    for pair_id, dtype in (("alpha", np.uint16), ("qtrle", np.uint8)):
        start, end = read_image(out / f"jobs/{pair_id}/start.png"), read_image(out / f"jobs/{pair_id}/end.png")
        mid = read_image(out / f"jobs/{pair_id}/frames/000001.png")
        assert mid.dtype == dtype and mid.shape[2] == 4
        expected = (start[..., 3].astype(float) + end[..., 3]) / 2
        assert np.abs(mid[..., 3] - expected).max() <= 1  # alpha cross-faded with the colour
        info = probe_video(rows[1 if pair_id == "alpha" else 2]["source"])
        assert np.array_equal(start, extract_frames(info, [3])[3])  # the key is the source frame, exactly


def test_interlaced_source_is_generated_per_field_or_deinterlaced(tmp_path, clips):
    src = clips("mpeg2_ts_tff")
    rows = [{"pair_id": "i", "source": str(src), "start_frame": 4, "end_frame": 6}]
    out = run_rows(tmp_path / "fields", rows)
    import json

    record = json.loads((out / "jobs/i/record.json").read_text())
    assert record["notes"]["fields"] == "tt"
    start, end = (read_image(out / f"jobs/i/{k}.png").astype(int) for k in ("start", "end"))
    mid = read_image(out / "jobs/i/frames/000001.png").astype(int)
    assert np.abs(mid - (start + end) / 2).max() <= 1  # blend per field of the same field rows
    deint = run_rows(tmp_path / "deint", rows, "--deinterlace")
    record = json.loads((deint / "jobs/i/record.json").read_text())
    assert "fields" not in record["notes"]
    # The deinterlaced run is another job (its key says so) with keys of its own.
    planner = JobPlanner("blend", BackendOptions())
    deint_planner = JobPlanner("blend", BackendOptions(extra={"deinterlace": True}))
    from semfi_batch.manifest import load_manifest

    pair = load_manifest(tmp_path / "fields" / "m.parquet").pairs[0]
    assert planner.plan(pair).key != deint_planner.plan(pair).key
    # The root keeps the setting: splice confirms its jobs (it planned them without it, every job stale), and a
    # run without it on that root is refused by name, not quietly made again.
    from semfi_batch.splice.runfolder import read_run

    assert [e.pair_id for e in read_run(deint).sources[src.resolve()]] == ["i"]
    manifest = tmp_path / "deint" / "m.parquet"
    args = ["run", str(manifest), "--out", str(deint), "--quiet", "--backend", "blend", "--no-preview"]
    assert main(args) == 2


def test_run_reads_each_sources_keyframes_in_one_decode(tmp_path, clips, monkeypatch):
    src = clips("mpeg4_avi_packed")
    calls = []
    real = cache_mod.iter_frames

    def counting(info, indices, **kw):
        calls.append(sorted(indices))
        return real(info, indices, **kw)

    monkeypatch.setattr(cache_mod, "iter_frames", counting)
    rows = [{"pair_id": f"r{s}", "source": str(src), "start_frame": s, "end_frame": s + 3} for s in (1, 9, 17, 25)]
    out = run_rows(tmp_path, rows)
    assert calls == [[1, 4, 9, 12, 17, 20, 25, 28]]  # one forward decode for all eight keys
    info = probe_video(src)
    truth = extract_frames(info, [17, 20])
    assert np.array_equal(read_image(out / "jobs/r17/start.png"), truth[17])
    assert np.array_equal(read_image(out / "jobs/r17/end.png"), truth[20])
    cache = KeyframeCache(out / "cache" / "keyframes")
    assert fill_for_pairs(cache, []) == {}
    assert cache.fill(src, [1, 4]) == 0  # already there: nothing decoded again
    assert len(calls) == 1
