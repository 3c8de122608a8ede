"""The `semfi-batch` command. A `run` whose finished stamp still holds is answered before the CLI loads
(run/finished.py: a no-op resume in about a tenth of a second); everything else goes to the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    """Console entry point."""
    from semfi_batch.termination import Terminated, handle_sigterm

    handle_sigterm()  # before the imports below: a SIGTERM during them is reported, not a silent death
    try:
        from semfi_batch.run.finished import answer

        code = answer(sys.argv[1:])
        if code is not None:
            sys.exit(code)
        from semfi_batch.cli import main as cli_main
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        sys.exit(143)
    cli_main()


if __name__ == "__main__":
    main()
