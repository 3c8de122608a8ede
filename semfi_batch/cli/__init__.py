"""Command-line interface. Each module in this package registers its commands on `app`."""

from __future__ import annotations

import importlib
import pkgutil

from semfi_batch.cli.app import app, main

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["app", "main"]
