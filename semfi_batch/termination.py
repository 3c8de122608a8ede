"""SIGTERM handled like Ctrl-C: raised in the main thread as `Terminated`, so a command removes what it was
writing (a splice's work folder, a temporary output) instead of dying with it left behind, and exits 143.
Installed first thing by the console entry (before the CLI's imports); `run` puts its own handler in place
while its jobs run."""

from __future__ import annotations

import signal
import threading

TERMINATED: list[bool] = []  # set once SIGTERM arrived: typer reports the interruption as exit status 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread."""


def _terminate(signum, frame) -> None:
    TERMINATED.append(True)
    raise Terminated()


def handle_sigterm() -> None:
    """Raise Terminated on SIGTERM (main thread only: elsewhere Python cannot set handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
