"""Frame math and job identity: the one place for 4k+1 rounding, MoL buckets, time selection and job keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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
