"""start.png and end.png: the keys a job used, kept without decoding or encoding them again (run/kept_keys.py).
A PNG key or a video key's cache file is copied once per run into cache/keys, each job's files hard links to
that copy; the user's file changing afterwards changes nothing of the run; a damaged copy is made again;
without hard links the files are copied; a key the job did not use as its file is encoded from the pixels it
used."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image, write_png
from semfi_batch.media.keyframe_cache import keyframe_cache_for
from semfi_batch.run import kept_keys
from semfi_batch.run.identity import stat_identity
from semfi_batch.run.inputs import file_sha256
from semfi_batch.run.ledger import check_job_folder
from tests.faults.conftest import image_manifest, run_args


def test_png_keys_are_copied_once_per_run_and_linked_into_every_job(tmp_path):
    manifest = image_manifest(tmp_path, 4, size=12, gap=1)
    out = tmp_path / "out"
    assert main(run_args(manifest, out)) == 0
    store = out / "cache" / "keys"
    kept = sorted(store.glob("*.png"))
    assert len(kept) == 5  # five keys for four rows: each copied once
    for i in range(4):
        job = out / "jobs" / f"p{i:02d}"
        for name, key in (("start.png", tmp_path / f"k{i:03d}.png"), ("end.png", tmp_path / f"k{i + 1:03d}.png")):
            digest = file_sha256(key)
            assert (job / name).read_bytes() == key.read_bytes()
            assert os.stat(job / name).st_ino == os.stat(store / f"{digest}.png").st_ino
    shared = os.stat(out / "jobs/p01/start.png")
    assert shared.st_ino == os.stat(out / "jobs/p00/end.png").st_ino and shared.st_nlink == 3
    # Every job verifies by content, though linking its keys into the next job changed their ctime: a run
    # that checks every output by content (--retry-failed) runs nothing again.
    assert all(check_job_folder(out / "jobs" / f"p{i:02d}")[0] is not None for i in range(4))
    records = {i: (out / "jobs" / f"p{i:02d}" / "record.json").read_bytes() for i in range(4)}
    assert main(run_args(manifest, out, "--retry-failed")) == 0
    assert records == {i: (out / "jobs" / f"p{i:02d}" / "record.json").read_bytes() for i in range(4)}
    # The user's key rewritten in place afterwards: the run's copy, and so every job, keeps what was used.
    before = (out / "jobs/p00/end.png").read_bytes()
    with open(tmp_path / "k001.png", "r+b") as fh:
        fh.seek(40)
        fh.write(b"\xff\xff")
    assert (out / "jobs/p00/end.png").read_bytes() == before == (out / "jobs/p01/start.png").read_bytes()


def test_video_keys_are_their_cache_files_copied_once_and_a_scaled_key_is_encoded_as_used(tmp_path):
    from tests.conftest import numbered_clip

    clip = numbered_clip(tmp_path / "clip.mp4", 20)
    rows = [
        {"pair_id": "a", "source": str(clip), "start_frame": 2, "end_frame": 6},
        {"pair_id": "b", "source": str(clip), "start_frame": 6, "end_frame": 9, "width": 32, "height": 24},
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--backend", "blend"]) == 0
    cache = keyframe_cache_for(out)
    for name, index in (("start.png", 2), ("end.png", 6)):
        cached = cache.path(clip, index)
        kept = out / "cache" / "keys" / f"{file_sha256(cached)}.png"
        assert (out / "jobs/a" / name).read_bytes() == cached.read_bytes()
        assert os.stat(out / "jobs/a" / name).st_ino == os.stat(kept).st_ino != os.stat(cached).st_ino
    assert read_image(out / "jobs/b/start.png").shape == (24, 32, 3)  # scaled: encoded as used
    assert os.stat(out / "jobs/b/start.png").st_nlink == 1
    assert check_job_folder(out / "jobs/a")[0] is not None and check_job_folder(out / "jobs/b")[0] is not None


@pytest.fixture
def plain_key(tmp_path):
    key = tmp_path / "k.png"
    used = np.full((8, 8, 3), 5, np.uint8)
    write_png(key, used)
    return key, used, (stat_identity(key), file_sha256(key))


def test_a_key_replaced_after_its_job_read_it_is_kept_as_used_not_copied(tmp_path, plain_key):
    key, used, known = plain_key
    store = tmp_path / "store"
    write_png(key, np.full((8, 8, 3), 9, np.uint8))  # replaced after the job read it
    digest = kept_keys.keep_key(tmp_path / "kept.png", used, key, None, known, store)
    assert np.array_equal(read_image(tmp_path / "kept.png"), used)
    assert digest == file_sha256(tmp_path / "kept.png")
    assert not store.exists() or not any(store.iterdir())  # nothing stored under the planned hash


def test_a_damaged_stored_copy_is_copied_again_not_linked(tmp_path, plain_key):
    key, used, known = plain_key
    store = tmp_path / "store"
    store.mkdir()
    (store / f"{known[1]}.png").write_bytes(b"\x89PNG damaged" + bytes(key.stat().st_size - 12))
    assert kept_keys.keep_key(tmp_path / "start.png", used, key, None, known, store) == known[1]
    assert (tmp_path / "start.png").read_bytes() == key.read_bytes()
    assert (store / f"{known[1]}.png").read_bytes() == key.read_bytes()


def test_without_hard_links_the_keys_are_copied(tmp_path, plain_key, monkeypatch):
    key, used, known = plain_key

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(kept_keys.os, "link", no_links)
    assert kept_keys.keep_key(tmp_path / "start.png", used, key, None, known, tmp_path / "store") == known[1]
    assert (tmp_path / "start.png").read_bytes() == key.read_bytes()
    assert os.stat(tmp_path / "start.png").st_nlink == 1


def test_a_full_disk_while_linking_is_raised_not_copied_around(tmp_path, plain_key, monkeypatch):
    key, used, known = plain_key

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kept_keys.os, "link", full)
    with pytest.raises(OSError) as caught:
        kept_keys.keep_key(tmp_path / "start.png", used, key, None, known, tmp_path / "store")
    assert caught.value.errno == errno.ENOSPC
    assert not (tmp_path / "start.png").exists()


def test_a_key_whose_file_is_not_its_pixels_is_encoded_as_used(tmp_path):
    """A transparency key, 16 bits, another size: the file is not the pixels used, so it is not kept as is."""
    from PIL import Image

    used = np.full((8, 8, 3), 7, np.uint8)
    keyed = tmp_path / "keyed.png"
    Image.fromarray(used).save(keyed, transparency=(1, 2, 3))
    deep = tmp_path / "deep.png"
    write_png(deep, used.astype(np.uint16) * 257)
    big = tmp_path / "big.png"
    write_png(big, np.full((16, 16, 3), 7, np.uint8))
    store = tmp_path / "store"
    for image in (keyed, deep, big):
        known = (stat_identity(image), file_sha256(image))
        target = tmp_path / f"kept_{image.name}"
        assert kept_keys.keep_key(target, used, image, None, known, store) == file_sha256(target)
        assert np.array_equal(read_image(target), used) and target.read_bytes() != image.read_bytes()
    assert not store.exists()
