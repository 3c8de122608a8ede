"""The spliced timeline, planned before any media is touched: which frame goes where and when, how far later
media moves (insert rows), and which GOPs must be re-encoded (the rest is stream-copied).

All times are integer ticks of the source video stream's time base, so planned and delivered timestamps
can be compared exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semfi_batch.splice.gop_plan import Gop
from semfi_batch.splice.runfolder import Edit


@dataclass(frozen=True)
class TimeShift:
    """From source time `at` on, everything plays `ticks` later (negative: earlier)."""

    at: int
    ticks: int
    pair_id: str


@dataclass
class Timeline:
    """The output video frame by frame. For output frame j: `src[j]` is the source frame shown (-1 when
    generated), `edit[j]`/`k[j]` the edit and generated-frame number (-1 for source frames), `pts[j]` its
    presentation time, and `anchor[j]` the source frame it belongs with (for GOP ownership)."""

    src: np.ndarray
    edit: np.ndarray
    k: np.ndarray
    pts: np.ndarray
    anchor: np.ndarray
    shifts: list[TimeShift]
    edits: list[Edit]
    source_pts: np.ndarray  # the source's frame times, for reference

    @property
    def count(self) -> int:
        return int(self.pts.shape[0])

    def clips(self) -> list[tuple[str, int, int, int]]:
        """Runs of the output in order: ("source", first source frame, end source frame, first output
        frame) or ("generated", edit number, generated count, first output frame)."""
        runs: list[tuple[str, int, int, int]] = []
        j = 0
        while j < self.count:
            if self.src[j] >= 0:
                i = j
                while i + 1 < self.count and self.src[i + 1] == self.src[i] + 1:
                    i += 1
                runs.append(("source", int(self.src[j]), int(self.src[i]) + 1, j))
            else:
                i = j
                while i + 1 < self.count and self.src[i + 1] < 0 and self.edit[i + 1] == self.edit[j]:
                    i += 1
                runs.append(("generated", int(self.edit[j]), i - j + 1, j))
            j = i + 1
        return runs


# An insert row's keys whose times leave room for more than this many times its frames are across a jump in the
# source's clock, not a hole its frames fill (build_timeline).
JUMP_ROOM = 2


def local_interval(t: np.ndarray, a: int, b: int, window: int = 8) -> float:
    """The source's frame interval around the gap a..b (median of nearby intervals, the gap's own left out),
    so that variable frame rate is judged locally."""
    left = np.diff(t[max(0, a - window) : a + 1])
    right = np.diff(t[b : min(len(t), b + window + 1)])
    near = np.concatenate([left, right])
    near = near[near > 0]
    return float(np.median(near)) if near.size else float(t[b] - t[a]) / (b - a)


class SourceTimesGoBack(ValueError):
    """The source's own frame times go back (recordings joined, each with its own clock): no frame can be
    placed by its time. `frame` is the first frame not later than the one before it; `ticks` the two times."""

    def __init__(self, frame: int, ticks: tuple[int, int]):
        super().__init__(f"the source's frame {frame} is not later than frame {frame - 1}")
        self.frame, self.ticks = frame, ticks


def build_timeline(frame_pts: np.ndarray, edits: list[Edit]) -> Timeline:
    """Apply edits (sorted, non-overlapping: each starts at or after the previous one's end frame).

    replace: the frames strictly between the keyframes take the generated frames at their own times.
    insert: the generated frames go between the keyframes at the gap's own frame interval and everything from
    the end keyframe on moves by the added time; where the span already has room for them (a hole in the
    timestamps), they fill it evenly and nothing moves; where it has room for far more (a jump in the source's
    clock, JUMP_ROOM), they follow the start key at the source's frame interval and nothing moves."""
    t = np.asarray(frame_pts, np.int64)
    n = t.shape[0]
    back = np.flatnonzero(np.diff(t) <= 0)
    if back.size:
        frame = int(back[0]) + 1
        raise SourceTimesGoBack(frame, (int(t[frame - 1]), int(t[frame])))
    src, edit_no, k, pts, anchor = [], [], [], [], []
    shifts: list[TimeShift] = []
    shift = 0
    cursor = 0

    def source_frames(lo: int, hi: int) -> None:
        rng = np.arange(lo, hi)
        src.append(rng)
        edit_no.append(np.full(rng.shape, -1))
        k.append(np.full(rng.shape, -1))
        pts.append(t[lo:hi] + shift)
        anchor.append(rng)

    for number, e in enumerate(edits):
        a, b, g = e.start_frame, e.end_frame, e.gap_frames
        if not (cursor <= a < b < n):
            raise ValueError(f"edit {e.pair_id} ({a}, {b}) is out of order or outside 0..{n - 1}")
        source_frames(cursor, a + 1)
        if e.mode == "replace":
            if g != b - a - 1:
                raise ValueError(f"replace edit {e.pair_id} has {g} frames for a gap of {b - a - 1}")
            gen_pts = t[a + 1 : b] + shift
            gen_anchor = np.arange(a + 1, b)
        else:
            span = int(t[b] - t[a])
            d = local_interval(t, a, b)
            if span > JUMP_ROOM * (g + 1) * d:
                # A jump in the source's times far longer than the frames asked for (recordings joined, a clock
                # that jumped): spread over it, each frame would stay on screen for as long as its share of the
                # jump (3 frames over 497 s: two minutes each). They follow the start key at the source's own
                # frame interval, and the rest of the jump stays where it was; nothing after moves.
                step, delta = d, 0
            elif span > (g + 1) * d - d / 2:
                # The span already has room for the frames (a hole in the timestamps, damaged frames and a hole
                # merged, frames dropped between the keys): they fill it evenly and nothing after moves.
                step, delta = span / (g + 1), 0
            else:
                # A cut, or any gap without room: frames at the gap's own frame interval, the rest moves later.
                step = span / (b - a)
                delta = int(round((g + 1) * step)) - span
            offsets = np.rint(np.arange(1, g + 1) * step).astype(np.int64)
            gen_pts = t[a] + shift + offsets
            gen_anchor = np.full(g, a)
            if delta:
                shifts.append(TimeShift(at=int(t[b]), ticks=delta, pair_id=e.pair_id))
            shift += delta
        src.append(np.full(g, -1))
        edit_no.append(np.full(g, number))
        k.append(np.arange(g))
        pts.append(gen_pts)
        anchor.append(gen_anchor)
        cursor = b
    source_frames(cursor, n)
    out = Timeline(
        src=np.concatenate(src).astype(np.int64),
        edit=np.concatenate(edit_no).astype(np.int64),
        k=np.concatenate(k).astype(np.int64),
        pts=np.concatenate(pts).astype(np.int64),
        anchor=np.concatenate(anchor).astype(np.int64),
        shifts=shifts,
        edits=list(edits),
        source_pts=t,
    )
    if out.count > 1 and np.any(np.diff(out.pts) <= 0):
        raise ValueError("planned frame times are not strictly increasing")
    return out


def touched_frames(edit: Edit) -> tuple[int, int]:
    """Inclusive range of source frames whose GOPs must be re-encoded for this edit. An insert re-encodes the
    GOP of its start keyframe (the new frames follow it) and of any frames between the keyframes."""
    if edit.mode == "replace":
        return edit.start_frame + 1, edit.end_frame - 1
    return edit.start_frame, max(edit.start_frame, edit.end_frame - 1)


@dataclass(frozen=True)
class Piece:
    """A stretch of the output: stream-copied GOPs (`copy`) or re-encoded ones. Source frames
    [first_frame, end_frame) and packets [first_packet, end_packet); output frames [out_first, out_end)."""

    copy: bool
    first_frame: int
    end_frame: int
    first_packet: int
    end_packet: int
    out_first: int
    out_end: int
    shift: int  # output pts - source pts, for copied pieces

    @property
    def frames_out(self) -> int:
        return self.out_end - self.out_first


def plan_pieces(
    timeline: Timeline, gops: list[Gop], *, reencode_all: bool, intra: bool = False, min_copy_packets: int = 1
) -> list[Piece]:
    """Split the output into copied and re-encoded pieces, each a whole number of GOPs. `intra`: every frame
    is its own GOP, so only the generated frames are encoded and every source frame is copied. A run of
    untouched GOPs with fewer than `min_copy_packets` packets that ends before the file does is re-encoded
    with its neighbours: its end could not be cut by decode time (see join._copy_entry)."""
    if not gops:
        return []
    if intra and not reencode_all:
        pieces = _intra_pieces(timeline, gops)
        if pieces is not None:
            return pieces
    starts = np.array([g.first_frame for g in gops])
    touched = np.zeros(len(gops), bool)
    if reencode_all:
        touched[:] = True
    for e in timeline.edits:
        lo, hi = touched_frames(e)
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        last = int(np.searchsorted(starts, hi, side="right")) - 1
        touched[max(first, 0) : last + 1] = True
    if not reencode_all and min_copy_packets > 1:
        for g, h in _runs(touched):
            short = gops[h].end_packet - gops[g].first_packet < min_copy_packets
            if not touched[g] and short and h + 1 < len(gops):
                touched[g : h + 1] = True
    pieces: list[Piece] = []
    for g, h in _runs(touched):
        lo, hi = gops[g].first_frame, gops[h].end_frame
        out = np.flatnonzero((timeline.anchor >= lo) & (timeline.anchor < hi))
        out_first, out_end = (int(out[0]), int(out[-1]) + 1) if out.size else (0, 0)
        shift = 0
        if not touched[g] and out.size:
            shift = int(timeline.pts[out_first] - timeline.source_pts[timeline.src[out_first]])
        pieces.append(
            Piece(
                copy=not touched[g],
                first_frame=lo,
                end_frame=hi,
                first_packet=gops[g].first_packet,
                end_packet=gops[h].end_packet,
                out_first=out_first,
                out_end=out_end,
                shift=shift,
            )
        )
    return [p for p in pieces if p.frames_out > 0 or p.copy]


def _runs(touched: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) GOP of each run of GOPs alike in `touched` (all re-encoded or all copied), in order."""
    edges = [0, *(np.flatnonzero(touched[1:] != touched[:-1]) + 1).tolist(), len(touched)]
    return [(a, b - 1) for a, b in zip(edges, edges[1:])]


def _intra_pieces(timeline: Timeline, gops: list[Gop]) -> list[Piece] | None:
    """Runs of source frames copied, runs of generated frames encoded on their own (None when some GOP holds
    more than one frame after all)."""
    by_frame = {g.first_frame: g for g in gops if g.end_frame - g.first_frame == 1}
    if len(by_frame) != len(gops):
        return None
    pieces: list[Piece] = []
    for kind, a, b, out_first in timeline.clips():
        if kind == "source":
            out_end = out_first + (b - a)
            shift = int(timeline.pts[out_first] - timeline.source_pts[a])
            pieces.append(Piece(True, a, b, by_frame[a].first_packet, by_frame[b - 1].end_packet, out_first, out_end,
                                shift))  # fmt: skip
        else:
            # No source frame to decode: the piece is the generated frames alone (b of them).
            nxt = int(timeline.src[out_first - 1]) + 1 if out_first > 0 else 0
            packet = by_frame[nxt].first_packet if nxt in by_frame else gops[-1].end_packet
            pieces.append(Piece(False, nxt, nxt, packet, packet, out_first, out_first + b, 0))
    return pieces
