"""What a splice loses of the closed captions carried in the video's frames: those of every source frame it
re-encodes (media/captions.py), said in the summary with the frames, never silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semfi_batch.media.captions import captions_in
from semfi_batch.media.stream_facts import StreamFacts
from semfi_batch.splice.timeline import Piece, Timeline

CAPTION_SAMPLES = 6  # places a video's re-encoded stretches are looked at for captions, at most


def captions_lost(copy_from: Path, cfacts: StreamFacts, timeline: Timeline, pieces: list[Piece]) -> list[str]:
    """The closed captions of the source frames re-encoded, which the output loses (see media/captions.py),
    as a line for the summary; nothing where the re-encoded stretches have none. The first frames of each
    re-encoded stretch are looked at (of at most CAPTION_SAMPLES of them, spread over the video)."""
    spans = [(p.first_frame, p.end_frame) for p in pieces if not p.copy and p.end_frame > p.first_frame]
    if not spans:
        return []
    looked = [spans[round(i)] for i in np.linspace(0, len(spans) - 1, min(len(spans), CAPTION_SAMPLES))]
    if len(spans) == 1:  # one stretch (a whole re-encode): its start and middle
        lo, hi = spans[0]
        looked = [(lo, hi), ((lo + hi) // 2, hi)]
    t = timeline.source_pts
    seconds = [float(int(t[lo]) * cfacts.time_base) for lo, _ in looked]
    if not captions_in(copy_from, cfacts.index, seconds):
        return []
    count = sum(hi - lo for lo, hi in spans)
    where = ", ".join(f"{lo}-{hi - 1}" for lo, hi in spans[:5]) + (", ..." if len(spans) > 5 else "")
    return [
        f"closed captions (ATSC A/53) in the video's frames: the re-encoded source frames {where} ({count} "
        "frames) come out without them"
    ]
