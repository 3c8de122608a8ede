"""The files a manifest names, checked: an image's size, a video's frames; each file probed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semfi_batch.errors import SemfiError
from semfi_batch.manifest.rows import Row
from semfi_batch.manifest.schema import resolve_path


class MediaChecker:
    """File checks shared across rows: each file is probed once, however many rows name it."""

    def __init__(self, base: Path, enabled: bool):
        self.base = base
        self.enabled = enabled
        # Keyed by the manifest's own strings: large manifests name the same few files over and over.
        self._paths: dict[str, Path] = {}
        self._images: dict[str, tuple[int, int] | str] = {}
        self._videos: dict[str, Any] = {}

    def resolve(self, value: str) -> Path:
        path = self._paths.get(value)
        if path is None:
            path = self._paths[value] = resolve_path(self.base, value)
        return path

    def image(self, row: Row, column: str, value: str) -> tuple[int, int] | None:
        from semfi_batch.media.frames import image_size

        return self._check(self._images, image_size, row, column, value)

    def video(self, row: Row, value: str):
        from semfi_batch.media.probe import probe_video

        # (probe_video names a folder or an image sequence given as a source, and says what to use instead)
        return self._check(self._videos, probe_video, row, "source", value, files_only=False)

    def _check(self, cache: dict, probe, row: Row, column: str, value: str, *, files_only: bool = True):
        """probe(path), or None with the problem recorded against the row (errors are cached too)."""
        if not self.enabled:
            return None
        if value not in cache:
            path = self.resolve(value)
            if files_only and path.exists() and not path.is_file():
                cache[value] = f"{path} is not a regular file"
            else:
                try:
                    cache[value] = probe(path)
                except SemfiError as exc:
                    cache[value] = str(exc)
        result = cache[value]
        if isinstance(result, str):
            row.problem(column, result)
            return None
        return result
