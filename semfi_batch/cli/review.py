"""`semfi-batch review`: look at every repair of a run and accept, reject or regenerate it, on a local page or
from a script."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from semfi_batch.cli.app import MULTI_VALUE_OPTIONS, app, console, stdout
from semfi_batch.errors import OptionError, SemfiError

MULTI_VALUE_OPTIONS["review"] = {"--accept", "--reject", "--regenerate", "--undecide"}

REVIEW_EPILOG = """Examples:

  semfi-batch review runs/demo                          (the page; prints its URL and opens a browser)

  semfi-batch review runs/demo --accept cut_0001 cut_0002 --reject cut_0003

  semfi-batch review runs/demo --regenerate cut_0003 --seed 7 --backend flow   (then: semfi-batch run ...)

  semfi-batch review runs/demo --list
"""


@app.command(epilog=REVIEW_EPILOG)
def review(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `semfi-batch run`.", show_default=False)],
    accept: Annotated[
        list[str] | None, typer.Option("--accept", help="Accept these jobs (pair_ids; repeat or list).")
    ] = None,
    reject: Annotated[
        list[str] | None,
        typer.Option("--reject", help="Reject these jobs: splice leaves their frames as they are."),
    ] = None,
    regenerate: Annotated[
        list[str] | None,
        typer.Option("--regenerate", help="Mark these jobs to run again (next `semfi-batch run`)."),
    ] = None,
    undecide: Annotated[
        list[str] | None, typer.Option("--undecide", help="Take back the decision on these jobs.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="With --regenerate: the new seed (default: a new one).")] = None,
    backend: Annotated[
        str | None, typer.Option(help="With --regenerate: the backend to run them with (default: the same).")
    ] = None,
    accept_all: Annotated[
        bool, typer.Option("--accept-all", help="Accept every finished job that is undecided.")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="Print a table of the jobs and their decisions.")] = False,
    port: Annotated[int, typer.Option(help="Port of the page on 127.0.0.1 (0: any free port).")] = 8765,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser; print the URL.")] = False,
) -> None:
    """Review a run's repairs before splicing: one card per job in source order (source, reason, score,
    timecode, backend, warp error), the original frames beside the generated ones, a looping preview with a
    second of the source either side, and accept / reject / regenerate. Decisions are saved in
    RUN_DIR/decisions.json at once; `splice` leaves rejected jobs out, `run` re-runs jobs marked to regenerate.

    With --accept/--reject/--regenerate/--undecide/--accept-all/--list it changes or prints decisions and
    exits; otherwise it serves the page until Ctrl-C."""
    from semfi_batch.backends import backend_names
    from semfi_batch.review.cards import RunReview
    from semfi_batch.review.decisions import ACCEPTED, REGENERATE, REJECTED, UNDECIDED, decide

    if not 0 <= port <= 65535:
        raise OptionError(f"--port must be from 0 (any free port) to 65535, got {port}")
    run = RunReview(run_dir)
    backends = list(backend_names())
    scripted = any([accept, reject, regenerate, undecide, accept_all, list_])
    if (seed is not None or backend is not None) and not regenerate:
        raise OptionError("--seed and --backend go with --regenerate")
    groups = [(ACCEPTED, accept), (REJECTED, reject), (REGENERATE, regenerate), (UNDECIDED, undecide)]
    named = [p for _, ids in groups for p in ids or []]
    twice = sorted({p for p in named if named.count(p) > 1})
    if twice:
        raise OptionError(f"given more than one decision: {', '.join(twice)}")
    for status, ids in groups:
        if ids:
            extra = {"seed": seed, "backend": backend} if status == REGENERATE else {}
            changed = decide(run.run_dir, ids, status, known_ids=run.pairs, known_backends=backends, **extra)
            stdout.print(f"{status}: {', '.join(changed)}")
    if accept_all:
        cards = [c for c in run.cards() if c.status == "done" and c.decision == UNDECIDED]
        if cards:
            decide(run.run_dir, [c.pair_id for c in cards], ACCEPTED, known_ids=run.pairs)
        stdout.print(f"accepted {len(cards)} undecided finished job(s)")
    if list_:
        _print_table(run)
    if scripted:
        if any(ids for status, ids in groups if status == REGENERATE):
            stdout.print(
                f"to regenerate, run again: {run.rerun_command()}", markup=False, highlight=False, soft_wrap=True
            )
        return
    _serve(run, port, backends, open_browser=not no_browser)


def _print_table(run) -> None:
    table = Table(title=f"decisions: {run.run_dir}", show_edge=False)
    for col, justify in (("pair_id", "left"), ("decision", "left"), ("job", "left"), ("source", "left"),
                         ("timecode", "left"), ("reason", "left"), ("score", "right"), ("backend", "left"),
                         ("next", "left")):  # fmt: skip
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    cards = run.cards()
    for c in cards:
        nxt = ""
        if c.next_seed is not None or c.next_backend:
            nxt = f"seed {c.next_seed}" + (f", {c.next_backend}" if c.next_backend else "")
        why = "stale or damaged" if c.unusable else "other frames"
        decision = c.decision + (f" (was {c.decided_earlier}: {why})" if c.decided_earlier else "")
        if c.regeneration_dropped:
            nxt = f"dropped: {c.regeneration_dropped}"
        table.add_row(
            escape(c.pair_id), decision, c.status, escape(c.source_name or "image pair"), c.timecode_in or "",
            escape(c.reason or ""), "" if c.score is None else f"{c.score:.3g}", escape(c.backend or ""), nxt,
        )  # fmt: skip
    stdout.print(table)
    for c in cards:
        if c.unusable:  # the reason, whole: a table cell would cut it
            stdout.print(f"{c.pair_id}: {c.status}, left out by splice: {c.unusable}", markup=False, highlight=False)


def _serve(run, port: int, backends: list[str], *, open_browser: bool) -> None:
    from semfi_batch.review.server import ReviewServer

    try:
        server = ReviewServer(run, port=port, backends=backends)
    except OSError as exc:
        raise SemfiError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} (try --port 0)") from None
    threading.Thread(target=server.measure_quality, daemon=True).start()
    stdout.print(f"review page: {server.url}  (Ctrl-C to stop; decisions are saved as you make them)")
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped; decisions are in " + str(run.run_dir / "decisions.json"))
    finally:
        server.server_close()
