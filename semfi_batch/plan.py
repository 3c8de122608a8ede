"""Frame math and job identity: the one place for 4k+1 rounding, MoL buckets, time selection and job keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

# Upper bounds (inclusive) of the SemFi Mixture-of-LoRA frame-count buckets; branch i+1 serves bucket i.
MOL_BUCKET_LIMITS: tuple[int, ...] = (7, 13, 25, 49, 73)


def round_up_4k1(n: int) -> int:
    """Smallest number of the form 4k+1 that is >= n (n >= 1)."""
    if n < 1:
        raise ValueError(f"frame count must be >= 1, got {n}")
    return n + (-(n - 1)) % 4


def semfi_frame_count(gap_frames: int) -> int:
    """Total frames N the video model generates for `gap_frames` in-betweens (both endpoints included)."""
    if gap_frames < 1:
        raise ValueError(f"gap_frames must be >= 1, got {gap_frames}")
    return round_up_4k1(gap_frames + 2)


# Frames of the longest clip the video model generates in one go (Wan2.1 is trained on 81; SemFi's last bucket).
MAX_CLIP_FRAMES = 81


def clip_frame_count(n_inbetweens: int, max_frames: int = MAX_CLIP_FRAMES) -> int:
    """Frames of one generated clip (both ends included) for `n_inbetweens` frames between its ends: the
    smallest 4k+1 that holds them, at most `max_frames` (a 4k+1 itself); longer gaps are filled coarse to fine."""
    if max_frames < 5 or max_frames % 4 != 1:
        raise ValueError(f"the clip frame limit must be a 4k+1 >= 5, got {max_frames}")
    return min(semfi_frame_count(n_inbetweens), max_frames)


def inbetween_fractions(gap_frames: int) -> list[Fraction]:
    """`inbetween_times` as exact fractions i/(gap+1)."""
    return [Fraction(i, gap_frames + 1) for i in range(1, gap_frames + 1)]


def place_times(times: Sequence[Fraction], n_generated: int) -> list[tuple[int, Fraction]]:
    """Where each time in [0, 1] falls in a clip of `n_generated` frames spanning [0, 1] evenly: (index m of
    the generated frame at or before it, fraction of the way on to frame m+1). A fraction of 0 means frame m
    is exactly at that time; any other time must be made from frames m and m+1."""
    span = n_generated - 1
    out = []
    for t in times:
        if not 0 <= t <= 1:
            raise ValueError(f"time {t} is outside [0, 1]")
        pos = Fraction(t) * span
        m = min(pos.numerator // pos.denominator, span)
        out.append((m, pos - m))
    return out


def mol_branch(n_frames: int) -> int:
    """The frame-count LoRA branch (1..6) that SemFi switches on for a clip of `n_frames` total frames."""
    for i, limit in enumerate(MOL_BUCKET_LIMITS):
        if n_frames <= limit:
            return i + 1
    return len(MOL_BUCKET_LIMITS) + 1


def inbetween_times(gap_frames: int) -> list[float]:
    """Normalised times in (0, 1) of `gap_frames` evenly spaced in-between frames."""
    return [i / (gap_frames + 1) for i in range(1, gap_frames + 1)]


def even_selection(n_generated: int, gap_frames: int) -> list[int]:
    """Indices into a generated clip of `n_generated` frames (endpoints at 0 and n-1) whose times are
    nearest to `inbetween_times(gap_frames)`. Distinct and interior whenever n_generated >= gap_frames + 2."""
    if n_generated < gap_frames + 2:
        raise ValueError(f"{n_generated} generated frames cannot give {gap_frames} distinct in-betweens")
    span = n_generated - 1
    return [int(round(t * span)) for t in inbetween_times(gap_frames)]


def default_seed(pair_id: str) -> int:
    """A stable seed derived from pair_id (same on every machine and Python version)."""
    digest = hashlib.sha256(pair_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def content_key(fields: Mapping[str, Any]) -> str:
    """A hex digest over a canonical JSON rendering of `fields` (sorted keys)."""
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def shard_of(pair_id: str, shards: int) -> int:
    """The shard (0..shards-1) that owns `pair_id`: a stable hash, so filtering or resuming never reshuffles."""
    digest = hashlib.sha256(pair_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards
