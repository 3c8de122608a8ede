"""Image-pair runs (animation keyframes) -> one clip or PNG sequence: each key followed by its generated
in-betweens.

Consecutive pairs share a key (pair i's end is pair i+1's start), which appears once; where the manifest
gives the sheet frames (start_key_frame / end_key_frame), only when both are the same frame, since one
drawing held on two frames ends one pair on the first and starts the next on the second. A pair whose job
failed or has not run, or whose in-betweens the review leaves out (rejected; with `accepted_only`, not
accepted: as splice), holds its start key for the in-between frames, so the timing of the exposure sheet
is kept and the gap is visible. Keys an exposure sheet puts on the frame right next to another key start no
pair; `manifest from-images` lists them (keys_before / keys_after) and they are placed where they belong.

Outputs, by name: .mp4/.mkv/.mov (H.264; `codec="prores"`: ProRes 422 HQ, or 4444 when any frame has alpha,
in .mov or .mkv), .gif (a real GIF), or a folder (a PNG sequence 000001.png ...). The run's frames and kept
keys go in bit for bit; a key the run did not keep (held for a failed job, or listed in keys_before /
keys_after) may be the user's JPEG, TIFF, gray, palette or turned (EXIF) file, and is decoded as the run
reads keys and written as PNG unless it is a plain RGB(A) PNG. An encoder is given all frames in one layout,
the richest among them: ffmpeg reading a PNG stream whose layout changes part way rebuilds its filters and
drops frames (a GIF's palette) or decides alpha from the first frame alone (ProRes)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from semfi_batch.atomic_write import (
    DISK_FULL_ERRNOS,
    nearly_full,
    no_space,
    remove_dead_temporaries,
    temporary_path,
)
from semfi_batch.errors import OptionError, OutputPathError, SemfiError
from semfi_batch.manifest import KeyframePair, load_manifest
from semfi_batch.media.clips import (
    CLIP_MUXERS,
    clip_rate_problem,
    clip_suffixes,
    codec_mismatch,
    encode_png_sequence,
    h264_size,
)
from semfi_batch.media.colour_profile import colour_profile
from semfi_batch.media.frames import common_layout, read_image, write_png
from semfi_batch.media.png import PNG_CHANNELS, png_header
from semfi_batch.media.probe import probe_video
from semfi_batch.media.rates import parse_rate
from semfi_batch.review.decisions import ReviewFilter
from semfi_batch.run.layout import check_outside_state
from semfi_batch.run.stale import published_job, run_planner

CODECS = ("h264", "prores")


@dataclass
class AssembleSummary:
    """What went into the clip."""

    out: Path
    frames: int
    generated: int
    held: list[str]  # pair_ids whose gap holds the start key as their job failed or has not run
    rate: Fraction = Fraction(12)
    notes: list[str] = field(default_factory=list)


def assemble_run(
    run_dir: Path, out: Path, fps: float | str | Fraction, *, codec: str = "h264", accepted_only: bool = False
) -> AssembleSummary:
    """Write `out` from a run of image pairs, in manifest order: a clip (by its suffix, see the module
    docstring) or, for a name without a suffix or an existing folder, a PNG sequence. `accepted_only`: only
    in-betweens accepted in `semfi-batch review` (rejected ones never)."""
    run_dir, out = Path(run_dir), Path(out)
    rate = parse_rate(fps)
    if codec not in CODECS:
        raise OptionError(f"--codec must be one of {', '.join(CODECS)}, got {codec!r}")
    sequence_out = out.is_dir() or not out.suffix
    if not sequence_out and out.suffix.lower() not in CLIP_MUXERS:
        raise SemfiError(
            f"cannot tell what to write from {out.name!r}: use a name ending in {', '.join(CLIP_MUXERS)}, "
            "or a folder name (no suffix) for a PNG sequence"
        )
    if not sequence_out:
        # h264 is --codec's default, so with a .gif name it means "a GIF"; a codec the container cannot hold
        # (ProRes in .gif or .mp4) is refused before any frame is read, not dropped or found after the work.
        if out.suffix.lower() == ".gif" and codec == "h264":
            codec = "gif"
        if out.suffix.lower() not in clip_suffixes(codec):
            raise OptionError(codec_mismatch(codec, out))
        if (problem := clip_rate_problem(codec, rate)) is not None:
            raise OptionError(problem)
    check_outside_state(out, run_dir)
    inside = out.expanduser().resolve()
    sequence, generated, held, keys, reviewed_out = frame_sequence(run_dir, accepted_only=accepted_only)
    if sequence_out and out.is_dir() and any(key.parent.resolve() == inside for key in keys):
        raise OutputPathError(f"output folder {out} holds the run's keyframes; give a new folder")
    notes = [f"{len(ids)} pair(s) {why}, key held: {', '.join(ids[:10])}" for why, ids in reviewed_out.items()]
    remove_dead_temporaries(out)
    try:
        if sequence_out:
            write_png_sequence(sequence, out, keys)
        else:
            _write_clip(sequence, out, keys, rate, codec, notes)
    except (SemfiError, OSError) as exc:
        raise _about_output(exc, out) from None
    return AssembleSummary(out=out, frames=len(sequence), generated=generated, held=held, rate=rate, notes=notes)


def _about_output(exc: SemfiError | OSError, out: Path) -> SemfiError | OSError:
    """A failure while writing `out` said of it: a full output filesystem as such, not as the run's frame being
    copied (shutil names its source) nor as the unreadable clip ffmpeg left in the temporary folder."""
    why = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
    ours = f".{out.name}." in why  # the temporary folder or the new sequence beside `out`
    if getattr(exc, "errno", None) in DISK_FULL_ERRNOS or (ours and nearly_full(out.parent)):
        return no_space(out.parent, f"writing {out}")
    return exc


def _write_clip(
    sequence: list[Path], out: Path, keys: Collection[Path], rate: Fraction, codec: str, notes: list[str]
) -> None:
    """Encode the frames as the clip `out`, in a temporary folder beside it, checked, then renamed into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with _work_folder(out) as work:
        frames, (channels, depth) = frames_in_one_layout(sequence, Path(work), keys)
        if codec == "h264" and (channels == 4 or depth == np.uint16):
            notes.append("H.264 clips are 8-bit without alpha: use --codec prores or a PNG sequence to keep them")
        width, height = png_header(frames[0])[:2]
        even_width, even_height = h264_size(width, height)
        if codec == "h264" and (even_width, even_height) != (width, height):
            edges = " and ".join(edge for edge, odd in (("column", width % 2), ("row", height % 2)) if odd)
            notes.append(
                f"H.264 clips have even sides: the {width}x{height} frames are {even_width}x{even_height} in "
                f"{out.name}, their last {edges} repeated; use --codec prores or a PNG sequence to keep "
                f"{width}x{height}"
            )
        encoded = Path(work) / out.name
        try:
            encode_png_sequence(frames, encoded, rate, codec=codec)
        except SemfiError as exc:
            raise SemfiError(str(exc)) from None
        # Frames ffmpeg lost would shift everything after them in time: refuse the clip, not ship it.
        info = probe_video(encoded)
        if info.frame_count != len(frames):
            raise SemfiError(
                f"ffmpeg wrote {info.frame_count} of {len(frames)} frames for {out}; {out.name} left as it was"
            )
        _check_frame_steps(info.frame_times, rate, out)
        os.replace(encoded, out)


