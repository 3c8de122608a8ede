"""The Typer application and the one place where errors become exit codes and one-line messages."""

from __future__ import annotations

import functools
import importlib.abc
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from semfi_batch.errors import ManifestError, SemfiError
from semfi_batch.termination import RECEIVED, handle_signals, interrupted_message

try:  # Typer >= 0.20 carries its own copy of click
    from typer._click import core as click_core
    from typer._click import exceptions as click_exceptions
    from typer._click import globals as click_globals
except ImportError:  # pragma: no cover
    from click import core as click_core
    from click import exceptions as click_exceptions
    from click import globals as click_globals

app = typer.Typer(
    name="semfi-batch",
    help="Fill gaps in video with generated frames, in batch, resumably.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    epilog="Example: semfi-batch run manifests/examples/demo.parquet --out runs/demo",
)
manifest_app = typer.Typer(
    help="Inspect, validate and build manifests.",
    no_args_is_help=True,
    epilog="Example: semfi-batch manifest validate manifests/examples/demo.parquet",
)
app.add_typer(manifest_app, name="manifest")


def _print_version(value: bool) -> None:
    if value:
        from semfi_batch import __version__

        typer.echo(f"semfi-batch {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Fill gaps in video with generated frames, in batch, resumably."""


console = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)  # long paths in messages are never broken by a newline
if not stdout.is_terminal and "COLUMNS" not in os.environ:
    stdout.width = 160  # pipes and logs: wide tables instead of folded ones

DEBUG_ENV = "SEMFI_DEBUG"

# Shared option types, defined once.
ManifestArg = Annotated[
    Path, typer.Argument(help="Parquet manifest of keyframe pairs (schema v1, see manifests/README.md).")
]


# Options that take several values after one flag (`review RUN --accept a b c`), per command. Click options take
# one value each, so main() rewrites `--accept a b` as `--accept a --accept b` before parsing.
MULTI_VALUE_OPTIONS: dict[str, set[str]] = {}


def expand_multi_value_options(args: list[str]) -> list[str]:
    """`CMD --opt a b c` -> `CMD --opt a --opt b --opt c` for the options CMD declared in MULTI_VALUE_OPTIONS;
    values also split on commas. Values run until the next argument that starts with '-'."""
    if not args or args[0] not in MULTI_VALUE_OPTIONS:
        return args
    options = MULTI_VALUE_OPTIONS[args[0]]
    out: list[str] = [args[0]]
    current: str | None = None
    for arg in args[1:]:
        if arg == "--":
            current = None
            out.append(arg)
        elif arg.startswith("-"):
            name, eq, value = arg.partition("=")
            current = name if name in options else None
            if current and eq:
                out += [x for v in value.split(",") if v for x in (name, v)]
            else:
                out.append(arg)
        elif current is not None:
            if out[-1] == current:
                out.pop()  # the flag itself was already written: its values are written with it
            out += [x for v in arg.split(",") if v for x in (current, v)]
        else:
            out.append(arg)
    return out


def _flags_take_no_value(command) -> None:
    """Show boolean flags as flags in --help: Typer labels them <bool>, which invites `--force true`."""
    help_option = command.get_help_option(click_core.Context(command))  # made on demand: make it now
    for param in [*getattr(command, "params", []), help_option]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_take_no_value(sub)


_FLAG_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


def _plain_usage_message(exc: Exception) -> None:
    """Usage errors in the user's terms: no pydantic 'Value error, ' prefix, and a hint when a flag got a value."""
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        return
    message = message.replace("Value error, ", "")
    extra = re.match(r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)", message)
    if extra and extra.group(1).split()[0].lower() in _FLAG_WORDS:
        message += "; flags such as --force take no value: give the flag to turn it on, leave it out to keep it off"
    exc.message = message


