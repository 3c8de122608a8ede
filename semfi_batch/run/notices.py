"""One-line notices about repaired run state (a damaged ledger line, a stale lease, leftovers removed), printed
once each to stderr: the run goes on, and the user learns what was found."""

from __future__ import annotations

import sys
import threading

_seen: set[str] = set()
_lock = threading.Lock()


def notice(message: str, *, once_key: str | None = None) -> None:
    """Print `message` as one line on stderr, at most once per `once_key` (default: the message) per process."""
    key = once_key or message
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    print(f"notice: {message}", file=sys.stderr, flush=True)
