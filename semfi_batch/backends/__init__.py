"""Backends registered by name. Entries are imported lazily so that CPU backends never import torch."""

from __future__ import annotations

import importlib

from semfi_batch.backends.base import Backend, BackendOptions, Constraints, InterpolationRequest
from semfi_batch.errors import UnknownBackend

DEFAULT_BACKEND = "flow"

# name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "flow": "semfi_batch.backends.flow:FlowBackend",
    "blend": "semfi_batch.backends.blend:BlendBackend",
    "minterpolate": "semfi_batch.backends.minterpolate:MinterpolateBackend",
    "rife": "semfi_batch.backends.rife:RifeBackend",
    "semfi": "semfi_batch.backends.semfi:SemfiBackend",
    "wan-flf2v": "semfi_batch.backends.wan_flf2v:WanFlf2vBackend",
}


def register(name: str, target: str) -> None:
    """Register a backend class by import path, e.g. register("mine", "pkg.mod:MyBackend")."""
    _REGISTRY[name] = target


def backend_names() -> list[str]:
    """Registered backend names, default first."""
    return sorted(_REGISTRY, key=lambda n: (n != DEFAULT_BACKEND, n))


def backend_class(name: str) -> type[Backend]:
    """The class registered under `name`; UnknownBackend lists the known names."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(backend_names())}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = [
    "Backend",
    "BackendOptions",
    "Constraints",
    "InterpolationRequest",
    "DEFAULT_BACKEND",
    "backend_class",
    "backend_names",
    "register",
]