@contextlib.contextmanager
def _work_folder(out: Path) -> Iterator[Path]:
    """A work folder beside `out` under one of its temporary names (a killed assemble's is removed by the next,
    remove_dead_temporaries), removed when done."""
    work = temporary_path(out)
    try:
        work.mkdir(mode=0o700)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_frame_steps(times: np.ndarray, rate: Fraction, out: Path) -> None:
    """Refuse a clip whose frames are not 1/rate apart, within half a frame: a container whose clock is
    coarser than the rate (Matroska counts whole milliseconds) gives frames the same time or uneven ones."""
    steps = np.diff(times)
    period = float(1 / rate)
    if steps.size and np.abs(steps - period).max() > period / 2:
        raise SemfiError(
            f"{out.suffix} cannot time frames at {float(rate):g} fps: its frames came {steps.min() * 1000:.4g} to "
            f"{steps.max() * 1000:.4g} ms apart, not {period * 1000:.4g} ms; give a lower --fps or another "
            f"container; {out.name} left as it was"
        )


def frame_sequence(
    run_dir: Path, *, accepted_only: bool = False
) -> tuple[list[Path], int, list[str], set[Path], dict[str, list[str]]]:
    """The run's frames in order (file paths; a held key repeats its path), the number generated, the
    pair_ids whose in-betweens are missing, the user's keyframe files (those the run read and those listed in
    keys_before / keys_after), and the pair_ids whose in-betweens the review left out, by why (ReviewFilter)."""
    snapshot = run_dir / "manifest.parquet"
    if not snapshot.exists():
        raise SemfiError(f"{run_dir} is not a run folder (no manifest.parquet)")
    pairs = load_manifest(snapshot, check_media=False).pairs
    if any(p.is_video for p in pairs):
        raise SemfiError(f"{run_dir} has video rows: use `semfi-batch splice` to put them back into their videos")
    if not pairs:
        raise SemfiError(f"{run_dir} has no pairs")
    base = Path(load_manifest_origin(run_dir)).parent
    pairs = [_from_origin(pair, run_dir, base) for pair in pairs]
    planner = run_planner(run_dir)
    review = ReviewFilter(run_dir, accepted_only=accepted_only)
    reviewed_out: dict[str, list[str]] = {}
    sequence: list[Path] = []
    generated, held = 0, []
    previous: KeyframePair | None = None  # the pair whose end key was placed last; None after a listed key
    listed: list[Path] = []
    for i, pair in enumerate(pairs):
        if i == 0:
            listed += _listed_keys(pair.extras.get("keys_before"), base, pair.pair_id)
            sequence += listed
        job = run_dir / "jobs" / pair.pair_id
        # The job as splice takes it: this row's as it stands now (its keys by content), its files those its
        # record lists; else its in-betweens are held and the keys are the user's files as they are now.
        record, _ = published_job(job, pair, planner) if job.is_dir() else (None, "")
        usable = record is not None and record.get("status") == "done"
        if previous is None or not _starts_on_end_of(pair, previous):
            sequence.append(_key(run_dir, pair.pair_id, "start.png", pair.start_image, usable))
        frames = sorted((job / "frames").glob("*.png")) if usable else []
        why = review.why_left_out(pair.pair_id) if len(frames) == pair.gap_frames else ""
        if why:  # left out by the review: its start key held, as for a job that failed
            reviewed_out.setdefault(why, []).append(pair.pair_id)
            sequence.extend([sequence[-1]] * pair.gap_frames)
        elif len(frames) == pair.gap_frames:
            sequence.extend(frames)
            generated += len(frames)
        else:
            held.append(pair.pair_id)
            sequence.extend([sequence[-1]] * pair.gap_frames)
        sequence.append(_key(run_dir, pair.pair_id, "end.png", pair.end_image, usable))
        previous = pair
        after = _listed_keys(pair.extras.get("keys_after"), base, pair.pair_id)
        if after:
            listed += after
            sequence += after
            previous = None  # the next pair's start is another key than this end
    keys = {path for pair in pairs for path in (pair.start_image, pair.end_image) if path is not None}
    keys.update(listed)
    return sequence, generated, held, keys, reviewed_out


