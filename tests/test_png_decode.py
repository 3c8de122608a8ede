"""The fast PNG reader (media/png.decode_png) against OpenCV, the general decoder `read_image` falls back to:
on every PNG it takes the pixels must be OpenCV's, exactly; it must take the PNGs the run reads most (ours,
the keyframe cache's, ffmpeg's) and leave every other one (average/Paeth rows, palette, gray, transparency,
damage) to OpenCV, so `read_image` gives the same array either way."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from semfi_batch.errors import MediaError
from semfi_batch.media.frames import MAX_IMAGE_PIXELS, PNG_LEVEL_ENV, read_image, write_png
from semfi_batch.media.png import decode_png, png_header


def opencv_pixels(path: Path) -> np.ndarray:
    """The reference: OpenCV's decode in read_image's layout (RGB/RGBA, own depth)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def video_like(height: int, width: int, channels: int, dtype, seed: int) -> np.ndarray:
    """Smooth gradients with noise and repeated rows: every filter type is worth something somewhere."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 65535
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 3 + y * 2)[..., None] * np.arange(1, channels + 1)
    frame = (base % (top + 1) + rng.integers(0, 9, (height, width, channels))) % (top + 1)
    frame[height // 3 : height // 2] = frame[height // 3]
    return frame.astype(dtype)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def assemble(parts: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(d, zlib.crc32(k))) for k, d in parts
    )
    return b"\x89PNG\r\n\x1a\n" + body


def ffmpeg_png(tmp_path: Path, name: str, pix_fmt: str, *extra: str) -> Path:
    path = tmp_path / f"{name}.png"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=67x41:rate=1", "-frames:v", "1",
         "-pix_fmt", pix_fmt, *extra, str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("level", ["0", "1", "3"])
@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 3), (np.uint8, 4), (np.uint16, 3), (np.uint16, 4)])
@pytest.mark.parametrize("size", [(1, 1), (41, 67)])
def test_our_pngs_are_read_fast_and_exactly(tmp_path, monkeypatch, level, dtype, channels, size):
    monkeypatch.setenv(PNG_LEVEL_ENV, level)
    frame = video_like(*size, channels, dtype, seed=int(level))
    write_png(tmp_path / "f.png", frame)
    fast = decode_png((tmp_path / "f.png").read_bytes(), MAX_IMAGE_PIXELS)
    assert fast is not None and fast.dtype == frame.dtype and np.array_equal(fast, frame)
    assert np.array_equal(fast, opencv_pixels(tmp_path / "f.png"))


# ffmpeg's PNG encoder: the row filter it is asked for, pixel formats, colour tags (gAMA, cHRM, sRGB chunks)
FFMPEG_CASES = {
    "rgb24 pred none": ("rgb24", ["-pred", "none"], True),
    "rgb24 pred sub": ("rgb24", ["-pred", "sub"], True),
    "rgb24 pred up": ("rgb24", ["-pred", "up"], True),
    "rgb24 pred avg": ("rgb24", ["-pred", "avg"], False),
    "rgb24 pred paeth": ("rgb24", ["-pred", "paeth"], False),
    "rgb24 pred mixed": ("rgb24", ["-pred", "mixed"], None),  # whichever rows ffmpeg picks
    "rgba pred sub": ("rgba", ["-pred", "sub"], True),
    "rgb48be pred sub": ("rgb48be", ["-pred", "sub"], True),
    "rgba64be pred up": ("rgba64be", ["-pred", "up"], True),
    "rgb24 bt709 tags": ("rgb24", ["-color_primaries", "bt709", "-color_trc", "bt709", "-pred", "none"], True),
    "rgb24 srgb tags": ("rgb24", ["-color_trc", "iec61966-2-1", "-pred", "none"], True),
    "rgb24 gamma22": ("rgb24", ["-color_trc", "gamma22", "-pred", "up"], True),
    "gray": ("gray", [], False),
    "gray16be": ("gray16be", [], False),
    "pal8": ("pal8", [], False),
    "monob": ("monob", [], False),
}


@pytest.mark.parametrize("case", FFMPEG_CASES)
def test_ffmpeg_pngs_read_fast_where_taken_and_as_opencv_reads_them(tmp_path, case):
    pix_fmt, extra, taken = FFMPEG_CASES[case]
    path = ffmpeg_png(tmp_path, case.replace(" ", "_"), pix_fmt, *extra)
    fast = decode_png(path.read_bytes(), MAX_IMAGE_PIXELS)
    if taken is not None:
        assert (fast is not None) == taken
    reference = opencv_pixels(path)
    if fast is not None:
        assert fast.dtype == reference.dtype and np.array_equal(fast, reference)
    assert np.array_equal(read_image(path), reference)


def test_text_and_icc_chunks_are_passed_over_and_transparency_left_to_opencv(tmp_path):
    frame = video_like(23, 31, 3, np.uint8, seed=5)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "made by a test")
    info.add_itxt("Title", "ünïcode", zip=True)
    pil = tmp_path / "pil.png"
    Image.fromarray(frame).save(pil, pnginfo=info, icc_profile=b"\0" * 128)
    assert decode_png(pil.read_bytes(), MAX_IMAGE_PIXELS) is None  # PIL chooses Paeth rows too: OpenCV reads it
    assert np.array_equal(read_image(pil), frame)
    ours = tmp_path / "ours.png"
    write_png(ours, frame)
    grafted = [c for c in chunks(pil.read_bytes()) if c[0] in (b"tEXt", b"iTXt", b"iCCP")]
    assert len(grafted) == 3
    parts = chunks(ours.read_bytes())
    tagged = tmp_path / "tagged.png"
    tagged.write_bytes(assemble([parts[0], *grafted, *parts[1:]]))
    fast = decode_png(tagged.read_bytes(), MAX_IMAGE_PIXELS)
    assert fast is not None and np.array_equal(fast, frame) and np.array_equal(fast, opencv_pixels(tagged))
    keyed = tmp_path / "trns.png"
    Image.fromarray(frame).save(keyed, transparency=(1, 2, 3), compress_level=0)
    assert decode_png(keyed.read_bytes(), MAX_IMAGE_PIXELS) is None  # tRNS: OpenCV decides what it means
    assert np.array_equal(read_image(keyed), opencv_pixels(keyed))
    laced = tmp_path / "laced.png"  # IHDR interlace = 1 (Adam7) from a PNG OpenCV wrote
    cv2.imwrite(str(laced), frame)
    parts = chunks(laced.read_bytes())
    parts[0] = (b"IHDR", parts[0][1][:12] + b"\x01")
    assert decode_png(assemble(parts), MAX_IMAGE_PIXELS) is None


def test_damaged_pngs_are_left_to_opencv_never_read_wrong(tmp_path):
    frame = video_like(41, 67, 3, np.uint8, seed=9)
    write_png(tmp_path / "f.png", frame)
    good = (tmp_path / "f.png").read_bytes()
    parts = chunks(good)
    idat = next(i for i, (k, _) in enumerate(parts) if k == b"IDAT")
    flipped = bytearray(good)
    flipped[8 + 25 + 8 + 40] ^= 0x10  # a byte inside IDAT, CRC left as it was
    assert decode_png(bytes(flipped), MAX_IMAGE_PIXELS) is None
    raw = zlib.decompress(parts[idat][1])
    wrong_adler = zlib.compress(raw)[:-4] + b"\0\0\0\0"  # CRC right, the zlib checksum wrong
    assert decode_png(assemble([*parts[:idat], (b"IDAT", wrong_adler), *parts[idat + 1 :]]), MAX_IMAGE_PIXELS) is None
    too_much = zlib.compress(raw + raw[: 1 + 67 * 3])  # one row more than the header says (a bomb, small)
    assert decode_png(assemble([*parts[:idat], (b"IDAT", too_much), *parts[idat + 1 :]]), MAX_IMAGE_PIXELS) is None
    too_little = zlib.compress(raw[: -(1 + 67 * 3)])
    short = assemble([*parts[:idat], (b"IDAT", too_little), *parts[idat + 1 :]])
    assert decode_png(short, MAX_IMAGE_PIXELS) is None
    assert decode_png(good[: len(good) // 2], MAX_IMAGE_PIXELS) is None  # cut short
    split = zlib.compress(raw)  # the data in three IDAT chunks, as libpng and ffmpeg write it
    thirds = [(b"IDAT", split[i : i + len(split) // 3 + 1]) for i in range(0, len(split), len(split) // 3 + 1)]
    fast = decode_png(assemble([*parts[:idat], *thirds, *parts[idat + 1 :]]), MAX_IMAGE_PIXELS)
    assert fast is not None and np.array_equal(fast, frame)
    (tmp_path / "short.png").write_bytes(short)
    with pytest.raises(MediaError, match="short.png"):
        read_image(tmp_path / "short.png")  # the general decoder refuses it by name


def test_a_header_over_the_pixel_limit_is_refused_before_anything_is_inflated(tmp_path):
    write_png(tmp_path / "f.png", video_like(8, 8, 3, np.uint8, seed=1))
    parts = chunks((tmp_path / "f.png").read_bytes())
    parts[0] = (b"IHDR", struct.pack(">II", 20000, 20000) + parts[0][1][8:])
    (tmp_path / "huge.png").write_bytes(assemble(parts))
    assert decode_png((tmp_path / "huge.png").read_bytes(), MAX_IMAGE_PIXELS) is None
    with pytest.raises(MediaError, match=r"huge\.png.*pixels"):
        read_image(tmp_path / "huge.png")
    with pytest.raises(MediaError, match="image not found"):
        read_image(tmp_path / "absent.png")


def test_hand_built_chunk_orders_are_read_as_opencv_reads_them_or_left_to_it(tmp_path):
    frame = video_like(12, 10, 3, np.uint8, seed=3)
    write_png(tmp_path / "f.png", frame)
    ihdr, idat, iend = chunks((tmp_path / "f.png").read_bytes())
    text = (b"tEXt", b"Comment\x00x")
    cases = {
        "two IHDR": ([ihdr, ihdr, idat, iend], False),
        "IDAT after IEND": ([ihdr, idat, iend, (b"IDAT", b"")], True),  # nothing after IEND is read
        "empty IDAT first": ([ihdr, (b"IDAT", b""), idat, iend], True),
        "IDATs split by a text chunk": ([ihdr, (b"IDAT", idat[1][:20]), text, (b"IDAT", idat[1][20:]), iend], False),
        "no IDAT": ([ihdr, iend], False),
        "no IEND": ([ihdr, idat], False),
        "wider than libpng takes": (
            [
                (b"IHDR", struct.pack(">II", 2_000_000, 1) + ihdr[1][8:]),
                (b"IDAT", zlib.compress(bytes(6_000_001))),
                iend,
            ],
            False,
        ),  # a whole, valid row of 2,000,000 pixels: OpenCV refuses it, so must this reader
    }
    for name, (parts, taken) in cases.items():
        data = assemble(parts)
        fast = decode_png(data, MAX_IMAGE_PIXELS)
        assert (fast is not None) == taken, name
        if fast is not None:
            assert np.array_equal(fast, frame), name
            path = tmp_path / "case.png"
            path.write_bytes(data)
            assert np.array_equal(fast, opencv_pixels(path)), name


def test_png_header_says_what_pil_says_of_size_layout_and_transparency(tmp_path):
    """kept_keys decides from png_header whether a key file holds the pixels used (8-bit RGB or RGBA, its
    size, nothing that shows it otherwise): on ffmpeg's layouts and PIL's files it must agree with PIL."""
    files = [ffmpeg_png(tmp_path, c.replace(" ", "_"), fmt, *extra) for c, (fmt, extra, _) in FFMPEG_CASES.items()]
    frame = video_like(23, 31, 3, np.uint8, seed=7)
    for name, kwargs in (("plain", {}), ("keyed", {"transparency": (1, 2, 3)}), ("icc", {"icc_profile": b"\0" * 64})):
        files.append(tmp_path / f"pil_{name}.png")
        Image.fromarray(frame).save(files[-1], **kwargs)
    files.append(tmp_path / "rgba.png")
    Image.fromarray(video_like(5, 9, 4, np.uint8, seed=8)).save(files[-1])
    files.append(tmp_path / "keyed_gray.png")
    Image.fromarray(frame[..., 0]).save(files[-1], transparency=4)
    seen = set()
    for path in files:
        width, height, depth, color_type, shown_otherwise = png_header(path)
        with Image.open(path) as im:
            assert (width, height) == im.size, path.name
            # a transparency key, an orientation or a colour description (PIL's names for them)
            showing = {"transparency", "exif", "icc_profile", "srgb", "gamma", "chromaticity"} & set(im.info)
            assert shown_otherwise == bool(showing), path.name
            transparency = "transparency" in im.info
            plain = depth == 8 and color_type in (2, 6)  # PIL says RGB of 16-bit files too: the dtype tells
            expected = im.mode in ("RGB", "RGBA") and read_image(path).dtype == np.uint8
            assert plain == expected, (path.name, im.mode, depth, color_type)
            seen.add((im.mode, transparency))
    assert {("RGB", False), ("RGB", True), ("RGBA", False), ("L", True)} <= seen
    assert png_header(tmp_path / "missing.png") is None
    (tmp_path / "cut.png").write_bytes(files[0].read_bytes()[:20])
    assert png_header(tmp_path / "cut.png") is None
