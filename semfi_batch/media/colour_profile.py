"""How an image file says its colours are to be shown, carried from keyframes to the frames made from them.

An ICC profile (PNG iCCP, JPEG, TIFF, WebP) says it whole. A PNG without one may say it by its sRGB, gAMA and
cHRM chunks: a gAMA of 1.0 (linear light, as renderers write) shows much lighter in a viewer that honours it
(browsers, macOS) than the same pixels without it. Frames written without the keys' description show otherwise
than their keys; `media/png.encode_png` writes it back as the chunks it came in."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image

from semfi_batch.media.png import png_chunk_kinds

_PNG_UNIT = 100_000  # gAMA and cHRM hold their values times 100000


@dataclass(frozen=True)
class ColourProfile:
    """An ICC profile, else a PNG's sRGB rendering intent, gAMA and cHRM, as stored (None where absent)."""

    icc: bytes | None = None
    srgb: int | None = None  # sRGB chunk: the rendering intent (0-3)
    gamma: int | None = None  # gAMA chunk: the file's gamma times 100000 (45455: sRGB's; 100000: linear)
    chromaticity: tuple[int, ...] | None = None  # cHRM chunk: white point and primaries x, y times 100000

    @property
    def name(self) -> str:
        """What the profile is, for a record's notes: the ICC profile's description, else the PNG chunks."""
        if self.icc:
            return _icc_name(self.icc)
        parts = ["sRGB" if self.srgb is not None else ""]
        if self.gamma is not None:
            parts.append(f"gamma {self.gamma / _PNG_UNIT:g}")
        if self.chromaticity is not None:
            parts.append("primaries " + ",".join(f"{v / _PNG_UNIT:g}" for v in self.chromaticity))
        return "PNG " + " ".join(part for part in parts if part)


def colour_profile(path: Path) -> ColourProfile | None:
    """The colour description an image file carries (see the module's docstring), or None when it has none."""
    try:
        with Image.open(path) as im:
            info = dict(im.info) if im.format == "PNG" else {"icc_profile": im.info.get("icc_profile")}
    except Exception:  # noqa: BLE001 - unreadable files are named by read_image
        return None
    if info.get("icc_profile"):
        return ColourProfile(icc=info["icc_profile"])
    gamma, chromaticity, srgb = info.get("gamma"), info.get("chromaticity"), info.get("srgb")
    profile = ColourProfile(
        srgb=srgb if isinstance(srgb, int) else None,
        gamma=round(gamma * _PNG_UNIT) if isinstance(gamma, float) and gamma > 0 else None,
        chromaticity=tuple(round(v * _PNG_UNIT) for v in chromaticity)
        if isinstance(chromaticity, tuple) and len(chromaticity) == 8
        else None,
    )
    return profile if profile != ColourProfile() else None


def says_colours_by_png_chunks(path: Path) -> bool:
    """Whether `path` is a PNG that says its colours by sRGB, gAMA or cHRM chunks and has no ICC profile: read
    from its chunk headers alone (job planning asks it of every key image once)."""
    kinds = png_chunk_kinds(path)
    return bool(kinds) and b"iCCP" not in kinds and bool(kinds & {b"sRGB", b"gAMA", b"cHRM"})


def _icc_name(icc: bytes) -> str:
    """An ICC profile's description ("Display P3"), or its size when it has none that can be read."""
    try:
        from PIL import ImageCms

        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(BytesIO(icc))).strip()
    except Exception:  # noqa: BLE001 - a profile PIL cannot parse is still carried as it is
        return f"an ICC profile of {len(icc)} bytes"
