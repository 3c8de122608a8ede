"""SMPTE timecode of a frame index at a source's frame rate, from the source's own start timecode (a QuickTime
tmcd track, MXF, a stream tag) where it has one: drop-frame where that start is written so (HH:MM:SS;FF) at
29.97 or 59.94, and for sources without one at those rates."""

from __future__ import annotations

from fractions import Fraction

NTSC_DROP_RATES = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}  # frame numbers dropped per minute


def exact_rate(fps: float | Fraction) -> Fraction:
    """The rate as a fraction; probed floats near an NTSC rate (23.976, 29.97, 59.94) become exactly N*1000/1001."""
    rate = Fraction(fps).limit_denominator(1001)
    for nominal in (24, 30, 48, 60, 120):
        ntsc = Fraction(nominal * 1000, 1001)
        if abs(float(rate) - float(ntsc)) < 1e-3:
            return ntsc
    return rate


# The highest rate taken as a stream's nominal frame rate, and how far its average may be from it.
_NOMINAL_RATE_MAX = 240
_NOMINAL_RATE_SPREAD = 0.25


def timecode_rate(base: Fraction | None, average: float) -> float:
    """The rate a stream's frames and timecode are counted at (review's timecodes, the OTIO timeline, the EDL):
    its nominal frame rate, the base rate (ffprobe's r_frame_rate: 25 for a 25 fps file with a frame missing,
    whose average is 24.671; 29.97 for one whose average is 29.641, drop-frame kept) where that is a frame
    rate, else the average: a variable-rate recording's base rate is the finest clock its times fit (90000
    for a phone's MP4), counted at which every clip would last a 3000th of its length. The NTSC rates
    (N*1000/1001: 23.976, 29.97, 47.952, 59.94, 119.88) exact, others to a thousandth."""
    nominal = average or base or 25
    if base and 0 < base <= _NOMINAL_RATE_MAX and (not average or abs(base - average) <= _NOMINAL_RATE_SPREAD * base):
        nominal = base
    rate = exact_rate(nominal)
    return float(rate) if rate.denominator == 1001 else round(float(nominal), 3)


def file_timecode_rate(path, average: float) -> float:
    """`timecode_rate` of a video file: its base rate as ffprobe gives it (None where it cannot be read), with
    `average`, its average frame rate."""
    from semfi_batch.errors import SemfiError
    from semfi_batch.media.stream_facts import probe_stream_facts

    try:
        base = probe_stream_facts(path, encoder_settings=False).frame_rate
    except SemfiError:
        base = None
    return timecode_rate(base, average)


def is_drop_frame(fps: float | Fraction, start: str | None = None) -> bool:
    """Whether timecode at `fps` counts drop-frame: as `start` (the source's start timecode) is written, with
    ';' or not; without one, at 29.97 and 59.94."""
    rate = exact_rate(fps)
    return rate in NTSC_DROP_RATES and (start is None or ";" in start)


def timecode(frame: int, fps: float | Fraction, start: str | None = None) -> str:
    """HH:MM:SS:FF of 0-based `frame` of a source at `fps` whose first frame is at `start` (its own start
    timecode; None: 00:00:00:00), drop-frame (HH:MM:SS;FF) as `is_drop_frame` says.

    Frames are counted at the nominal integer rate (round(fps)), as editors' timecode does for 23.976 or
    odd rates such as 29.83; drop-frame skips frame numbers 0 and 1 (0-3 at 59.94) of every minute not
    divisible by ten, so timecode stays within a frame of the clock."""
    if frame < 0:
        raise ValueError(f"frame must be >= 0, got {frame}")
    rate = exact_rate(fps)
    nominal = max(1, round(rate))
    first = start_frame_number(start, rate)
    if first is None:  # no start timecode, or one of no known form: counted from 00:00:00:00
        start = None
    frame += first or 0
    drop = NTSC_DROP_RATES.get(rate, 0) if is_drop_frame(rate, start) else 0
    if drop:
        per_10_min = nominal * 600 - drop * 9
        per_min = nominal * 60 - drop
        tens, rest = divmod(frame, per_10_min)
        frame += drop * 9 * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
    ff = frame % nominal
    seconds = frame // nominal
    sep = ";" if drop else ":"
    return f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{ff:02d}"


def start_frame_number(start: str | None, fps: float | Fraction) -> int | None:
    """The frame number a source's start timecode names (its first frame on its own timecode); None without
    one, or for one of no known form."""
    try:
        return frame_of_timecode(start, fps) if start else None
    except ValueError:
        return None


def frame_of_timecode(text: str, fps: float | Fraction) -> int:
    """0-based frame of timecode `text` (HH:MM:SS:FF, or HH:MM:SS;FF drop-frame) at `fps`: timecode() inverted."""
    parts = text.replace(";", ":").replace(".", ":").split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a timecode: {text!r}")
    hh, mm, ss, ff = (int(p) for p in parts)
    rate = exact_rate(fps)
    nominal = max(1, round(rate))
    frame = ((hh * 60 + mm) * 60 + ss) * nominal + ff
    drop = NTSC_DROP_RATES.get(rate, 0) if ";" in text else 0
    if drop:
        minutes = hh * 60 + mm
        frame -= drop * (minutes - minutes // 10)
    return frame
