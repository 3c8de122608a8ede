"""How a job keeps the keys it used as start.png and end.png, without decoding or encoding them again.

A key used at its own size is kept as the file it came from: an 8-bit RGB(A) PNG keyframe image, or the run's
keyframe cache file of a video frame. Its bytes are copied once into the run's key store,
RUN/cache/keys/<SHA-256>.png, and the job's start.png or end.png is a hard link to that copy. Consecutive rows
share a key, so each key is copied once per run instead of once per job that uses it.

Only the store's own files are linked, never the user's images or the keyframe cache: editing a job's
start.png in place can change other jobs' copies of that key, never an input. A store file is named by its
SHA-256 and checked against it the first time a process links it (and again after any change to its size or
mtime); one that does not match is copied again. The run writes these files under a temporary name and
renames them, never in place. Where the output filesystem takes no hard links, the file is copied (fsynced).
Any other key (resized, 16-bit, another format, a file replaced after the job read it) is encoded from the
pixels the job used."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from semfi_batch.atomic_write import hard_link, write_atomic
from semfi_batch.media.colour_profile import ColourProfile
from semfi_batch.media.frames import write_png
from semfi_batch.media.png import PNG_CHANNELS, png_header
from semfi_batch.run.identity import StatIdentity, stat_identity
from semfi_batch.run.inputs import file_sha256

# SHA-256 of the key files this process hashed or wrote (store files, keyframe cache files), by (device, inode,
# size, mtime): a link changes a file's ctime, and these files are never written in place.
_DIGESTS: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
_DIGESTS_KEPT = 64
_DIGESTS_LOCK = threading.Lock()  # writer threads keep keys at once
_STORE_LOCK = threading.Lock()  # held while a key is copied into the store (_stored)


def keep_key(
    path: Path,
    frame: np.ndarray,
    image: Path | None,
    cached: Path | None,
    known: tuple[StatIdentity | None, str] | None,
    store: Path,
    colour: ColourProfile | None = None,
    *,
    sync: bool = True,
) -> str:
    """Write the key the job used (`frame`) to `path`; return the SHA-256 of the file's bytes. `image`: the
    keyframe image it was read from, with `known` its (stat identity, SHA-256) as planned; `cached`: the
    keyframe cache file of a video key; `store`: RUN/cache/keys; `colour`: the colour description a key encoded
    from its pixels is written in (the job's frames'). `sync=False`: the caller fsyncs `path`
    (which also makes a new store file's bytes durable: a link is the same file)."""
    header = png_header(cached) if cached is not None else None  # None too when the file is not there
    if header is not None and header[:2] == (frame.shape[1], frame.shape[0]):
        source = cached, None
    elif image is not None and frame.dtype == np.uint8 and _is_plain_png(image, frame):
        source = image, known
    else:
        return write_png(path, frame, sync=sync, colour=colour)
    kept = _stored(*source, store, sync=sync)
    if kept is not None:
        digest = _link(kept, path, kept.stem, sync=sync)
        if digest is not None:
            return digest
    # The file changed since the job read it: the pixels it used.
    return write_png(path, frame, sync=sync, colour=colour)


def _is_plain_png(image: Path, frame: np.ndarray) -> bool:
    """True when `image` is a PNG whose file holds exactly `frame` as decoded: 8-bit RGB(A), same size, nothing
    that changes how it shows (a transparency key, an orientation, a colour profile: the generated frames
    have none of them, so a key kept with one would show otherwise than the frames beside it)."""
    header = png_header(image)
    if header is None:
        return False
    width, height, depth, color_type, shown_otherwise = header
    channels = PNG_CHANNELS.get(color_type) if depth == 8 else None
    return (width, height, channels) == (frame.shape[1], frame.shape[0], frame.shape[2]) and not shown_otherwise


def _stored(
    source: Path, known: tuple[StatIdentity | None, str] | None, store: Path, *, sync: bool = True
) -> Path | None:
    """RUN/cache/keys/<SHA-256>.png holding `source`'s bytes, copied now if it is not there (or does not hold
    them). `known`: the source's (stat identity, SHA-256) as the job planned it, else taken now. None when
    the source no longer has that identity (the caller encodes the pixels it used)."""
    if known is None:
        known = stat_identity(source), _digest_of(source)
    identity, digest = known
    if identity is None or digest is None:
        return None
    kept = store / f"{digest}.png"
    if _digest_of(kept) == digest:
        return kept
    # One thread copies a key at a time: two jobs' writers keeping the key they share (one job's end, the next
    # one's start) would each copy it, the second rename putting a new file in place of the one the first
    # linked, so the two jobs no longer share it.
    with _STORE_LOCK:
        if _digest_of(kept) == digest:
            return kept
        data = source.read_bytes()
        if stat_identity(source) != identity:
            return None
        store.mkdir(parents=True, exist_ok=True)
        write_atomic(kept, data, sync=sync)
        _remember(kept, digest)
    return kept


def _link(source: Path, target: Path, digest: str, *, sync: bool = True) -> str | None:
    """Hard-link `source` (a store file, whose bytes have SHA-256 `digest`) as `target`; return `digest`. Where
    the filesystem takes no hard links, copy it. None when `source` is gone (the store emptied by hand): the
    caller falls back."""
    try:
        linked = hard_link(source, target)
    except FileNotFoundError:
        return None
    return digest if linked else _copy_bytes(source, target, sync=sync)


def _digest_of(path: Path) -> str | None:
    """SHA-256 of a file's bytes, remembered by its identity but for ctime (which linking changes); None when
    it is not there."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        digest = _DIGESTS.get(key)
    if digest is None:
        digest = file_sha256(path)
        _remember(path, digest, key)
    return digest


def _remember(path: Path, digest: str, key: tuple[int, int, int, int] | None = None) -> None:
    if key is None:
        st = os.stat(path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        _DIGESTS[key] = digest
        _DIGESTS.move_to_end(key)
        while len(_DIGESTS) > _DIGESTS_KEPT:
            _DIGESTS.popitem(last=False)


def _copy_bytes(source: Path, target: Path, *, sync: bool = True) -> str:
    """Copy a file's bytes (atomically, fsynced unless `sync=False`); return their SHA-256."""
    data = source.read_bytes()
    write_atomic(target, data, sync=sync)
    return hashlib.sha256(data).hexdigest()
