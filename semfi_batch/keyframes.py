"""A folder of animation keyframes (image files) -> manifest rows: consecutive images become `insert` pairs.

The in-between count of each pair is either one number for all (`gap`) or follows from an exposure sheet: a
CSV that gives each image the frame number it is exposed on, so a pair's gap is the number of frames between
its two keys (keys on frames 1 and 5 -> 3 in-betweens). Images are taken in natural name order
(key2.png before key10.png); with a sheet, in the sheet's frame order.
"""

from __future__ import annotations

import csv
import hashlib
import mimetypes
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from semfi_batch.errors import MediaError, OutputPathError, SemfiError
from semfi_batch.manifest import MAX_GAP_FRAMES, SCHEMA, pair_id_problem, write_manifest
from semfi_batch.media.frames import image_size, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class KeyframeFolderError(SemfiError):
    """The keyframe folder cannot become a manifest (too few images, mixed sizes)."""

    exit_code = 2


class ExposureSheetError(SemfiError):
    """The exposure sheet is unreadable or does not fit the folder; the message names the line."""

    exit_code = 2


@dataclass(frozen=True)
class Exposure:
    """One keyframe image and the frame it is exposed on (None without a sheet)."""

    image: Path
    frame: int | None


@dataclass
class KeyframeManifest:
    """What `write_keyframe_manifest` wrote."""

    path: Path
    rows: int
    keys: list[Exposure]
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def natural_key(name: str) -> list[object]:
    """Sort key that orders digit runs by value: key2 < key10. Only decimal digits count (str.isdigit also
    takes superscripts such as '²', which int() refuses): any other character sorts as text."""
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", name)]


def natural_path_key(path: Path) -> tuple[list[object], list[object]]:
    """Sort key of a file by its name without the extension, then the extension: key1.png < key1.5.png <
    key2.png (whole names would put "key1.5" first, as "." sorts before ".png")."""
    return natural_key(path.stem), natural_key(path.suffix)


