"""Frames at exact times and gaps longer than one clip: every delivered in-between is at t = i/(gap+1); those
the generated clip does not have are made from its two nearest frames by the best non-generative backend
registered (`rife`, else `flow`); a gap longer than one clip is filled coarse to fine and resumes clip by clip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import keyframes

from semfi_batch import backends
from semfi_batch.backends import BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends.blend import BlendBackend
from semfi_batch.plan import clip_frame_count, inbetween_fractions, place_times


class StandInRife(BlendBackend):
    """Registered as `rife` in these tests: a cross-fade, so the frames it makes can be checked exactly."""

    name = "rife"


class UnavailableRife(BlendBackend):
    name = "rife"

    @classmethod
    def availability(cls, options):
        return False, "no RIFE weights here"


def _request(gap, size=(32, 32), seed=5, work_dir=None):
    start, end = keyframes(*size, seed=2)
    return InterpolationRequest(
        pair_id=f"t{gap}", start=start, end=end, gap_frames=gap, seed=seed, prompt="a ball", steps=1,
        cfg_scale=1.0, work_dir=work_dir,
    )  # fmt: skip


@pytest.fixture
def fresh_filler(semfi_backend):
    semfi_backend._filler = None  # looked up again, in this test's registry
    yield semfi_backend
    semfi_backend._filler = None


def test_place_times_finds_exact_frames_and_fractions():
    assert place_times(inbetween_fractions(3), 5) == [(1, 0), (2, 0), (3, 0)]
    # gap 4 in a 9-frame clip: t = i/5 sits at 8i/5 = 1.6, 3.2, 4.8, 6.4 frames: none is generated.
    assert place_times(inbetween_fractions(4), 9) == [
        (1, Fraction(3, 5)), (3, Fraction(1, 5)), (4, Fraction(4, 5)), (6, Fraction(2, 5)),
    ]  # fmt: skip
    assert clip_frame_count(300) == 81 and clip_frame_count(5) == 9 and clip_frame_count(3, 9) == 5


def test_frames_between_generated_ones_come_from_rife_when_registered(fresh_filler, monkeypatch):
    backend = fresh_filler
    monkeypatch.setitem(backends._REGISTRY, "rife", f"{__name__}:StandInRife")
    # gap 7 fills a 9-frame clip exactly (frames 1..7); gap 4 asks the same clip (same N, seed, keyframes)
    # for t = i/5, which it does not have.
    clip = np.stack(list(backend.interpolate(_request(7))))
    assert backend.notes.values["delivered_from"] == [f"0[{m}]" for m in range(1, 8)]
    frames = list(backend.interpolate(_request(4)))
    notes = backend.notes.values
    assert notes["n_generated"] == 9 and notes["filled_by"] == "rife"
    assert notes["delivered_times"] == ["1/5", "2/5", "3/5", "4/5"]
    assert notes["delivered_from"][0] == "rife(0[1],0[2])@3/5"
    for frame, (m, frac) in zip(frames, place_times(inbetween_fractions(4), 9)):
        a, b = clip[m - 1].astype(np.float32), clip[m].astype(np.float32)  # clip[k] is generated frame k+1
        t = float(frac)
        expected = np.clip((1 - t) * a + t * b + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1  # the blend's own rounding


def test_flow_fills_when_rife_is_not_registered_or_cannot_run(fresh_filler, monkeypatch):
    backend = fresh_filler
    monkeypatch.setitem(backends._REGISTRY, "rife", f"{__name__}:UnavailableRife")
    frames = list(backend.interpolate(_request(4)))
    assert len(frames) == 4 and backend.notes.values["filled_by"] == "flow"
    backend._filler = None
    monkeypatch.delitem(backends._REGISTRY, "rife")
    list(backend.interpolate(_request(4)))
    assert backend.notes.values["filled_by"] == "flow"
    assert all(s.startswith("flow(") for s in backend.notes.values["delivered_from"])


class Crash(Exception):
    pass


def test_a_gap_longer_than_one_clip_is_filled_coarse_to_fine_and_resumes_clip_by_clip(tiny_semfi, tmp_path):
    from semfi_batch.backends._wan import sampling

    options = BackendOptions(
        device="cpu", models_dir=tiny_semfi.models_dir, semfi_ckpt=tiny_semfi.ckpt, extra={"max_clip_frames": 9}
    )
    backend = backend_class("semfi")(options)
    gap = 40  # one 9-frame clip spans it (a frame every 41/8 = 5.1 in-betweens); each space is generated again
    try:
        frames = list(backend.interpolate(_request(gap, work_dir=tmp_path / "clean")))
        notes = backend.notes.values
        assert len(frames) == gap and all(f.shape == (32, 32, 3) for f in frames)
        assert notes["n_generated"] == 9 and notes["clips"] == 9 and notes["generated_frames"] == 81
        assert [c["id"] for c in notes["clip_list"]] == ["0"] + [f"0.{m}" for m in range(8)]
        assert all(c["mol_branch"] == 2 for c in notes["clip_list"])
        sources = notes["delivered_from"]
        assert len(sources) == gap and all(s.startswith(("0.", "flow(0.", "rife(0.")) for s in sources)
        assert len({f.tobytes() for f in frames}) == gap  # every in-between is its own frame

        # The job dies while decoding its fourth clip, whose denoising had finished; the re-run takes the first
        # four from their final latents, generates the other five, and gives the uninterrupted run's frames.
        decode, calls = sampling.decode, []

        def dying_decode(pipe, latents):
            calls.append(1)
            if len(calls) == 4:
                raise Crash
            return decode(pipe, latents)

        work = tmp_path / "killed"
        sampling.decode = dying_decode
        try:
            with pytest.raises(Crash):
                list(backend.interpolate(_request(gap, work_dir=work)))
        finally:
            sampling.decode = decode
        backend.notes.values = {}  # a new job's notes, as the engine starts them (run/attempt.py)
        again = list(backend.interpolate(_request(gap, work_dir=work)))
        resumed = [c["resumed_from_step"] for c in backend.notes.values["clip_list"]]
        assert resumed == [1, 1, 1, 1] + [0] * 5
        assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    finally:
        backend.close()


def test_filled_by_names_the_filler_only_in_jobs_it_filled(fresh_filler, monkeypatch):
    backend = fresh_filler
    monkeypatch.setitem(backends._REGISTRY, "rife", f"{__name__}:StandInRife")
    backend.notes.values = {}
    list(backend.interpolate(_request(4)))  # t = i/5 in a 9-frame clip: filled
    assert backend.notes.values["filled_by"] == "rife"
    backend.notes.values = {}  # the next job, on the same worker (its filler made already)
    list(backend.interpolate(_request(3)))  # t = i/4 in a 5-frame clip: every frame generated
    assert "filled_by" not in backend.notes.values


class CountingRife(BlendBackend):
    """Registered as `rife`: a cross-fade that records the times each request asks for."""

    name = "rife"
    asked: list[list[float]] = []

    def interpolate(self, request):
        CountingRife.asked.append(request.inbetween_times())
        yield from super().interpolate(request)


def test_frames_at_uneven_times_cost_one_filled_frame_each_and_sit_at_their_times(fresh_filler, monkeypatch):
    # A variable-frame-rate row: in-betweens at 0.3449 and 0.6551 of the gap. In a 5-frame clip they fall
    # 949/2500 of the way from frame 1 to 2 and 1551/2500 from frame 2 to 3; the filler is asked for exactly
    # those two frames (it was asked for 2499 frames per in-between, and a real one made them all).
    backend = fresh_filler
    monkeypatch.setitem(backends._REGISTRY, "rife", f"{__name__}:CountingRife")
    monkeypatch.setattr(CountingRife, "asked", [])
    clip = list(backend.interpolate(_request(3)))  # generated frames 1, 2, 3 of the same clip
    uneven = _request(2)
    uneven.times = (0.3449, 0.6551)
    frames = list(backend.interpolate(uneven))
    assert sum(len(times) for times in CountingRife.asked) == 2
    assert backend.notes.values["delivered_from"] == ["rife(0[1],0[2])@949/2500", "rife(0[2],0[3])@1551/2500"]
    for frame, (a, b), t in zip(frames, ((clip[0], clip[1]), (clip[1], clip[2])), (949 / 2500, 1551 / 2500)):
        expected = np.clip((1 - t) * a.astype(np.float32) + t * b.astype(np.float32) + 0.5, 0, 255)
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1  # the blend's own rounding


def test_which_backend_fills_between_generated_frames_is_part_of_the_key(tiny_semfi, tmp_path, monkeypatch):
    def options(weights):
        extra = {"rife_model": str(weights)}
        return BackendOptions(models_dir=tiny_semfi.models_dir, semfi_ckpt=tiny_semfi.ckpt, extra=extra)

    semfi = backend_class("semfi")
    small, large = tmp_path / "small" / "flownet.pkl", tmp_path / "large" / "flownet.pkl"
    for path, content in ((small, b"v" * 10), (large, b"w" * 10)):
        path.parent.mkdir()
        path.write_bytes(content)  # the same name and size: the weights enter a key by content
    keys = {semfi.key_params(options(path))["filler"]["model_sha256"] for path in (small, large)}
    assert len(keys) == 2 and None not in keys  # other rife weights, another key
    assert small in semfi.deciding_files(options(small))  # and their presence decides whether rife fills
    assert semfi.key_params(options(tmp_path / "absent.pkl"))["filler"]["backend"] == "flow"
    monkeypatch.setitem(backends._REGISTRY, "rife", f"{__name__}:StandInRife")
    assert semfi.key_params(options(small))["filler"]["backend"] == "rife"