def _starts_on_end_of(pair: KeyframePair, previous: KeyframePair) -> bool:
    """Whether `pair` starts on the very exposure `previous` ends on: the same sheet frame where the manifest
    gives both (from-images with a sheet), else the same image (the same file on two sheet frames is two
    exposures, both shown)."""
    start, end = pair.extras.get("start_key_frame"), previous.extras.get("end_key_frame")
    if start is not None and end is not None:
        return start == end
    return pair.start_image == previous.end_image


def _from_origin(pair, run_dir: Path, base: Path):
    """The pair with its images where the run read them: the run's copy of the manifest resolves relative
    image paths against the run folder, the run against the folder of the manifest it was given."""
    moved = {}
    run_dir = run_dir.absolute()  # (a relative run folder gives relative paths: both made absolute alike)
    for name in ("start_image", "end_image"):
        path = getattr(pair, name)
        if path is not None and not path.exists() and path.absolute().is_relative_to(run_dir):
            moved[name] = base / path.absolute().relative_to(run_dir)
    return dataclasses.replace(pair, **moved) if moved else pair


def load_manifest_origin(run_dir: Path) -> str:
    """Path of the manifest the run was started with (image paths in it are relative to its folder)."""
    try:
        return json.loads((run_dir / "run.json").read_text())["manifest"]
    except (OSError, ValueError, KeyError):
        return str(run_dir / "manifest.parquet")


def _listed_keys(value: object, base: Path, pair_id: str) -> list[Path]:
    """Keys listed in a keys_before / keys_after cell (a JSON list of image paths relative to the manifest)."""
    if not value:
        return []
    try:
        names = json.loads(str(value))
    except ValueError:
        raise SemfiError(f"row {pair_id}: keys_before/keys_after must be a JSON list of image paths") from None
    keys = []
    for name in names:
        path = Path(name) if Path(name).is_absolute() else base / name
        if not path.is_file():
            raise SemfiError(f"row {pair_id}: key {name} listed beside it not found ({path})")
        keys.append(path)
    return keys