def list_keyframe_images(directory: Path) -> list[Path]:
    """Image files directly in `directory`, in natural name order (other files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KeyframeFolderError(f"keyframe folder not found: {directory}")
    images = [p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(images, key=natural_path_key)


def images_in_order(directory: Path) -> list[Path]:
    """`list_keyframe_images` where the order is what counts (keys taken one after the other, a folder of frames):
    KeyframeFolderError naming two images whose names natural order cannot tell apart (key2 and key02, Key2 and
    key2, key2.png and key2.PNG): sorted as equals they came in the folder's listing order, which the filesystem
    decides (ext4 and tmpfs gave one folder's keys in two orders), so which came first was chance."""
    images = list_keyframe_images(directory)
    for a, b in zip(images, images[1:]):
        if natural_path_key(a) == natural_path_key(b):
            raise KeyframeFolderError(
                f"images {a.name} and {b.name} in {a.parent} take the same place in name order (numbers count by "
                "value, case is ignored): rename one so the order of the keys is clear, or give an exposure sheet"
            )
    return images


def unread_images(directory: Path) -> list[Path]:
    """Files directly in `directory` that are images by their extension (to Pillow or the MIME types) but of
    a format not in IMAGE_SUFFIXES: a TGA or PSD key left out would shorten the animation without a word."""
    from PIL import Image

    known = Image.registered_extensions()
    return sorted(
        (
            p
            for p in Path(directory).iterdir()
            if p.is_file()
            and p.suffix.lower() not in IMAGE_SUFFIXES
            and (p.suffix.lower() in known or (mimetypes.guess_type(p.name)[0] or "").startswith("image/"))
        ),
        key=natural_path_key,
    )


def read_exposure_sheet(sheet: Path, directory: Path) -> list[Exposure]:
    """Read an exposure sheet CSV: columns `image` and `frame` (a header row is optional; without one the first
    two columns are taken). Image names are relative to `directory`. Returns the keys in frame order."""
    sheet = Path(sheet)
    try:
        with open(sheet, newline="", encoding="utf-8-sig") as fh:
            lines = [(n, row) for n, row in enumerate(csv.reader(fh), 1) if any(cell.strip() for cell in row)]
    except OSError as exc:
        raise ExposureSheetError(f"cannot read exposure sheet {sheet}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ExposureSheetError(f"exposure sheet {sheet} is not a readable CSV file: {exc}") from None
    if not lines:
        raise ExposureSheetError(f"exposure sheet {sheet} is empty")
    image_col, frame_col = 0, 1
    first = [cell.strip().lower() for cell in lines[0][1]]
    if len(first) >= 2 and not _is_int(first[1]):  # a header row
        if "image" not in first or "frame" not in first:
            raise ExposureSheetError(f"{sheet} line 1: a header needs the columns 'image' and 'frame', got {first}")
        image_col, frame_col = first.index("image"), first.index("frame")
        lines = lines[1:]
    keys: list[Exposure] = []
    seen: dict[int, int] = {}
    for n, row in lines:
        if len(row) <= max(image_col, frame_col):
            raise ExposureSheetError(f"{sheet} line {n}: expected an image name and a frame number, got {row}")
        name, frame_text = row[image_col].strip(), row[frame_col].strip()
        if not _is_int(frame_text) or int(frame_text) < 0:
            raise ExposureSheetError(f"{sheet} line {n}: frame must be a whole number >= 0, got {frame_text!r}")
        frame = int(frame_text)
        if frame in seen:
            raise ExposureSheetError(f"{sheet} line {n}: frame {frame} is already used on line {seen[frame]}")
        seen[frame] = n
        image = Path(directory) / name
        if not name or not image.is_file():
            raise ExposureSheetError(f"{sheet} line {n}: image {name!r} not found in {directory}")
        keys.append(Exposure(image, frame))
    keys.sort(key=lambda k: k.frame)
    return keys


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdecimal() and text[:1] != "+"  # isdecimal: what int() reads ('²' is no number)


def check_images(keys: list[Exposure]) -> tuple[int, int]:
    """Decode every keyframe (so a damaged file is found now, not mid-run) and check they share one size.
    Returns (width, height); MediaError or KeyframeFolderError naming the file otherwise."""
    size: tuple[int, int] | None = None
    first: Path | None = None
    checked: set[Path] = set()
    for key in keys:
        if key.image in checked:
            continue
        checked.add(key.image)
        this = image_size(key.image)
        read_image(key.image)  # MediaError naming the file if it does not decode
        if size is None:
            size, first = this, key.image
        elif this != size:
            raise KeyframeFolderError(
                f"image {key.image} is {this[0]}x{this[1]} but {first} is {size[0]}x{size[1]}: "
                "all keyframes must have one size"
            )
    assert size is not None
    return size


def keyframe_pairs(
    directory: Path, *, gap: int | None = None, sheet: Path | None = None
) -> tuple[list[Exposure], list[tuple[Exposure, Exposure, int]], list[str]]:
    """The keys and the (start, end, gap_frames) pairs for a folder. Exactly one of `gap` and `sheet`."""
    if (gap is None) == (sheet is None):
        raise KeyframeFolderError("give either --gap N (the same in-between count for every pair) or --sheet CSV")
    if gap is not None and not 1 <= gap <= MAX_GAP_FRAMES:
        raise KeyframeFolderError(f"--gap must be between 1 and {MAX_GAP_FRAMES}, got {gap}")
    notes: list[str] = []
    if sheet is not None:
        keys = read_exposure_sheet(sheet, directory)
        listed = {k.image.resolve() for k in keys}
        unlisted = [p.name for p in list_keyframe_images(directory) if p.resolve() not in listed]
        if unlisted:
            shown = ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else "")
            notes.append(f"{len(unlisted)} images in {directory} are not on the sheet and were left out: {shown}")
    else:
        keys = [Exposure(p, None) for p in images_in_order(directory)]
    unread = [p.name for p in unread_images(directory)]
    if unread:
        shown = ", ".join(unread[:5]) + (" ..." if len(unread) > 5 else "")
        notes.append(
            f"{len(unread)} image(s) in {directory} are of a format not read here and were left out: {shown} "
            f"(read: {' '.join(IMAGE_SUFFIXES)})"
        )
    if len(keys) < 2:
        also = f" ({notes[-1]})" if unread else ""
        raise KeyframeFolderError(f"{directory} has {len(keys)} keyframe image(s); a pair needs at least 2{also}")
    pairs = []
    for a, b in zip(keys, keys[1:]):
        if gap is not None:
            pairs.append((a, b, gap))
            continue
        assert a.frame is not None and b.frame is not None
        between = b.frame - a.frame - 1
        if between == 0:
            notes.append(f"{a.image.name} (frame {a.frame}) and {b.image.name} (frame {b.frame}) are adjacent: no pair")
        elif between > MAX_GAP_FRAMES:
            raise ExposureSheetError(
                f"{sheet}: {a.image.name} (frame {a.frame}) and {b.image.name} (frame {b.frame}) are {between} "
                f"frames apart, more than {MAX_GAP_FRAMES}"
            )
        else:
            pairs.append((a, b, between))
    return keys, pairs, notes


def _pair_id(a: Exposure, b: Exposure, used: set[str]) -> str:
    stem = lambda p: re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem).replace("..", "_")  # noqa: E731
    base = f"{stem(a.image)}--{stem(b.image)}"
    if a.frame is not None:
        base = f"f{a.frame:06d}-{base}"
    base = re.sub(r"^[^A-Za-z0-9]+", "", base)
    pid = base[:128]
    if pid in used or pair_id_problem(pid) is not None:
        digest = hashlib.sha256(f"{a.image}|{b.image}|{a.frame}".encode()).hexdigest()[:10]
        pid = f"{base[:110] or 'pair'}-{digest}"
    used.add(pid)
    return pid


