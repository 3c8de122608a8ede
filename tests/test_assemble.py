import shutil
import subprocess

import numpy as np

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image, write_png
from semfi_batch.media.probe import probe_video


def test_assemble_keys_and_inbetweens_in_order(tmp_path, capsys):
    for i in range(3):
        write_png(tmp_path / f"k{i}.png", np.full((32, 48, 3), 60 * i, np.uint8))
    rows = [
        {"pair_id": "a", "start_image": "k0.png", "end_image": "k1.png", "gap_frames": 2},
        {"pair_id": "b", "start_image": "k1.png", "end_image": "k2.png", "gap_frames": 3},
    ]
    manifest = write_manifest(rows, tmp_path / "keys.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend"]) == 0
    clip = tmp_path / "keys.mp4"
    assert main(["assemble", str(run), "-o", str(clip), "--fps", "10"]) == 0
    info = probe_video(clip)
    assert info.frame_count == 3 + 2 + 3  # three keys (the shared one once) and five in-betweens
    assert abs(info.avg_fps - 10) < 1e-6
    assert "5 generated" in capsys.readouterr().out


def test_assemble_refuses_video_runs(tmp_path, clip_factory, capsys):
    manifest = write_manifest(
        [{"pair_id": "v", "source": str(clip_factory(12)), "start_frame": 1, "end_frame": 4}], tmp_path / "v.parquet"
    )
    assert main(["run", str(manifest), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["assemble", str(tmp_path / "run"), "-o", str(tmp_path / "x.mp4")]) == 1
    assert "use `semfi-batch splice`" in capsys.readouterr().err


def keys_run(tmp_path, sheet_text: str | None = None, rgba: bool = False):
    """Four keys a..d, a run over them (blend) and its folder."""
    folder = tmp_path / "keys"
    folder.mkdir()
    for i, name in enumerate("abcd"):
        frame = np.full((32, 48, 4 if rgba else 3), 50 * i + 20, np.uint8)
        if rgba:
            frame[..., 3] = 40 * i + 100
        write_png(folder / f"{name}.png", frame)
    manifest = tmp_path / "keys.parquet"
    if sheet_text is None:
        assert main(["manifest", "from-images", str(folder), "-o", str(manifest), "--gap", "2"]) == 0
    else:
        (tmp_path / "sheet.csv").write_text(sheet_text)
        assert (
            main(["manifest", "from-images", str(folder), "-o", str(manifest), "--sheet", str(tmp_path / "sheet.csv")])
            == 0
        )
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    return run


def test_exposure_sheet_keys_next_to_each_other_are_all_kept(tmp_path):
    # a on 1, b on 2 (adjacent: no pair), c on 5, d on 6 (adjacent to c, the last key).
    run = keys_run(tmp_path, "image,frame\na.png,1\nb.png,2\nc.png,5\nd.png,6\n")
    seq = tmp_path / "seq"
    assert main(["assemble", str(run), "-o", str(seq)]) == 0
    levels = [int(read_image(p)[..., 0].mean()) for p in sorted(seq.glob("*.png"))]
    # frames 1..6: a, b, two in-betweens of b->c, c, d
    assert len(levels) == 6 and levels[:2] == [20, 70] and levels[-2:] == [120, 170]


def test_a_key_held_on_two_sheet_frames_is_shown_on_both(tmp_path):
    # b on 5 and again on 6 (one drawing held two frames): pairs a-b (3 in-betweens) and b-c (2), nothing between.
    run = keys_run(tmp_path, "image,frame\na.png,1\nb.png,5\nb.png,6\nc.png,9\n")
    seq = tmp_path / "seq"
    assert main(["assemble", str(run), "-o", str(seq)]) == 0
    levels = [int(read_image(p)[..., 0].mean()) for p in sorted(seq.glob("*.png"))]
    # frames 1..9: a, three in-betweens, b, b, two in-betweens, c (on frame 9, as on the sheet)
    assert len(levels) == 9 and levels[0] == 20 and levels[4:6] == [70, 70] and levels[-1] == 120


def test_assemble_writes_gif_png_sequence_and_prores_at_exact_rates(tmp_path, capsys):
    run = keys_run(tmp_path, rgba=True)
    gif = tmp_path / "keys.gif"
    assert main(["assemble", str(run), "-o", str(gif), "--fps", "12.5"]) == 0
    assert gif.read_bytes()[:6] == b"GIF89a"  # a GIF, not MP4 bytes under a .gif name
    assert probe_video(gif).frame_count == 4 + 3 * 2
    mov = tmp_path / "keys.mov"
    assert main(["assemble", str(run), "-o", str(mov), "--fps", "23.976", "--codec", "prores"]) == 0
    info = probe_video(mov)
    assert (info.codec, info.has_alpha, info.frame_count) == ("prores", True, 10)
    rate = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate", "-of", "csv=p=0",
         str(mov)], capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert rate == "24000/1001"
    seq = tmp_path / "frames"
    assert main(["assemble", str(run), "-o", str(seq)]) == 0
    pngs = sorted(seq.glob("*.png"))
    assert len(pngs) == 10 and read_image(pngs[0]).shape == (32, 48, 4)  # RGBA kept bit for bit
    assert (
        pngs[1].read_bytes()
        == (run / "jobs")
        .joinpath(sorted(p.name for p in (run / "jobs").iterdir())[0], "frames", "000001.png")
        .read_bytes()
    )
    capsys.readouterr()
    assert main(["assemble", str(run), "-o", str(tmp_path / "keys.webm")]) == 1
    assert "keys.webm" in capsys.readouterr().err
    assert main(["assemble", str(run), "-o", str(tmp_path / "x.mp4")]) == 0
    assert "8-bit without alpha" in capsys.readouterr().err


