"""GOPs of a packet index: runs of packets from a keyframe that decode on their own and present a contiguous
range of frames, so a splice can copy or re-encode each as a whole."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semfi_batch.media.packets import PacketIndex


@dataclass(frozen=True)
class Gop:
    """A run of packets, from a keyframe up to the next usable keyframe, that decodes on its own and
    presents frames [first_frame, end_frame) and nothing else."""

    first_packet: int
    end_packet: int
    first_frame: int
    end_frame: int


def gop_index(packets: PacketIndex) -> list[Gop]:
    """Split the stream at keyframes that are safe cut points. A keyframe is merged into the GOP before it
    when its packets would present frames from before it (open GOP, leading B-frames) or out of order."""
    frame_of_packet = np.full(packets.count, -1, np.int64)
    frame_of_packet[packets.presented] = np.arange(packets.presented.shape[0])
    starts = [0] + [int(i) for i in np.flatnonzero(packets.key) if i > 0]
    gops: list[Gop] = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else packets.count
        frames = frame_of_packet[start:end]
        frames = frames[frames >= 0]
        if frames.size == 0:
            lo = hi = gops[-1].end_frame if gops else 0
        else:
            lo, hi = int(frames.min()), int(frames.max()) + 1
        clean = (
            frames.size > 0
            and hi - lo == frames.size  # contiguous in presentation order
            and frame_of_packet[start] == lo  # the keyframe is shown first
            and (not gops or lo == gops[-1].end_frame)
        )
        if gops and not clean:
            prev = gops.pop()
            lo = min(prev.first_frame, lo) if frames.size else prev.first_frame
            hi = max(prev.end_frame, hi)
            gops.append(Gop(prev.first_packet, end, lo, hi))
        else:
            gops.append(Gop(start, end, lo, hi))
    return gops


def one_gop_reason(packets: PacketIndex) -> str:
    """Why `gop_index` makes one GOP of `packets`, for the summary: the container flags no keyframe after the
    first, or every later keyframe was merged (open GOPs: ffmpeg's default MPEG-2, x265's default HEVC, whose
    keyframes are flagged every GOP)."""
    later = int(np.count_nonzero(packets.key[1:] & ~packets.discard[1:]))
    if not later:
        return "the container flags no keyframe after the first (one GOP)"
    return (
        f"none of its {later} keyframes after the first starts a GOP that decodes on its own (open GOPs: "
        "pictures shown before each keyframe refer to the GOP before it), so it is one GOP"
    )
