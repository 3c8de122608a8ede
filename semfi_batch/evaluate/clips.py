"""Clips: a video file or a folder of consecutive frames, read one frame at a time as `run` reads them; a
unique name for each clip of an evaluation; its shot cuts, from one pass of PySceneDetect."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semfi_batch.evaluate.settings import EvalError
from semfi_batch.keyframes import IMAGE_SUFFIXES, images_in_order
from semfi_batch.manifest import KeyframePair
from semfi_batch.media.fields import resize_interlaced
from semfi_batch.media.frames import as_rgb8, read_image, resize
from semfi_batch.media.probe import VideoInfo, probe_stream, probe_video
from semfi_batch.media.video_frames import iter_frames
from semfi_batch.run.job import interlaced

# Shot detection runs on frames this wide: cuts are obvious at any size and small frames decode fast.
SHOT_WIDTH = 320


@dataclass
class Clip:
    """A video file or a folder of consecutive frames, read one frame at a time."""

    path: Path
    kind: str  # "video" | "frames"
    width: int
    height: int
    fps: float
    max_frames: int | None = None
    files: list[Path] = field(default_factory=list)
    video: VideoInfo | None = None  # a video's probed facts (its frame list)

    # What the clip is called in rows, pair_ids, the summary and the report: unique over one evaluation
    # (`clip_names`); open_clip gives its own name, evaluate the one that tells it apart from the others.
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or clip_names([self.path])[0]

    def replace_row(self, start: int, end: int) -> KeyframePair:
        """The manifest row `run` would be given to rebuild this video's frames strictly between `start` and
        `end`: what run's rules about a row (frame times, fields) are asked about."""
        return KeyframePair(
            row=0, pair_id="", mode="replace", gap_frames=end - start - 1, seed=0, source=self.path,
            start_frame=start, end_frame=end,
        )  # fmt: skip

    @property
    def field_order(self) -> str | None:
        """The field order (tt, bb, tb, bt) when `run` makes this clip's frames per field (run/job.interlaced, with
        no keyframe cache: eval never deinterlaces), else None."""
        if self.kind != "video" or not interlaced(self.replace_row(0, 1), None):
            return None
        return probe_stream(self.path).field_order

    def frames(self, size: tuple[int, int] | None = None, *, whole_frames: bool = False) -> Iterator[np.ndarray]:
        """Frames in order, as `run` reads them: RGB or RGBA, uint8 or uint16 (a video's upright, in
        `media.video_frames.frame_layout`; a folder's as `read_image` reads them), resized to `size` (width,
        height) when given as `run` resizes keys: field by field where it makes frames per field, unless
        `whole_frames` (shot detection, which looks at whole pictures only)."""
        if self.kind == "frames":
            return self._image_frames(size)
        fit = resize if whole_frames or self.field_order is None else resize_interlaced
        return self._video_frames(size, fit)

    def _image_frames(self, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
        for path in self.files[: self.max_frames]:
            frame = read_image(path)
            if frame.shape[:2] != (self.height, self.width):
                raise EvalError(
                    f"{path} is {frame.shape[1]}x{frame.shape[0]}, the first frame of {self.path} is "
                    f"{self.width}x{self.height}: a frame folder must hold frames of one size"
                )
            yield resize(frame, *size) if size else frame

    def _video_frames(
        self, size: tuple[int, int] | None, fit: Callable[[np.ndarray, int, int], np.ndarray]
    ) -> Iterator[np.ndarray]:
        # Frames as `run` reads them (media/video_frames): exact, upright, in the video's own layout.
        assert self.video is not None
        count = self.video.frame_count
        for _, frame in iter_frames(self.video, range(min(count, self.max_frames) if self.max_frames else count)):
            yield fit(frame, *size) if size else frame


def clip_names(paths: Sequence[Path]) -> list[str]:
    """A name for each clip, unique among `paths`: a video's stem or a folder's name, with as many of its
    parent folders before it as tell it apart from the others (a/clip and b/clip, not clip twice); then the
    file's suffix; a clip given twice is numbered (#2)."""
    resolved = [Path(p).absolute() for p in paths]
    longest = max((len(p.parts) for p in resolved), default=0)
    levels = [(depth, suffix) for suffix in (False, True) for depth in range(longest)]
    chosen: list[str | None] = [None] * len(resolved)
    for depth, suffix in levels:
        labels = [_clip_label(p, depth, suffix) for p in resolved]
        counts = {label: labels.count(label) for label in labels}
        for i, label in enumerate(labels):
            if chosen[i] is None and counts[label] == 1:
                chosen[i] = label
        if all(chosen):
            break
    given: Counter[str] = Counter()
    names = []
    for path, name in zip(resolved, chosen, strict=True):
        name = name or _clip_label(path, 0, False)  # the same clip given more than once
        given[name] += 1
        names.append(name if given[name] == 1 else f"{name} #{given[name]}")
    return names


def _clip_label(path: Path, depth: int, suffix: bool) -> str:
    folders = [part for part in path.parent.parts if part != path.anchor]
    last = path.stem if path.suffix and not suffix and not path.is_dir() else path.name
    return "/".join([*folders[len(folders) - depth :], last] if depth else [last])


def open_clip(path: Path, max_frames: int | None = None) -> Clip:
    """A Clip for a video file or a folder of frames (sorted by name, numbers in names compared as
    numbers). MediaError/VideoOpenFailure/EvalError name the file when it cannot be used."""
    path = Path(path)
    if path.is_dir():
        files = images_in_order(path)  # key1.5 between key1 and key2, as from-images orders keys
        if len(files) < 3:
            raise EvalError(f"{path}: a frame folder needs at least 3 images ({', '.join(IMAGE_SUFFIXES)})")
        first = read_image(files[0])
        return Clip(path, "frames", first.shape[1], first.shape[0], 0.0, max_frames, files)
    info = probe_video(path)
    width, height = info.display_size
    return Clip(path, "video", width, height, info.avg_fps, max_frames, video=info)


def detect_cuts(clip: Clip) -> tuple[list[int], int]:
    """(frames that start a new shot, number of frames), from one pass of PySceneDetect's
    AdaptiveDetector over the clip at a small size."""
    from scenedetect import AdaptiveDetector, FrameTimecode

    w = min(SHOT_WIDTH, clip.width)
    h = max(2, round(clip.height * w / clip.width / 2) * 2)
    fps = clip.fps or 25.0
    # min_scene_len=1: a missed cut would put a gap across it, a spurious one only costs a position.
    detector = AdaptiveDetector(min_scene_len=1)
    cuts: list[int] = []
    count = 0
    for i, frame in enumerate(clip.frames((w, h), whole_frames=True)):
        bgr = np.ascontiguousarray(as_rgb8(frame)[..., ::-1])  # the detector takes 8-bit BGR only
        cuts += [tc.frame_num for tc in detector.process_frame(FrameTimecode(i, fps), bgr)]
        count = i + 1
    if count:
        cuts += [tc.frame_num for tc in detector.post_process(FrameTimecode(count - 1, fps))]
    return sorted(set(cuts)), count
