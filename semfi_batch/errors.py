"""Domain errors. Every error a user can cause is a `SemfiError`: the CLI prints it as one line."""

from __future__ import annotations

from dataclasses import dataclass


class SemfiError(Exception):
    """An error caused by input or environment, printed to the user as one clear line."""

    exit_code = 1


class ManifestError(SemfiError):
    """The manifest cannot be used; `problems` lists every issue found, each naming row and column."""

    exit_code = 2

    def __init__(self, message: str, problems: list[ManifestProblem] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class ManifestProblem:
    """One validation problem, located by row index, pair_id and column."""

    row: int | None
    pair_id: str | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.pair_id:
            where.append(f"pair_id={self.pair_id!r}")
        if self.column:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class OptionError(SemfiError):
    """A command-line option's value cannot be used (a usage error, as Typer's own)."""

    exit_code = 2


class BackendUnavailable(SemfiError):
    """A backend cannot run here (missing dependency, files, or device)."""


class UnknownBackend(SemfiError):
    """No backend is registered under that name."""

    exit_code = 2


class MediaError(SemfiError):
    """A video or image cannot be opened, probed or decoded."""


class VideoOpenFailure(MediaError):
    """A video file cannot be opened or has no video stream."""


class FrameExtractError(MediaError):
    """A frame could not be decoded at the requested index."""


class ToolMissing(SemfiError):
    """An external program (ffmpeg, ffprobe) is not on PATH."""


class OutputPathError(SemfiError):
    """A path the tool would write lies outside the output root, or the output root is unusable."""

    exit_code = 2


class DiskFull(SemfiError):
    """The output filesystem is full (or a file-size limit was hit): the run stops, nothing half-written is kept."""


class RunSettingsMismatch(SemfiError):
    """The output root holds results made with other settings (backend, its parameters, previews)."""

    exit_code = 2


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM reached a run: it stops claiming, abandons its current job and cleans up.

    A BaseException, so that no `except Exception` around a job records the interruption as the job's failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
