"""TIFF keys read as stored, where OpenCV's decoder is wrong without a word (exit 0, wrong frames): 16-bit
colour in separate planes (PlanarConfiguration 2) came back scrambled."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

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
