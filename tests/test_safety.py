"""Static guarantees: no shell is ever invoked, and model files are only read in safe ways."""

import re
from pathlib import Path

from tests.conftest import REPO

SOURCES = sorted((REPO / "semfi_batch").rglob("*.py"))


def test_no_shell_is_invoked():
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|commands\.")
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in SOURCES for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line)]  # fmt: skip
    assert not offenders, offenders


def test_torch_load_is_always_weights_only():
    calls = [(p, line) for p in SOURCES for line in p.read_text().splitlines() if "torch.load(" in line]
    assert calls, "no torch.load call found: the check would prove nothing"
    unsafe = [f"{p.relative_to(REPO)}: {line.strip()}" for p, line in calls if "weights_only=True" not in line]
    assert not unsafe, unsafe


def test_no_unrestricted_unpickling():
    offenders = [
        str(p.relative_to(REPO)) for p in SOURCES if re.search(r"pickle\.loads?\(|dill\.|joblib\.load", p.read_text())
    ]
    assert not offenders, offenders


def test_diffsynth_loader_used_for_pth_files_is_weights_only():
    """The .pth model files (T5, CLIP, VAE) go through diffsynth's loader: it must not unpickle code."""
    import importlib.util

    spec = importlib.util.find_spec("diffsynth.core.loader.file")
    source = Path(spec.origin).read_text()  # read, not imported: importing diffsynth pulls in torch
    assert "torch.load(" in source and "weights_only=False" not in source and "weights_only=True" in source