def write_png_sequence(frames: list[Path], folder: Path, user_files: Collection[Path] = ()) -> None:
    """Write the frames into `folder` as 000001.png, 000002.png, ... (`as_plain_pngs`: plain PNGs bit for bit,
    other files decoded and written as PNG): built in a temporary folder beside it and renamed into place (an
    existing sequence folder is replaced whole: only one holding nothing but such numbered frames, never a
    folder of the user's own PNGs, keyframes included)."""
    if folder.exists() and any(not re.fullmatch(r"\d{6}\.png", p.name) for p in folder.iterdir()):
        raise OutputPathError(f"{folder} exists and holds other files than a frame sequence; give a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(folder)
    tmp.mkdir()
    try:
        with _work_folder(folder) as work:
            pngs = as_plain_pngs(frames, work, user_files)
            for n, src in enumerate(frames, 1):
                shutil.copyfile(pngs[src], tmp / f"{n:06d}.png")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if folder.exists():
        old = temporary_path(folder)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)


FrameLayout = tuple[int, type]  # (channels: 3 RGB or 4 RGBA, np.uint8 or np.uint16), as read_image gives


def png_layout(header: tuple | None) -> FrameLayout | None:
    """The layout of an 8- or 16-bit RGB or RGBA PNG file from its header (png_header); None for any other."""
    if header is None or header[2] not in (8, 16) or header[3] not in PNG_CHANNELS:
        return None
    return PNG_CHANNELS[header[3]], np.uint16 if header[2] == 16 else np.uint8


def as_plain_pngs(frames: list[Path], folder: Path, user_files: Collection[Path] = ()) -> dict[Path, Path]:
    """Each distinct frame file as an RGB(A) PNG that shows what the run took: the run's own files as they are
    (their colour profile kept); a user's key file (`user_files`) as it is only when it decodes whole (a
    failed job's key is often damaged) and holds nothing that shows it otherwise than its pixels (png_header:
    an orientation, which ffmpeg ignores, a transparency key), else decoded as the run reads keys (read_image)
    and written into `folder` with its colour profile. MediaError naming a file that does not decode."""
    pngs: dict[Path, Path] = {}
    for src in frames:
        if src in pngs:
            continue
        header = png_header(src)
        if png_layout(header) is not None and (src not in user_files or not header[4]):
            if src in user_files:
                read_image(src)  # decoded whole only to find damage
            pngs[src] = src
        else:
            pngs[src] = folder / f"decoded{len(pngs):06d}.png"
            write_png(pngs[src], read_image(src), sync=False, colour=colour_profile(src))
    return pngs


def frames_in_one_layout(
    frames: list[Path], folder: Path, user_files: Collection[Path] = ()
) -> tuple[list[Path], FrameLayout]:
    """The frames as RGB(A) PNGs (`as_plain_pngs`) all of one layout, the richest among them (alpha if any
    frame has it, 16-bit if any is), and that layout. Frames of another layout are widened losslessly and
    written into `folder`. SemfiError naming the first frame whose size is not the first frame's: ffmpeg would
    scale it to that size without a word (pairs of two sizes; a PNG sequence keeps both)."""
    pngs = as_plain_pngs(frames, folder, user_files)
    headers = {png: png_header(png) for png in set(pngs.values())}
    width, height = headers[pngs[frames[0]]][:2]
    for n, src in enumerate(frames, 1):
        if headers[pngs[src]][:2] != (width, height):
            other = "x".join(map(str, headers[pngs[src]][:2]))
            raise SemfiError(
                f"frame {n} ({src}) is {other} but frame 1 ({frames[0]}) is {width}x{height}: a clip holds one "
                "size, and ffmpeg would scale the rest to the first; give every pair's keys one size, or write "
                "a PNG sequence (an output name without a suffix), which keeps both"
            )
    layouts = {png: png_layout(header) for png, header in headers.items()}
    channels = max(c for c, _ in layouts.values())
    depth = np.uint16 if any(d == np.uint16 for _, d in layouts.values()) else np.uint8
    richest = np.zeros((1, 1, channels), depth)
    for src, png in pngs.items():
        if layouts[png] != (channels, depth):
            widened = folder / f"widened{len(layouts):06d}.png"
            layouts[widened] = channels, depth
            write_png(widened, common_layout(read_image(png), richest)[0], sync=False, colour=colour_profile(png))
            pngs[src] = widened
    return [pngs[src] for src in frames], (channels, depth)


def _key(run_dir: Path, pair_id: str, name: str, original: Path | None, usable: bool) -> Path:
    """The key as the run used it (resized to the output size) when its job is usable, else the original."""
    used = run_dir / "jobs" / pair_id / name
    if usable and used.exists():
        return used
    if original is None or not original.exists():
        raise SemfiError(f"keyframe of {pair_id} not found: {original}")
    return original
