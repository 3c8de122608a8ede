"""Reading an edit timeline file for `manifest from-otio`: OpenTimelineIO's own files directly, EDLs and FCP
XML through OTIO's adapters. An EDL's timecodes are counted here first (EdlCounting): drop-frame or not as its
FCM lines say, event by event, past midnight without wrapping, at a rate OTIO's reader takes (it counts at the
SMPTE rates only), so that the timeline read back is in frames of the rate the user gave."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semfi_batch.errors import SemfiError


class TimelineError(SemfiError):
    """The timeline cannot be read or holds nothing to turn into rows."""

    exit_code = 2


def otio_module():
    try:
        import opentimelineio as otio
    except ImportError:
        raise TimelineError("from-otio needs opentimelineio (pip install opentimelineio==0.18.1)") from None
    return otio


_EDL_TIMECODE = re.compile(r"\b\d\d:\d\d:\d\d[:;.]\d\d\b")
_EDL_FCM = re.compile(r"^FCM:\s*(?P<non_drop>NON[- ]?)?DROP", re.I)
# The lines whose timecodes the reader reads: events, motion effects (M2) and locators. Comments, clip names and
# titles are left as written: a ';' or a timecode-like string there says nothing about how the EDL counts.
_EDL_TIMED_LINE = re.compile(r"^(\d+\s|M2\s|\*\s*LOC:)")
_EDL_EVENT_LINE = re.compile(r"^\d+\s")
_EDL_M2_SPEED = re.compile(r"^(M2\s+\S+\s+)(-?[0-9.]+)")
EDL_REVERSED = "SEMFI: PLAYS BACKWARDS"


@dataclass(frozen=True)
class EdlCounting:
    """How an EDL's timecodes were counted, for mapping them onto files: `day_frames` frames make 24 hours, where
    its timecode wraps to 00:00:00:00 (a source or a record side that passes midnight goes on from there)."""

    day_frames: int
    has_fcm: bool  # OTIO's own EDL writer writes no FCM line (and its LOCs at source timecode)
    rate: float  # the rate its timecodes are counted at (--rate)

    def on_file(self, frame: int, media_start: int) -> int:
        """Frame `frame` of the EDL's counting as a frame of a file whose timecode starts at `media_start`."""
        return (frame - media_start) % self.day_frames


def _edl_in_frames(text: str, rate: float, reader_rate: float) -> tuple[str, EdlCounting]:
    """An EDL's text with the timecodes of its events, M2 and LOC lines written as the reader takes them: the
    label at `reader_rate`, non-drop, of the frame they name at `rate` (the reader reads ':' as non-drop, drops a
    LOC written with ';' without a word, and counts SMPTE rates only). Each is counted as its FCM line says,
    which may change from event to event; where the EDL has none yet, as the timecode is written (';'
    drop-frame). Drop-frame counts only at 29.97 and 59.94.

    Record timecodes that pass midnight go on past 24 hours (the reader would put the events after it before the
    first one), as does an event's source out that passes it; LOCs and source ins stay as written (mapping onto
    a file counts modulo a day, EdlCounting.on_file)."""
    from semfi_batch.review.timecode import NTSC_DROP_RATES, exact_rate, frame_of_timecode

    drop_rate = exact_rate(rate) in NTSC_DROP_RATES
    nominal = max(1, round(reader_rate))
    fcm_drop: bool | None = None  # None: no FCM line so far
    counted_drop: list[bool] = []  # how each timecode was counted

    def frame_of(code: str) -> int:
        drop = fcm_drop if fcm_drop is not None else code[8] == ";"
        if drop and code[8] == ";" and not drop_rate:  # a drop-frame timecode says the EDL is at another rate
            raise TimelineError(
                f"the EDL has drop-frame timecode ({code}), which there is only at 29.97 and 59.94 fps, not at "
                f"--rate {rate:g}: give the rate the EDL was made at"
            )
        drop = drop and drop_rate  # an FCM line saying DROP FRAME means nothing at other rates
        counted_drop.append(drop)
        return frame_of_timecode(code[:8] + (";" if drop else ":") + code[9:], rate)

    day_non_drop, day_drop = frame_of_timecode("24:00:00:00", rate), frame_of_timecode("24:00:00;00", rate)
    lines = []
    last_record: int | None = None
    for line in text.splitlines():
        if fcm := _EDL_FCM.match(line):
            fcm_drop = fcm.group("non_drop") is None
        elif _EDL_TIMED_LINE.match(line):
            codes = list(_EDL_TIMECODE.finditer(line))
            if not _EDL_EVENT_LINE.match(line):  # a LOC's or M2's one timecode, not one in its comment
                codes = codes[:1] if line.startswith("*") else codes[-1:]
            frames = [frame_of(m.group(0)) for m in codes]
            day = day_drop if counted_drop and counted_drop[-1] else day_non_drop
            if _EDL_EVENT_LINE.match(line) and len(frames) >= 4:  # ... src_in src_out rec_in rec_out
                src_in, src_out, rec_in, rec_out = frames[-4:]
                rec_in = _after(rec_in, last_record, day)
                frames[-4:] = [src_in, _after(src_out, src_in, day), rec_in, _after(rec_out, rec_in, day)]
                last_record = frames[-1]
            for m, frame in zip(reversed(codes), reversed(frames), strict=True):
                line = line[: m.start()] + _non_drop_label(frame, nominal) + line[m.end() :]
            m2 = _EDL_M2_SPEED.match(line)
            if m2 and reader_rate != rate:
                # The reader takes an M2's speed (frames a second) against the rate it reads at: the same share.
                line = m2.group(1) + f"{float(m2.group(2)) * reader_rate / rate:.6g}" + line[m2.end() :]
            if m2 and float(m2.group(2)) < 0:
                # At full speed backwards the reader adds no time warp (its source and record lengths agree): the
                # event would read as playing forwards. The comment, kept on its clip, says it does not.
                line += f"\n* {EDL_REVERSED}"
        lines.append(line)
    return "\n".join(lines) + "\n", EdlCounting(
        day_frames=day_drop if any(counted_drop) else day_non_drop, has_fcm=fcm_drop is not None, rate=rate
    )