def _note_unpaired_keys(keys: list[Exposure], pairs: list, base: Path, data: dict[str, list]) -> None:
    """Keys that start or end no pair (exposed on the frame right next to another key) would be lost to
    `assemble`: they go into the columns keys_before (of the first row) and keys_after (of the row they
    follow), as JSON lists of image paths, only when there are any."""
    import json

    paired = {id(k) for a, b, _ in pairs for k in (a, b)}
    before: list[str] = []
    after: list[list[str]] = [[] for _ in pairs]
    row = -1
    for key in keys:
        while row + 1 < len(pairs) and pairs[row + 1][0] is key:
            row += 1
        if id(key) in paired:
            continue
        rel = os.path.relpath(key.image.resolve(), base)
        (before if row < 0 else after[row]).append(rel)
    if before or any(after):
        data["keys_before"] = [json.dumps(before) if i == 0 and before else None for i in range(len(pairs))]
        data["keys_after"] = [json.dumps(a) if a else None for a in after]


def write_keyframe_manifest(
    directory: Path, output: Path, *, gap: int | None = None, sheet: Path | None = None
) -> KeyframeManifest:
    """Write a manifest of consecutive keyframe pairs from `directory` (see the module docstring)."""
    output = Path(output)
    if output.is_dir():
        raise OutputPathError(f"manifest path {output} is a folder; give a file name such as keys.parquet")
    keys, pairs, notes = keyframe_pairs(directory, gap=gap, sheet=sheet)
    try:
        size = check_images(keys)
    except MediaError as exc:
        raise KeyframeFolderError(str(exc)) from None
    base = output.parent.resolve()
    used: set[str] = set()
    data: dict[str, list] = {
        "pair_id": [], "start_image": [], "end_image": [], "mode": [], "gap_frames": [],
        "start_key_frame": [], "end_key_frame": [],
    }  # fmt: skip
    for a, b, between in pairs:
        data["pair_id"].append(_pair_id(a, b, used))
        data["start_image"].append(os.path.relpath(a.image.resolve(), base))
        data["end_image"].append(os.path.relpath(b.image.resolve(), base))
        data["mode"].append("insert")
        data["gap_frames"].append(between)
        data["start_key_frame"].append(a.frame)
        data["end_key_frame"].append(b.frame)
    if sheet is None:
        del data["start_key_frame"], data["end_key_frame"]
    else:
        _note_unpaired_keys(keys, pairs, base, data)
    text = {"keys_before", "keys_after"}
    fields = [
        pa.field(name, SCHEMA.field(name).type if name in SCHEMA.names else pa.string() if name in text else pa.int64())
        for name in data
    ]
    schema = pa.schema(fields)
    table = pa.Table.from_arrays([pa.array(data[f.name], type=f.type) for f in schema], schema=schema)
    write_manifest(table, output)
    return KeyframeManifest(path=output, rows=len(pairs), keys=keys, size=size, notes=notes)