def test_frame_rates_are_exact():
    from fractions import Fraction

    import pytest

    from semfi_batch.errors import SemfiError
    from semfi_batch.media.rates import parse_rate

    ntsc = {"23.976": (24000, 1001), "29.97": (30000, 1001), "59.94": (60000, 1001), "119.88": (120000, 1001)}
    for text, (num, den) in ntsc.items():
        assert parse_rate(text) == Fraction(num, den)
    assert parse_rate("12.5") == Fraction(25, 2) and parse_rate("24") == 24
    assert parse_rate(23.976) == Fraction(24000, 1001)
    assert parse_rate("30000/1001") == Fraction(30000, 1001)
    for bad in ("0", "-3", "fast", "1/0"):
        with pytest.raises(SemfiError, match="frame rate"):
            parse_rate(bad)


def test_assemble_takes_the_review_decisions_as_splice_does(tmp_path, capsys):
    """A rejected pair's in-betweens are never assembled (its start key is held, keeping the timing); with
    --accepted-only only accepted pairs' in-betweens are."""
    from semfi_batch.review.decisions import decide

    run = keys_run(tmp_path)  # pairs a-b, b-c, c-d, 2 in-betweens each
    pairs = sorted(p.name for p in (run / "jobs").iterdir())
    decide(run, [pairs[1]], "rejected")
    decide(run, [pairs[2]], "accepted")
    held_key = read_image(run / "jobs" / pairs[1] / "start.png")

    def assembled(*extra: str) -> list[np.ndarray]:
        out = tmp_path / f"seq{len(extra)}"
        assert main(["assemble", str(run), "-o", str(out), *extra]) == 0
        return [read_image(p) for p in sorted(out.glob("*.png"))]

    frames = assembled()
    assert len(frames) == 4 + 3 * 2  # the timing is kept
    assert all(np.array_equal(f, held_key) for f in frames[4:6])  # the rejected pair holds its start key
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[7], frames[6])
    printed = capsys.readouterr()
    assert "4 generated" in printed.out and f"1 pair(s) rejected in review, key held: {pairs[1]}" in printed.err
    frames = assembled("--accepted-only")
    assert all(np.array_equal(f, frames[0]) for f in frames[1:3])  # undecided: held under --accepted-only
    assert not np.array_equal(frames[7], frames[6])  # the accepted pair's in-betweens
    assert "2 generated" in capsys.readouterr().out