def report_error(exc: BaseException) -> int:
    """Print `exc` for a user and return the exit code. Tracebacks only with SEMFI_DEBUG=1."""
    if os.environ.get(DEBUG_ENV):
        traceback.print_exception(exc)
    if isinstance(exc, ManifestError) and exc.problems:
        console.print(f"[red]error:[/red] {exc.args[0].split('; first:')[0]}", markup=True)
        for problem in exc.problems:
            console.print(f"  - {problem}", markup=False)
        return exc.exit_code
    if isinstance(exc, SemfiError):
        console.print(f"[red]error:[/red] {_escape(str(exc))}")
        return exc.exit_code
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        console.print(f"[red]error:[/red] {_escape(exc.strerror or str(exc))}{_escape(str(where))}")
        return 1
    console.print(
        f"[red]internal error:[/red] {type(exc).__name__}: {_escape(str(exc))} "
        f"(set {DEBUG_ENV}=1 for the traceback, and please report it)"
    )
    return 1


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# The command line as the user gave it (before options were expanded): `run` records it in its finished stamp.
INVOCATION: list[str] = []


def _pyarrow_without_pandas() -> None:
    """Keep pyarrow from importing pandas (about 0.3 s) on its first conversion of a Python value.

    pyarrow 26 tries `import pandas` once, on the first conversion of any Python or NumPy value (to learn
    whether a value is a pandas Series), and remembers the answer. Its first try is made here with pandas
    hidden, so it converts plain values without pandas; `to_pandas()` and `from_pandas()` still import pandas
    when a command asks for them (pyarrow tries again when pandas is required). Only commands that use
    pandas themselves (report, eval) pay for it."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    class HidePandas(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):  # noqa: ARG002 - the finder protocol
            if name == "pandas" or name.startswith("pandas."):
                raise ImportError("pandas is imported when a command needs it")

    hide = HidePandas()
    sys.meta_path.insert(0, hide)
    try:
        pa.scalar(0)
    finally:
        sys.meta_path.remove(hide)


# The command being run (its path, `semfi-batch splice`) and the state of each output file it was given, before
# it ran: what an interruption's message names (see _record_invocation).
RUNNING: dict = {}
OUTPUT_PARAMETERS = ("output", "out", "otio", "edl")  # options that name a file a command writes


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _record_invocation(command) -> None:
    """Make every command note, as it starts, its name and the output files it was given (and what was there
    before), so that an interruption's one line can say which of them were not written. Folders (`run --out`,
    `splice --out-dir`, `assemble -o` without a suffix) are left out: each file in them was renamed into place
    whole or not at all."""
    for sub in getattr(command, "commands", {}).values():
        _record_invocation(sub)
    callback = command.callback
    if callback is None or getattr(callback, "records_invocation", False):
        return

    @functools.wraps(callback)
    def recorded(*args, **kwargs):
        outputs = {}
        for name in OUTPUT_PARAMETERS:
            path = kwargs.get(name)
            if isinstance(path, Path) and path.suffix and not path.is_dir():
                outputs[path] = _file_state(path)
        RUNNING.update(command=click_globals.get_current_context().command_path, outputs=outputs)
        return callback(*args, **kwargs)

    recorded.records_invocation = True
    command.callback = recorded


def _interruption(signum: int) -> str:
    """The one line for a command stopped by `signum`: what was interrupted, which outputs were not written."""
    command = RUNNING.get("command", "semfi-batch").removeprefix("semfi-batch ")
    outputs = {path: _file_state(path) != before for path, before in RUNNING.get("outputs", {}).items()}
    return interrupted_message(command, signum, outputs)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the app and maps every error to one line and an exit code."""
    handle_signals()  # `run` puts its own in place while its jobs run
    RUNNING.clear()
    INVOCATION[:] = list(sys.argv[1:] if argv is None else argv)
    try:
        _pyarrow_without_pandas()
        command = typer.main.get_command(app)
        _flags_take_no_value(command)
        _record_invocation(command)
        args = expand_multi_value_options(list(INVOCATION))
        code = command.main(args=args, prog_name="semfi-batch", standalone_mode=False)
    except typer.Abort:
        console.print("aborted")
        code = 130
    except click_exceptions.ClickException as exc:
        _plain_usage_message(exc)
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt as exc:  # outside the command (typer turns one inside it into exit status 130)
        RECEIVED[:] = RECEIVED or [getattr(exc, "signum", signal.SIGINT)]
        code = 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        code = report_error(exc)
    code = code if isinstance(code, int) else 0
    if RECEIVED and code == 130:  # stopped by a signal: typer said 130 whichever it was
        console.print(_interruption(RECEIVED[0]), markup=False)
        code = 128 + RECEIVED[0]
    if __name__ == "__main__" or argv is None:
        sys.exit(code)
    return code
