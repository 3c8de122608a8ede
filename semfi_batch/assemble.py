"""Image-pair runs (animation keyframes) -> one clip or PNG sequence: each key followed by its generated
in-betweens.

Consecutive pairs share a key (pair i's end is pair i+1's start), which appears once. A pair whose job
failed or has not run, or whose in-betweens the review leaves out (rejected; with `accepted_only`, not
accepted: as splice), holds its start key for the in-between frames, so the timing of the exposure sheet
is kept and the gap is visible. Keys an exposure sheet puts on the frame right next to another key start no
pair; `manifest from-images` lists them (keys_before / keys_after) and they are placed where they belong.

Outputs, by name: .mp4/.mkv/.mov (H.264; `codec="prores"`: ProRes 422 HQ, or 4444 with alpha, in .mov or
.mkv), .gif (a real GIF), or a folder (a PNG sequence 000001.png ... holding the frames bit for bit)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from semfi_batch.errors import OutputPathError, SemfiError
from semfi_batch.manifest import load_manifest
from semfi_batch.media.clips import CLIP_MUXERS, encode_png_sequence
from semfi_batch.media.rates import parse_rate
from semfi_batch.review.decisions import ReviewFilter
from semfi_batch.run.layout import STATE_FOLDERS
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
        raise SemfiError(f"--codec must be one of {', '.join(CODECS)}, got {codec!r}")
    sequence_out = out.is_dir() or not out.suffix
    if not sequence_out and out.suffix.lower() not in CLIP_MUXERS:
        raise SemfiError(
            f"cannot tell what to write from {out.name!r}: use a name ending in {', '.join(CLIP_MUXERS)}, "
            "or a folder name (no suffix) for a PNG sequence"
        )
    inside = out.expanduser().resolve()
    for folder in STATE_FOLDERS:
        if inside.is_relative_to((run_dir / folder).expanduser().resolve()):
            raise OutputPathError(f"output {out} is inside the run's {folder}/ folder; write it elsewhere")
    sequence, generated, held, keys, reviewed_out = frame_sequence(run_dir, accepted_only=accepted_only)
    if sequence_out and out.is_dir() and any(key.parent.resolve() == inside for key in keys):
        raise OutputPathError(f"output folder {out} holds the run's keyframes; give a new folder")
    notes = [f"{len(ids)} pair(s) {why}, key held: {', '.join(ids[:10])}" for why, ids in reviewed_out.items()]
    if sequence_out:
        write_png_sequence(sequence, out)
    else:
        if out.suffix.lower() == ".gif":
            codec = "gif"
        elif codec == "h264" and _any_deep_or_alpha(sequence):
            notes.append("H.264 clips are 8-bit without alpha: use --codec prores or a PNG sequence to keep them")
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            encode_png_sequence(sequence, out, rate, codec=codec)
        except SemfiError as exc:
            raise SemfiError(str(exc)) from None
    return AssembleSummary(out=out, frames=len(sequence), generated=generated, held=held, rate=rate, notes=notes)


def frame_sequence(
    run_dir: Path, *, accepted_only: bool = False
) -> tuple[list[Path], int, list[str], set[Path], dict[str, list[str]]]:
    """The run's frames in order (PNG paths; a held key repeats its path), the number generated, the
    pair_ids whose in-betweens are missing, the user's keyframe files the run read, and the pair_ids whose
    in-betweens the review left out, by why (ReviewFilter)."""
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
    last_key: Path | None = None
    for i, pair in enumerate(pairs):
        if i == 0:
            sequence += _listed_keys(pair.extras.get("keys_before"), base, pair.pair_id)
        job = run_dir / "jobs" / pair.pair_id
        # The job as splice takes it: this row's as it stands now (its keys by content), its files those its
        # record lists; else its in-betweens are held and the keys are the user's files as they are now.
        record, _ = published_job(job, pair, planner) if job.is_dir() else (None, "")
        usable = record is not None and record.get("status") == "done"
        if i == 0 or pair.start_image != last_key:
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
        last_key = pair.end_image
        after = _listed_keys(pair.extras.get("keys_after"), base, pair.pair_id)
        if after:
            sequence += after
            last_key = None  # the next pair's start is another key than this end
    keys = {path for pair in pairs for path in (pair.start_image, pair.end_image) if path is not None}
    return sequence, generated, held, keys, reviewed_out


def _from_origin(pair, run_dir: Path, base: Path):
    """The pair with its images where the run read them: the run's copy of the manifest resolves relative
    image paths against the run folder, the run against the folder of the manifest it was given."""
    moved = {}
    for name in ("start_image", "end_image"):
        path = getattr(pair, name)
        if path is not None and not path.exists() and path.is_relative_to(run_dir.absolute()):
            moved[name] = base / path.relative_to(run_dir.absolute())
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


def write_png_sequence(frames: list[Path], folder: Path) -> None:
    """Copy the frames, bit for bit, into `folder` as 000001.png, 000002.png, ...: built in a temporary folder
    beside it and renamed into place (an existing sequence folder is replaced whole: only one holding nothing
    but such numbered frames, never a folder of the user's own PNGs, keyframes included)."""
    if folder.exists() and any(not re.fullmatch(r"\d{6}\.png", p.name) for p in folder.iterdir()):
        raise OutputPathError(f"{folder} exists and holds other files than a frame sequence; give a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for n, src in enumerate(frames, 1):
        shutil.copyfile(src, tmp / f"{n:06d}.png")
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old{os.getpid()}")
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)


def _any_deep_or_alpha(frames: list[Path]) -> bool:
    from PIL import Image

    with Image.open(frames[0]) as im:
        return im.mode not in ("RGB", "L", "P") or "transparency" in im.info


def _key(run_dir: Path, pair_id: str, name: str, original: Path | None, usable: bool) -> Path:
    """The key as the run used it (resized to the output size) when its job is usable, else the original."""
    used = run_dir / "jobs" / pair_id / name
    if usable and used.exists():
        return used
    if original is None or not original.exists():
        raise SemfiError(f"keyframe of {pair_id} not found: {original}")
    return original