def counted_frames(clip) -> int:
    """Frames in `clip` as a decoder counts them (ffprobe -count_frames), not as its header says."""
    return int(
        subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
             "stream=nb_read_frames", "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip


def test_keys_the_run_did_not_keep_are_decoded_not_copied(tmp_path):
    """JPEG keys that no job kept (one listed in keys_after; the held keys of a job that has not run) become
    real PNGs in a sequence, and every frame reaches a clip (ffmpeg reading PNGs drops JPEG bytes)."""
    from PIL import Image

    folder = tmp_path / "keys"
    folder.mkdir()
    for name, level in (("A", 40), ("B", 80), ("C", 120), ("D", 200)):
        Image.fromarray(np.full((24, 32, 3), level, np.uint8)).save(folder / f"{name}.jpg", quality=100)
    # C on 6 is next to B on 5 (keys_after of A-B); the sheet comes back to A at the end.
    (tmp_path / "sheet.csv").write_text("image,frame\nA.jpg,1\nB.jpg,5\nC.jpg,6\nD.jpg,7\nA.jpg,11\n")
    manifest = tmp_path / "keys.parquet"
    assert (
        main(["manifest", "from-images", str(folder), "-o", str(manifest), "--sheet", str(tmp_path / "sheet.csv")]) == 0
    )
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    shutil.rmtree(min((run / "jobs").iterdir()))  # A-B has not run: its keys are the user's JPEGs, A held for its gap
    seq = tmp_path / "seq"
    assert main(["assemble", str(run), "-o", str(seq)]) == 0
    pngs = sorted(seq.glob("*.png"))
    assert [p.read_bytes()[:8] for p in pngs] == [b"\x89PNG\r\n\x1a\n"] * 11
    jpeg = {name: read_image(folder / f"{name}.jpg") for name in "ABCD"}
    expected = [jpeg["A"]] * 4 + [jpeg["B"], jpeg["C"]]
    assert all(np.array_equal(read_image(p), e) for p, e in zip(pngs, expected))
    clip = tmp_path / "keys.mp4"
    assert main(["assemble", str(run), "-o", str(clip)]) == 0
    assert counted_frames(clip) == 11


LAYOUT_FRAMES = 4 + 4 + 3  # k0, 2, k1 | k2, 2, k3 | 2, k4


def layouts_run(tmp_path):
    """A run of an 8-bit RGB pair, a 16-bit pair, then a pair to an RGBA key (alpha 0..255 across), blended."""
    keys = {
        "k0": np.full((24, 32, 3), 20, np.uint8),
        "k1": np.full((24, 32, 3), 50, np.uint8),
        "k2": np.full((24, 32, 3), 150 * 257, np.uint16),
        "k3": np.full((24, 32, 3), 200 * 257, np.uint16),
        "k4": np.dstack(
            [np.full((24, 32, 3), 90, np.uint8), np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))]
        ),
    }
    for name, frame in keys.items():
        write_png(tmp_path / f"{name}.png", frame)
    rows = [
        {"pair_id": "p0", "start_image": "k0.png", "end_image": "k1.png", "gap_frames": 2},
        {"pair_id": "p1", "start_image": "k2.png", "end_image": "k3.png", "gap_frames": 2},
        {"pair_id": "p2", "start_image": "k3.png", "end_image": "k4.png", "gap_frames": 2},
    ]
    run = tmp_path / "run"
    manifest = write_manifest(rows, tmp_path / "keys.parquet")
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    return run


def test_a_gif_gets_every_frame_when_the_layout_changes_between_pairs(tmp_path):
    """ffmpeg rebuilt its filters at each layout change and lost the frames queued for the palette."""
    run = layouts_run(tmp_path)
    gif = tmp_path / "keys.gif"
    assert main(["assemble", str(run), "-o", str(gif)]) == 0
    assert counted_frames(gif) == LAYOUT_FRAMES


