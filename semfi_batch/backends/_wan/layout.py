"""Where the Wan2.1 model files are expected (no torch import: `availability` uses this to list what is missing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


@dataclass(frozen=True)
class ModelFiles:
    """Paths of one Wan2.1 model's files."""

    root: Path
    dit: tuple[Path, ...]
    text_encoder: Path
    image_encoder: Path
    vae: Path
    tokenizer: Path

    def expected(self) -> list[tuple[Path, str]]:
        """Every expected path with what it is, in the order a user would fetch them."""
        n = len(self.dit)
        items = [(p, f"DiT shard {i} of {n}") for i, p in enumerate(self.dit, 1)]
        items += [
            (self.text_encoder, "UMT5-XXL text encoder"),
            (self.image_encoder, "CLIP image encoder"),
            (self.vae, "Wan2.1 VAE"),
            (self.tokenizer / "tokenizer_config.json", "UMT5 tokenizer config"),
            (self.tokenizer / TOKENIZER_FILES[0], f"UMT5 tokenizer ({' or '.join(TOKENIZER_FILES)})"),
        ]
        return items

    def missing(self) -> list[tuple[Path, str]]:
        """The expected files that are not there."""
        out = []
        for path, what in self.expected():
            if path.name == TOKENIZER_FILES[0]:
                if not any((path.parent / name).is_file() for name in TOKENIZER_FILES):
                    out.append((path, what))
            elif not path.is_file():
                out.append((path, what))
        return out


@dataclass(frozen=True)
class WanLayout:
    """The file layout of one Wan2.1 release, as published (folder name inside `--models-dir`)."""

    folder: str
    dit_shards: int = 7
    text_encoder: str = "models_t5_umt5-xxl-enc-bf16.pth"
    image_encoder: str = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
    vae: str = "Wan2.1_VAE.pth"
    tokenizer: str = "google/umt5-xxl"

    def files(self, models_dir: Path) -> ModelFiles:
        """The paths this layout expects under `models_dir`."""
        root = Path(models_dir) / self.folder
        n = self.dit_shards
        dit = tuple(root / f"diffusion_pytorch_model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1))
        return ModelFiles(
            root=root,
            dit=dit,
            text_encoder=root / self.text_encoder,
            image_encoder=root / self.image_encoder,
            vae=root / self.vae,
            tokenizer=root / self.tokenizer,
        )


I2V_14B_720P = WanLayout("Wan2.1-I2V-14B-720P")
FLF2V_14B_720P = WanLayout("Wan2.1-FLF2V-14B-720P")


def missing_report(files: ModelFiles, extra: list[tuple[Path, str]] = ()) -> str | None:
    """One line naming every missing file and the folder it was looked for in, or None when all are there."""
    missing = files.missing() + [(Path(p), what) for p, what in extra if not Path(p).is_file()]
    if not missing:
        return None
    by_folder: dict[Path, list[str]] = {}
    for path, what in missing:
        inside = path.is_relative_to(files.root)
        folder = files.root if inside else path.parent
        name = path.relative_to(folder).as_posix()
        by_folder.setdefault(folder, []).append(f"{name} ({what})")
    listed = "; ".join(f"in {folder}: {', '.join(names)}" for folder, names in by_folder.items())
    noun = "file is" if len(missing) == 1 else "files are"
    return f"{len(missing)} model {noun} missing, {listed}"
