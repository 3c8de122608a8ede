"""`semfi-batch backends`: what can run here."""

from __future__ import annotations

from rich.table import Table

from semfi_batch.backends import DEFAULT_BACKEND, BackendOptions, backend_class, backend_names
from semfi_batch.cli.app import app, stdout


@app.command("backends", epilog="Example: semfi-batch backends")
def list_backends() -> None:
    """List every backend, whether it can run on this machine, and why not."""
    table = Table(show_edge=False)
    for col in ("backend", "runs here", "description / why not"):
        table.add_column(col, overflow="fold")
    options = BackendOptions()
    for name in backend_names():
        try:
            cls = backend_class(name)
            ok, why = cls.availability(options)
            text = cls.description if ok else why
        except ImportError as exc:
            ok, text = False, f"cannot import: {exc}"
        label = f"{name} (default)" if name == DEFAULT_BACKEND else name
        table.add_row(label, "yes" if ok else "no", text)
    stdout.print(table)
