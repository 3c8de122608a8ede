"""Ctrl-C (SIGINT) and SIGTERM for every command but `run` (which puts its own handler in place while its jobs
run, run/worker.py raise_on_signals): the first one raises `Interrupted` in the main thread, so a command removes
what it was writing (a splice's work folder, a temporary output, ffmpeg children stopped by `subprocess`) instead
of dying with it left behind; the CLI then prints one line saying what was interrupted and which outputs were not
written, and exits 128 + the signal (130, 143). A second signal during that cleanup is noted, not raised, so it
cannot cut the cleanup short (as in `run`). Installed first thing by the console entry, before the CLI's imports.
Standard library only."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

RECEIVED: list[int] = []  # the signals that arrived, in order: typer reports any interruption as exit status 130


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread. A KeyboardInterrupt, so no `except Exception` takes it for a
    failure of the work it stopped."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Terminated(Interrupted):
    """SIGTERM, raised in the main thread."""

    def __init__(self):
        super().__init__(signal.SIGTERM)


def _raise_interrupted(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    first = not RECEIVED
    RECEIVED.append(signum)
    if first:
        raise Terminated() if signum == signal.SIGTERM else Interrupted(signum)


def handle_signals() -> None:
    """Raise Interrupted on the first SIGINT or SIGTERM (main thread only: elsewhere Python cannot set handlers)."""
    if threading.current_thread() is threading.main_thread():
        RECEIVED.clear()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _raise_interrupted)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def interrupted_message(command: str, signum: int, outputs: dict[Path, bool]) -> str:
    """The one line an interrupted command ends with: `splice interrupted (SIGINT): o.mp4 not written`.
    `outputs`: each output file the command was given, and whether it was written (in whole, by its rename
    into place) before the signal came."""
    written = [str(path) for path, done in outputs.items() if done]
    not_written = [str(path) for path, done in outputs.items() if not done]
    said = [f"{', '.join(written)} written"] if written else []
    said += [f"{', '.join(not_written)} not written"] if not_written else []
    if not said:
        said = ["nothing half-written is left"]
    return f"{command} interrupted ({signal_name(signum)}): {'; '.join(said)}"
