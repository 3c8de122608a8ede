"""The `semfi-batch` command. A `run` whose finished stamp still holds is answered before the CLI loads
(run/finished.py: a no-op resume in about a tenth of a second); everything else goes to the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    """Console entry point."""
    from semfi_batch.termination import Interrupted, handle_signals, signal_name

    handle_signals()  # before the imports below: a signal during them is one line, not a traceback
    try:
        from semfi_batch.run.finished import answer

        code = answer(sys.argv[1:])
        if code is not None:
            sys.exit(code)
        from semfi_batch.cli import main as cli_main
    except Interrupted as exc:
        print(f"semfi-batch interrupted ({signal_name(exc.signum)}) while starting: nothing written", file=sys.stderr)
        sys.exit(exc.exit_code)
    cli_main()


if __name__ == "__main__":
    main()
