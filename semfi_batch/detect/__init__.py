"""Footage -> manifest rows: hard cuts, damaged stretches and keyframe strides.

Modules: options (options and result types), decoding (analysis frames), cuts, damage, scan (one video,
many videos, rows per mode), manifest_rows (rows -> manifest).

Every video is decoded once, streaming, at a small analysis size through an ffmpeg pipe, while `probe_video`
lists its frames. Indices are positions in that list (`frame_times`, presentation order), so the index a row
names is the frame `media.video_frames.extract_frame` returns for it, also for odd and variable frame rates: when
ffmpeg decodes exactly the frames the probe lists, the k-th decoded frame is index k; when it does not (a
frame fails to decode), the video is decoded again with ffmpeg reporting every frame's presentation time,
and each frame is placed by that time. Indices are never computed from a time and an assumed rate. Cuts come
from PySceneDetect's detectors fed frame by frame (in damage mode also the good frames either side of damaged
ones whose colours change as a new shot's do, cuts.colour_cut); damage is judged from a few numbers per frame
kept for the whole video (never the frames themselves).

Row semantics (manifest schema v1):
- cuts: one `insert` row per hard cut, keyframes = last frame of the shot before and first frame of the shot
  after, `gap_frames` = the transition length to generate.
- damage: one `replace` row per damaged stretch, keyframes = last good frame before and first good frame
  after. A hole in the timestamps (frames missing from the file) has nothing to replace, so it is an `insert`
  row between its two neighbours whose `gap_frames` is the number of missing frames. Where a hole touches
  damaged frames the merged row is an `insert` row spanning them: its `gap_frames` counts the damaged frames
  plus the missing ones (every frame strictly between the keyframes is regenerated, at the right times).
- stride: inside each shot, keyframes every K frames and a `replace` row for the K-1 frames between them.
"""

from __future__ import annotations

from semfi_batch.detect.cuts import CutFinder, cut_pair_stats, is_gradual, make_detector, stands_out
from semfi_batch.detect.damage import DamageScanner, timestamp_holes
from semfi_batch.detect.decoding import AnalysisFrames, place_frames
from semfi_batch.detect.manifest_rows import manifest_table, safe_stem, write_detection_manifest
from semfi_batch.detect.options import (
    DEFAULT_ANALYSIS_WIDTH,
    DEFAULT_MIN_SCENE_LEN,
    DEFAULT_THRESHOLD,
    DETECTORS,
    MODES,
    Cut,
    DetectedRow,
    DetectOptions,
    DetectOptionsError,
    ProgressFn,
    VideoDetection,
    parse_min_scene_len,
)
from semfi_batch.detect.scan import DetectFailure, DetectRun, detect_video, detect_videos, open_frames

__all__ = [
    "AnalysisFrames",
    "Cut",
    "CutFinder",
    "DEFAULT_ANALYSIS_WIDTH",
    "DEFAULT_MIN_SCENE_LEN",
    "DEFAULT_THRESHOLD",
    "DETECTORS",
    "DamageScanner",
    "DetectFailure",
    "DetectOptions",
    "DetectOptionsError",
    "DetectRun",
    "DetectedRow",
    "MODES",
    "ProgressFn",
    "VideoDetection",
    "cut_pair_stats",
    "detect_video",
    "detect_videos",
    "is_gradual",
    "make_detector",
    "manifest_table",
    "open_frames",
    "parse_min_scene_len",
    "place_frames",
    "safe_stem",
    "stands_out",
    "timestamp_holes",
    "write_detection_manifest",
]