def test_alpha_is_decided_over_all_frames_not_the_first(tmp_path, capsys):
    """The first frames are opaque, the last key has alpha: ProRes is 4444 and keeps it; H.264 says it cannot."""
    run = layouts_run(tmp_path)
    mov = tmp_path / "keys.mov"
    assert main(["assemble", str(run), "-o", str(mov), "--codec", "prores"]) == 0
    assert counted_frames(mov) == LAYOUT_FRAMES and probe_video(mov).has_alpha
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(mov), "-f", "rawvideo", "-pix_fmt", "rgba", "-"],
        capture_output=True,
        check=True,
    ).stdout
    last = np.frombuffer(raw, np.uint8).reshape(LAYOUT_FRAMES, 24, 32, 4)[-1]
    assert last[..., 3].min() < 5 and last[..., 3].max() > 250  # k4's alpha ramp
    capsys.readouterr()
    mp4 = tmp_path / "keys.mp4"
    assert main(["assemble", str(run), "-o", str(mp4)]) == 0
    assert counted_frames(mp4) == LAYOUT_FRAMES and "8-bit without alpha" in capsys.readouterr().err


def test_a_damaged_key_of_a_failed_job_is_an_error_not_a_frame(tmp_path, capsys):
    write_png(tmp_path / "k0.png", np.full((24, 32, 3), 50, np.uint8))
    write_png(tmp_path / "k1.png", np.full((24, 32, 3), 150, np.uint8))
    data = bytearray((tmp_path / "k1.png").read_bytes())
    data[data.find(b"IDAT") + 6] ^= 0xFF  # damage inside the image data: the header still reads
    (tmp_path / "k1.png").write_bytes(bytes(data))
    manifest = write_manifest(
        [{"pair_id": "p", "start_image": "k0.png", "end_image": "k1.png", "gap_frames": 2}], tmp_path / "k.parquet"
    )
    main(["run", str(manifest), "--out", str(tmp_path / "run"), "--quiet", "--backend", "blend", "--no-preview"])
    capsys.readouterr()
    assert main(["assemble", str(tmp_path / "run"), "-o", str(tmp_path / "seq")]) == 1
    assert "k1.png" in capsys.readouterr().err and not (tmp_path / "seq").exists()


def test_a_codec_the_container_cannot_hold_is_a_usage_error(tmp_path, capsys):
    """--codec prores with a .gif name wrote a GIF without a word; like .mp4 it is refused, naming the
    containers that hold ProRes, before any frame is read."""
    run = keys_run(tmp_path)
    for name in ("x.gif", "x.mp4"):
        capsys.readouterr()
        assert main(["assemble", str(run), "-o", str(tmp_path / name), "--codec", "prores"]) == 2
        assert f"cannot write prores into {name}: give a name ending in .mov, .mkv" in capsys.readouterr().err
        assert not (tmp_path / name).exists()


def gif_delays_ms(gif) -> list[int]:
    from PIL import Image

    with Image.open(gif) as im:
        return [im.seek(n) or im.info["duration"] for n in range(im.n_frames)]


def test_a_gif_faster_than_50_fps_is_refused_not_played_slow(tmp_path, capsys):
    """At 59.94 fps ffmpeg wrote delays of 1/100 s, which players show for 1/10 s: the clip stuttered and ran
    2.5 times too long. 50 fps (2/100 s a frame) is the fastest a GIF plays; above it is a usage error."""
    run = keys_run(tmp_path)
    assert main(["assemble", str(run), "-o", str(tmp_path / "fast.gif"), "--fps", "59.94"]) == 2
    assert "a GIF plays at most 50 fps" in capsys.readouterr().err and not (tmp_path / "fast.gif").exists()
    assert main(["assemble", str(run), "-o", str(tmp_path / "x.gif"), "--fps", "50"]) == 0
    assert gif_delays_ms(tmp_path / "x.gif") == [20] * 10


def test_a_rate_finer_than_the_containers_clock_is_refused_not_written(tmp_path, capsys):
    """Matroska times frames in whole milliseconds: at 2000 fps half the frames shared a time, and assemble said
    "at 2000 fps" over a file that plays at 1000. The written clip's frame steps are checked against the rate."""
    run = keys_run(tmp_path)
    clip = tmp_path / "fast.mkv"
    assert main(["assemble", str(run), "-o", str(clip), "--fps", "2000"]) == 1
    assert ".mkv cannot time frames at 2000 fps" in capsys.readouterr().err and not clip.exists()
    assert main(["assemble", str(run), "-o", str(clip), "--fps", "60"]) == 0
