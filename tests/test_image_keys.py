"""Keyframe images as a viewer shows them (found by trying artists' and cameras' files, each exit 0 with a wrong
result): turned by their EXIF orientation (JPEG, PNG eXIf, WebP, TIFF), 8-bit RGBA TIFF with straight alpha,
and a key file that shows otherwise than its pixels (orientation, colour profile) kept as the pixels used,
like the frames beside it, not as its bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import image_size, read_image

STORED = np.random.default_rng(5).integers(0, 256, (6, 10, 3), dtype=np.uint8)  # 10 wide, 6 high
SAVE = {"PNG": {}, "JPEG": {"quality": 100}, "WEBP": {"lossless": True}}


def _with_orientation(path, fmt: str, orientation: int, pixels=STORED):
    image = Image.fromarray(pixels)
    if fmt == "TIFF":
        image.save(path, "TIFF", tiffinfo={0x0112: orientation})
    else:
        exif = image.getexif()
        exif[0x0112] = orientation
        image.save(path, fmt, exif=exif.tobytes(), **SAVE[fmt])
    return path


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_images_are_read_turned_by_their_orientation(tmp_path, fmt):
    for orientation in range(1, 9):
        path = _with_orientation(tmp_path / f"o{orientation}.{fmt.lower()}", fmt, orientation)
        with Image.open(path) as shown:
            want = np.asarray(ImageOps.exif_transpose(shown).convert("RGB")).astype(int)  # PIL's own reading
        got = read_image(path)
        assert got.shape == want.shape, f"orientation {orientation}: {got.shape} read, {want.shape} shown"
        assert np.abs(got - want).max() <= (3 if fmt == "JPEG" else 0), f"orientation {orientation}"
        assert image_size(path) == (want.shape[1], want.shape[0])


def test_an_8_bit_rgba_tiff_keeps_straight_alpha(tmp_path):
    pixels = np.zeros((4, 6, 4), np.uint8)
    pixels[...] = (200, 100, 50, 128)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "key.tif")
    # OpenCV read it premultiplied: (100, 50, 25, 128)
    assert np.array_equal(read_image(tmp_path / "key.tif"), pixels)


def test_keys_that_show_otherwise_than_their_pixels_are_kept_as_the_pixels_used(tmp_path):
    """A PNG key turned upside down by its eXIf chunk, and one carrying a colour profile, are kept as
    start.png/end.png without them: the generated frames beside them have neither, and a byte copy showed the
    key turned (or in other colours) against its in-betweens."""
    turned = _with_orientation(tmp_path / "turned.png", "PNG", 3)
    profiled = tmp_path / "profiled.png"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(STORED[::-1, ::-1]).save(profiled, icc_profile=profile)  # the same picture as shown
    rows = [{"pair_id": "p", "start_image": str(turned), "end_image": str(profiled), "gap_frames": 1}]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    shown = STORED[::-1, ::-1]
    for name in ("start.png", "end.png", "frames/000001.png"):
        path = run / "jobs" / "p" / name
        with Image.open(path) as kept:
            assert "exif" not in kept.info and "icc_profile" not in kept.info, f"{name} keeps {set(kept.info)}"
        assert np.array_equal(read_image(path), shown), f"{name} is not the picture as shown"


def test_frames_are_written_in_the_colour_profile_their_keys_share(tmp_path):
    """Keys in one ICC profile (an artist's P3 or Adobe RGB) give frames in that profile, start.png and end.png
    too: in a colour-managed viewer the in-betweens showed in other colours than their keys."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    keys = []
    for name, pixels in (("a.jpg", STORED), ("b.png", STORED[::-1])):
        keys.append(tmp_path / name)
        Image.fromarray(pixels).save(
            keys[-1], icc_profile=profile, **({"quality": 100} if name.endswith("jpg") else {})
        )
    rows = [{"pair_id": "p", "start_image": str(keys[0]), "end_image": str(keys[1]), "gap_frames": 2}]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    for name in ("start.png", "end.png", "frames/000001.png", "frames/000002.png"):
        with Image.open(run / "jobs" / "p" / name) as written:
            assert written.info.get("icc_profile") == profile, f"{name} is not in the keys' colour profile"
    notes = json.loads((run / "jobs" / "p" / "record.json").read_text())["notes"]
    assert "sRGB" in notes["colour_profile"]


def test_frames_and_keys_keep_the_png_gamma_and_primaries_their_keys_share(tmp_path):
    """PNG keys that say their colours by gAMA and cHRM (no ICC profile; a renderer's linear gamma 1.0) give
    start.png, end.png, the frames and an assembled sequence with the same chunks: they were written without
    them, which a viewer that honours gAMA showed much darker than the user's keys."""
    import struct

    from PIL import PngImagePlugin

    chromaticity = (31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)
    keys = []
    for name, pixels in (("k1.png", STORED), ("k2.png", STORED[::-1])):
        info = PngImagePlugin.PngInfo()
        info.add(b"gAMA", struct.pack(">I", 100000))
        info.add(b"cHRM", struct.pack(">8I", *chromaticity))
        keys.append(tmp_path / name)
        Image.fromarray(pixels).save(keys[-1], pnginfo=info)
    rows = [{"pair_id": "p", "start_image": str(keys[0]), "end_image": str(keys[1]), "gap_frames": 1}]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    assert main(["assemble", str(run), "-o", str(tmp_path / "seq"), "--fps", "12"]) == 0
    written = [run / "jobs" / "p" / name for name in ("start.png", "end.png", "frames/000001.png")]
    for path in [*written, *sorted((tmp_path / "seq").iterdir())]:
        with Image.open(path) as im:
            shown = (im.info.get("gamma"), im.info.get("chromaticity"))
        assert shown == (1.0, tuple(v / 100000 for v in chromaticity)), f"{path.name}: {shown}"
    assert np.array_equal(read_image(written[0]), STORED) and np.array_equal(read_image(written[1]), STORED[::-1])
    notes = json.loads((run / "jobs" / "p" / "record.json").read_text())["notes"]
    assert "gamma 1" in notes["colour_profile"]


def test_only_jobs_a_change_touches_are_made_again(tmp_path, monkeypatch):
    """Frames of keys with PNG gAMA/cHRM/sRGB chunks were written without them, and keys with alpha were
    interpolated as stored, before: those jobs enter the key with it (and are made again); a job whose keys
    have neither keeps the key it had."""
    import struct

    from PIL import PngImagePlugin

    from semfi_batch.run import job as job_mod

    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 100000))
    seen = np.dstack([STORED, np.full(STORED.shape[:2], 128, np.uint8)])
    files = {}
    for name, pixels, extra in (("g1.png", STORED, info), ("g2.png", STORED, info), ("p1.png", STORED, None),
                                ("p2.png", STORED, None), ("a1.png", seen, None), ("a2.png", seen, None)):  # fmt: skip
        files[name] = tmp_path / name
        Image.fromarray(pixels).save(files[name], pnginfo=extra)
    rows = [
        {"pair_id": kind, "start_image": str(files[f"{kind[0]}1.png"]), "end_image": str(files[f"{kind[0]}2.png"]),
         "gap_frames": 1}
        for kind in ("gamma", "plain", "alpha")
    ]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"

    def keys() -> dict[str, str]:
        return {row["pair_id"]: json.loads((run / "jobs" / row["pair_id"] / "record.json").read_text())["key"]
                for row in rows}  # fmt: skip

    with monkeypatch.context() as before:  # as the engine planned before those changes
        before.setattr(job_mod, "says_colours_by_png_chunks", lambda path: False)
        before.setattr(job_mod, "may_have_alpha", lambda path: False)
        assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    old = keys()
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    new = keys()
    assert new["plain"] == old["plain"] and new["gamma"] != old["gamma"] and new["alpha"] != old["alpha"]
    with Image.open(run / "jobs" / "gamma" / "frames" / "000001.png") as im:
        assert im.info.get("gamma") == 1.0
