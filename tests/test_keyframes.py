"""`semfi-batch manifest from-images`: a folder of keyframes (and optionally an exposure sheet) -> insert pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.keyframes import ExposureSheetError, KeyframeFolderError, write_keyframe_manifest
from semfi_batch.manifest import load_manifest
from semfi_batch.media.frames import write_png


def keys(folder: Path, names: list[str], size: tuple[int, int] = (64, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for i, name in enumerate(names):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : (i + 1) * 6 % w] = (200, 40 * i % 255, 90)
        write_png(folder / name, frame)
    return folder


def from_images(folder: Path, out: Path, *args: str) -> int:
    return main(["manifest", "from-images", str(folder), "-o", str(out), *args])


def test_images_in_name_order_become_consecutive_insert_pairs(tmp_path):
    folder = keys(tmp_path / "keys", ["key10.png", "key2.png", "key1.png", "key3.png"])
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "keys.parquet"
    assert from_images(folder, out, "--gap", "5") == 0
    pairs = load_manifest(out).pairs
    # Natural order: key2 comes before key10.
    assert [(p.start_image.name, p.end_image.name) for p in pairs] == [
        ("key1.png", "key2.png"), ("key2.png", "key3.png"), ("key3.png", "key10.png"),
    ]  # fmt: skip
    assert {p.mode for p in pairs} == {"insert"} and {p.gap_frames for p in pairs} == {5}
    assert all(p.keyframe_size == (64, 48) for p in pairs)
    assert len({p.pair_id for p in pairs}) == 3


def test_exposure_sheet_gives_each_pair_its_gap(tmp_path, capsys):
    folder = keys(tmp_path / "anim", ["a.png", "b.png", "c.png", "d.png", "spare.png"])
    sheet = tmp_path / "sheet.csv"
    # Out of order on purpose; c and d are on adjacent frames (nothing between them to make).
    sheet.write_text("image,frame\nb.png,5\na.png,1\nc.png,12\nd.png,13\n")
    out = tmp_path / "anim.parquet"
    assert from_images(folder, out, "--sheet", str(sheet)) == 0
    manifest = load_manifest(out)
    got = [(p.start_image.name, p.end_image.name, p.gap_frames) for p in manifest.pairs]
    assert got == [("a.png", "b.png", 3), ("b.png", "c.png", 6)]
    assert [(p.extras["start_key_frame"], p.extras["end_key_frame"]) for p in manifest.pairs] == [(1, 5), (5, 12)]
    # d starts no pair: it is listed after the row it follows, so `assemble` keeps it.
    assert [p.extras["keys_after"] for p in manifest.pairs] == [None, '["anim/d.png"]']
    err = capsys.readouterr().err
    assert "adjacent" in err and "spare.png" in err


def test_sheet_without_header_takes_the_first_two_columns(tmp_path):
    folder = keys(tmp_path / "k", ["x.png", "y.png"])
    sheet = folder / "sheet.csv"  # the sheet may live in the folder; it is not an image
    sheet.write_text("x.png,0\ny.png,8\n")
    result = write_keyframe_manifest(folder, tmp_path / "m.parquet", sheet=sheet)
    assert result.rows == 1 and load_manifest(result.path).pairs[0].gap_frames == 7


def test_mixed_sizes_name_the_odd_file(tmp_path, capsys):
    folder = keys(tmp_path / "k", ["1.png", "2.png"])
    keys(folder, ["3.png"], size=(32, 32))
    out = tmp_path / "m.parquet"
    assert from_images(folder, out, "--gap", "2") == KeyframeFolderError.exit_code
    err = capsys.readouterr().err
    assert "3.png is 32x32" in err and "1.png is 64x48" in err and not out.exists()


def test_unreadable_image_names_the_file(tmp_path, capsys):
    folder = keys(tmp_path / "k", ["1.png", "2.png"])
    (folder / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    assert from_images(folder, tmp_path / "m.parquet", "--gap", "2") == KeyframeFolderError.exit_code
    err = capsys.readouterr().err
    assert "3.png" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("sheet", "message"),
    [
        ("image,frame\na.png,1\nmissing.png,4\n", "line 3: image 'missing.png' not found"),
        ("image,frame\na.png,1\nb.png,1\n", "line 3: frame 1 is already used on line 2"),
        ("image,frame\na.png,one\n", "line 2: frame must be a whole number"),
        ("image,frame\na.png,\u00b2\n", "line 2: frame must be a whole number"),  # a superscript two
        ("picture,when\na.png,1\n", "line 1: a header needs the columns 'image' and 'frame'"),
        ("", "is empty"),
    ],
)
def test_bad_sheets_name_the_line(tmp_path, sheet, message):
    folder = keys(tmp_path / "k", ["a.png", "b.png"])
    path = tmp_path / "sheet.csv"
    path.write_text(sheet)
    with pytest.raises(ExposureSheetError, match=message):
        write_keyframe_manifest(folder, tmp_path / "m.parquet", sheet=path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --gap"),
        (["--gap", "2", "--sheet", "s.csv"], "give either --gap"),
        (["--gap", "0"], "between 1"),
    ],
)
def test_gap_or_sheet_is_required(tmp_path, capsys, args, message):
    folder = keys(tmp_path / "k", ["a.png", "b.png"])
    assert from_images(folder, tmp_path / "m.parquet", *args) == 2
    assert message in capsys.readouterr().err


def test_a_single_image_is_not_a_pair(tmp_path, capsys):
    folder = keys(tmp_path / "k", ["only.png"])
    assert from_images(folder, tmp_path / "m.parquet", "--gap", "3") == 2
    assert "needs at least 2" in capsys.readouterr().err


def test_names_sort_without_their_extension_and_unread_formats_are_named(tmp_path, capsys):
    """key1.5 falls between key1 and key2 (whole names put it first: "." sorts before ".png"), and a key of a
    format not read (TGA) is named in a note, not dropped without a word."""
    from PIL import Image

    folder = keys(tmp_path / "keys", ["key2.png", "key1.5.png", "key10.png", "key1.png"])
    Image.new("RGB", (64, 48), (9, 9, 9)).save(folder / "key12.tga", format="TGA")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "keys.parquet"
    assert from_images(folder, out, "--gap", "1") == 0
    order = [p.start_image.name for p in load_manifest(out).pairs]
    assert order == ["key1.png", "key1.5.png", "key2.png"]
    err = capsys.readouterr().err
    assert "key12.tga" in err and "left out" in err and "notes.txt" not in err


def test_a_superscript_digit_in_a_name_sorts_as_text(tmp_path):
    """'²' is a digit to str.isdigit but not a decimal one: int() refused it and from-images crashed."""
    folder = keys(tmp_path / "keys", ["key2.png", "key1\u00b2.png", "key1.png"])
    out = tmp_path / "keys.parquet"
    assert from_images(folder, out, "--gap", "1") == 0
    assert [p.start_image.name for p in load_manifest(out).pairs] == ["key1.png", "key1\u00b2.png"]


@pytest.mark.parametrize(
    "names", [["k1.png", "k02.png", "k2.png"], ["k1.png", "K2.png", "k2.png"], ["a.png", "b.png", "b.PNG"]]
)
def test_names_natural_order_cannot_tell_apart_are_refused_by_name(tmp_path, capsys, names, monkeypatch):
    """key2 and key02 (or Key2 and key2) sort as equals, and came in the folder's listing order, which the
    filesystem decides: the same folder gave its keys in two orders on ext4 and tmpfs, exit 0."""
    folder = keys(tmp_path / "keys", names)
    listed, iterdir = sorted(folder.iterdir()), Path.iterdir
    for order in (listed, listed[::-1]):  # either listing order the filesystem might give
        monkeypatch.setattr(Path, "iterdir", lambda self, o=order: iter(o) if self == folder else iterdir(self))
        assert from_images(folder, tmp_path / "m.parquet", "--gap", "1") == 2
        err = capsys.readouterr().err
        assert names[1] in err and names[2] in err and "same place" in err
    assert not (tmp_path / "m.parquet").exists()


def test_eval_reads_a_frame_folder_in_the_order_from_images_takes_keys(tmp_path):
    """`eval` sorted a frame folder by whole names: key1.5.png came before key1.png ("." sorts before ".png"),
    and names natural order cannot tell apart came in the filesystem's listing order."""
    from semfi_batch.evaluate import open_clip

    folder = keys(tmp_path / "frames", ["key2.png", "key1.5.png", "key1.png"])
    assert [p.name for p in open_clip(folder).files] == ["key1.png", "key1.5.png", "key2.png"]
    keys(folder, ["key02.png"])
    with pytest.raises(KeyframeFolderError, match="key02.png and key2.png"):
        open_clip(folder)
