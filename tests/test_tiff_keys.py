"""TIFF keys read as stored, where OpenCV's decoder is wrong without a word (exit 0, wrong frames): 16-bit
colour in separate planes (PlanarConfiguration 2) came back scrambled, and 16-bit associated (premultiplied)
alpha (ExtraSamples 1) stayed premultiplied in straight-alpha frames, though 8-bit was divided out."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from semfi_batch.errors import MediaError
from semfi_batch.media.frames import image_size, read_image

RNG = np.random.default_rng(41)
RGBA16 = RNG.integers(0, 65536, (6, 10, 4), dtype=np.uint16)  # 10 wide, 6 high


def _planar(path, pixels, **options):
    """`pixels` (height, width, channels) written as a TIFF with each channel in its own plane."""
    extra = {"extrasamples": ["unassalpha"]} if pixels.shape[2] == 4 else {}
    tifffile.imwrite(path, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate", **extra, **options)
    return path


@pytest.mark.parametrize(
    "channels, options",
    [(3, {}), (4, {}), (3, {"compression": "zlib"}), (3, {"tile": (16, 16)}), (3, {"byteorder": ">"})],
    ids=["rgb", "rgba", "deflate", "tiled", "big-endian"],
)
def test_16_bit_tiffs_in_separate_planes_are_read_as_stored(tmp_path, channels, options):
    pixels = RGBA16[..., :channels]
    assert np.array_equal(read_image(_planar(tmp_path / "key.tif", pixels, **options)), pixels)


def test_a_16_bit_tiff_in_separate_planes_is_turned_by_its_orientation(tmp_path):
    path = _planar(tmp_path / "key.tif", RGBA16[..., :3], extratags=[(0x0112, "H", 1, 6, False)])
    shown = np.ascontiguousarray(RGBA16[..., :3].swapaxes(0, 1)[:, ::-1])  # 6: turned a quarter clockwise
    assert np.array_equal(read_image(path), shown)
    assert image_size(path) == (6, 10)


def test_a_tiff_in_separate_planes_that_cannot_be_decoded_here_is_refused_by_name(tmp_path):
    path = _planar(tmp_path / "key.tif", RGBA16[..., :3])
    with tifffile.TiffFile(path, mode="r+b") as tiff:  # said to be LZW, whose decoder is not installed
        tiff.pages[0].tags["Compression"].overwrite(5)
    with pytest.raises(MediaError, match=r"key\.tif, a TIFF with separate colour planes"):
        read_image(path)


def _premultiplied(straight: np.ndarray) -> np.ndarray:
    top = np.iinfo(straight.dtype).max
    stored = straight.copy()
    stored[..., :3] = np.round(straight[..., :3] * (straight[..., 3:4] / top)).astype(straight.dtype)
    return stored


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("planar", [False, True], ids=["interleaved", "planes"])
def test_associated_alpha_is_divided_out_at_every_depth(tmp_path, depth, planar):
    straight = RGBA16 if depth == 16 else (RGBA16 >> 8).astype(np.uint8)
    stored = _premultiplied(straight)
    path = tmp_path / "key.tif"
    layout = {"planarconfig": "separate"} if planar else {}
    tifffile.imwrite(path, stored.transpose(2, 0, 1) if planar else stored, photometric="rgb",
                     extrasamples=["assocalpha"], **layout)  # fmt: skip
    got = read_image(path)
    assert np.array_equal(got[..., 3], straight[..., 3])
    top = np.iinfo(straight.dtype).max
    opaque_enough = straight[..., 3] > top // 2  # where the stored colour kept enough levels to come back
    assert np.abs(got[..., :3].astype(int) - straight[..., :3])[opaque_enough].max() <= 1
    if depth == 8 and not planar:  # PIL divides 8-bit associated alpha out itself: one rule at both depths
        with Image.open(path) as im:
            assert np.array_equal(got, np.asarray(im.convert("RGBA")))
