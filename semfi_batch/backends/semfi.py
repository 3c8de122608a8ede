"""`semfi`: Semantic Frame Interpolation (Hong et al., 2025) on Wan2.1-I2V-14B-720P through diffsynth.

The Mixture-of-LoRA is folded into the DiT once per frame-count bucket (jobs are ordered by bucket), the
model is loaded once per worker, and denoising checkpoints every --ckpt-every steps so a killed job resumes.
Conditioning follows the reference: CLIP features of start and end summed, the VAE condition with the first
and last frames known, UMT5 prompt and negative prompt, classifier-free guidance, flow matching with shift 5."""

from __future__ import annotations

from pathlib import Path

from semfi_batch.backends._wan.engine import WanBackend
from semfi_batch.backends._wan.layout import I2V_14B_720P
from semfi_batch.backends.base import BackendOptions
from semfi_batch.errors import BackendUnavailable
from semfi_batch.plan import mol_branch, semfi_frame_count


class SemfiBackend(WanBackend):
    """SemFi: Wan2.1-I2V-14B-720P with the SemFi Mixture-of-LoRA checkpoint."""

    name = "semfi"
    description = "SemFi (Wan2.1-I2V-14B + Mixture-of-LoRA, diffsynth); needs --models-dir and --semfi-ckpt"
    version = "1"
    layout = I2V_14B_720P
    file_options = "--models-dir and --semfi-ckpt"

    @classmethod
    def extra_files(cls, options: BackendOptions) -> list[tuple[Path, str]]:
        return [(Path(options.semfi_ckpt).expanduser().absolute(), "SemFi Mixture-of-LoRA checkpoint")]

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        ckpt = Path(options.semfi_ckpt)
        size = ckpt.stat().st_size if ckpt.is_file() else None
        return {**super().key_params(options), "semfi_ckpt": ckpt.name, "semfi_ckpt_bytes": size}

    def order_key(self, gap_frames: int) -> tuple:
        """Jobs of one Mixture-of-LoRA bucket run together, so each bucket is folded once per worker."""
        return (mol_branch(semfi_frame_count(gap_frames)),)

    def _setup(self) -> None:
        from semfi_batch.backends._wan.mol import MolFolder, load_mixture_lora
        from semfi_batch.backends._wan.sampling import use_semfi_clip

        dit = self.pipe.dit
        if not dit.has_image_input or dit.has_image_pos_emb or dit.in_dim != 36:
            raise BackendUnavailable(
                f"{self.model_files(self.options).root} does not hold an I2V DiT (image input, 36 input "
                "channels, no end-frame position embedding); SemFi needs Wan2.1-I2V-14B-720P"
            )
        use_semfi_clip(self.pipe)
        self.mol = load_mixture_lora(Path(self.options.semfi_ckpt), dit)
        self.folder = MolFolder(dit, self.mol)

    def _before_job(self, n_frames: int, notes: dict) -> None:
        branch = mol_branch(n_frames)
        fold_s = self.folder.apply(branch)
        notes.update(mol_branch=branch, fold_s=round(fold_s, 4), folded_now=fold_s > 0)

    def _identity(self) -> dict:
        ckpt = Path(self.options.semfi_ckpt)
        return {**super()._identity(), "semfi_ckpt": ckpt.name, "semfi_ckpt_bytes": ckpt.stat().st_size}