def _after(frame: int, previous: int | None, day: int) -> int:
    """`frame` moved on by whole days to where it follows `previous` (the timecode before it) across midnight:
    a timecode more than half a day before the one before it has wrapped."""
    while previous is not None and frame < previous - day // 2:
        frame += day
    return frame


def _non_drop_label(frame: int, nominal: int) -> str:
    """HH:MM:SS:FF of `frame` counted at `nominal` frames a second, non-drop."""
    seconds, ff = divmod(frame, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


# A rate that OTIO's timecode takes, for EDLs at one it does not (12, 15: animation and web rates; 100, 120): the
# timecodes are written as their frame counts at this rate, and every frame count read back is the same. The
# highest such rate keeps hours to the two digits the reader takes (120 fps at 21:00 is hour 42 at 60, 105 at 24).
_EDL_READER_FALLBACK_RATE = 60.0


def _edl_reader_rate(otio, rate: float) -> float:
    """`rate` where OTIO's EDL reader can count timecode at it, else the fallback rate."""
    try:
        otio.opentime.from_timecode("00:00:00:00", rate)
    except ValueError:
        return _EDL_READER_FALLBACK_RATE
    return rate


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise TimelineError(f"cannot read {path}: {exc.strerror}") from None


_ADAPTER_PACKAGES = [("cmx_3600", "EDL", "otio-cmx3600-adapter"), ("fcp_xml", "FCP XML", "otio-fcp-adapter")]


def read_timeline(path: Path, *, rate: str | float | None = None) -> tuple[list[Any], EdlCounting | None]:
    """The timelines in `path`, through the OTIO adapter its extension names (.otio, .edl, .xml, ...), and for an
    EDL how its timecodes were counted. An EDL carries no frame rate: `rate` must give it."""
    otio = otio_module()
    path = Path(path)
    if not path.is_file():
        raise TimelineError(f"timeline not found: {path}")
    edl = path.suffix.lower() == ".edl"
    if edl and not rate:  # the reader would take 24 fps, and every timecode of a 25 fps EDL would be off
        raise TimelineError(f"{path}: an EDL has no frame rate: give it with --rate (e.g. --rate 25)")
    if rate:  # 29.97, 23.976 or 23.98 as given on a command line: the NTSC rates, exactly, as for every other command
        from semfi_batch.media.rates import parse_rate

        try:
            rate = float(parse_rate(rate))
        except SemfiError as exc:
            raise TimelineError(f"--rate: {exc}") from None
    text = reader_rate = counting = None
    if edl:
        reader_rate = _edl_reader_rate(otio, rate)
        text, counting = _edl_in_frames(_read_text(path), rate, reader_rate)
    try:
        if text is not None:
            obj = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=reader_rate)
        else:
            obj = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - adapters raise many exception types
        adapters = sorted(a.name for a in otio.plugins.ActiveManifest().adapters)
        # Only the adapters that are missing are worth installing.
        missing = [f"{kind}: pip install {pkg}" for name, kind, pkg in _ADAPTER_PACKAGES if name not in adapters]
        raise TimelineError(
            f"cannot read {path} as a timeline ({type(exc).__name__}: {exc}); adapters installed here: "
            + ", ".join(adapters)
            + (f" ({'; '.join(missing)})" if missing else "")
        ) from None
    timelines = [obj] if isinstance(obj, otio.schema.Timeline) else list(obj.find_children(kind=otio.schema.Timeline))
    if not timelines:
        raise TimelineError(f"{path} holds no timeline")
    return timelines, counting
