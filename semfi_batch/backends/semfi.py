"""`semfi`: Semantic Frame Interpolation (Hong et al., 2025) on Wan2.1-I2V-14B-720P through diffsynth.

Numerics follow the reference (hyj542682306/Semantic-Frame-Interpolation): CLIP features of start and end
summed, CLIP and its input in float32, the VAE condition encoded whole with the first and last frames known,
UMT5 prompt and negative prompt, classifier-free guidance with its two passes in turn, flow matching with
shift 5, noise from a CPU generator, and the Mixture-of-LoRA's two active branches added to each adapted
layer's output on the bf16 path. The model is loaded once per worker and jobs run in bucket order; folding
the branches into the weights (`BackendOptions(extra={"mol": "fold"})`; there is no command-line option) is
faster per step but not the reference's numbers."""

from __future__ import annotations

from pathlib import Path

from semfi_batch.backends._wan.engine import WanBackend
from semfi_batch.backends._wan.layout import I2V_14B_720P
from semfi_batch.backends.base import BackendOptions
from semfi_batch.errors import BackendUnavailable
from semfi_batch.plan import MAX_CLIP_FRAMES, clip_frame_count, mol_branch

MOL_MODES = ("branches", "fold")


class SemfiBackend(WanBackend):
    """SemFi: Wan2.1-I2V-14B-720P with the SemFi Mixture-of-LoRA checkpoint."""

    name = "semfi"
    description = "SemFi (Wan2.1-I2V-14B + Mixture-of-LoRA, diffsynth); needs --models-dir and --semfi-ckpt"
    version = "2"
    layout = I2V_14B_720P
    file_options = "--models-dir and --semfi-ckpt"
    image_encoder_dtype = "float32"

    @classmethod
    def extra_files(cls, options: BackendOptions) -> list[tuple[Path, str]]:
        return [(Path(options.semfi_ckpt).expanduser().absolute(), "SemFi Mixture-of-LoRA checkpoint")]

    @classmethod
    def key_params(cls, options: BackendOptions) -> dict:
        # The checkpoint's content is in the weights' digests (WanBackend.weight_digests).
        return {**super().key_params(options), "semfi_ckpt": Path(options.semfi_ckpt).name, "mol": _mol_mode(options)}

    def order_key(self, gap_frames: int) -> tuple:
        """Jobs of one Mixture-of-LoRA bucket run together, so each worker switches buckets rarely."""
        limit = int(self.options.extra.get("max_clip_frames", MAX_CLIP_FRAMES))
        return (mol_branch(clip_frame_count(gap_frames, limit)),)

    def _setup(self) -> None:
        from semfi_batch.backends._wan.mol import MolBranches, MolFolder, load_mixture_lora

        dit = self.pipe.dit
        if not dit.has_image_input or dit.has_image_pos_emb or dit.in_dim != 36:
            raise BackendUnavailable(
                f"{self.model_files(self.options).root} does not hold an I2V DiT (image input, 36 input "
                "channels, no end-frame position embedding); SemFi needs Wan2.1-I2V-14B-720P"
            )
        self.mol_mode = _mol_mode(self.options)
        self.mol = load_mixture_lora(Path(self.options.semfi_ckpt), dit)
        if self.mol_mode == "fold":
            self.folder = MolFolder(dit, self.mol)
        else:
            self.folder = MolBranches(dit, self.mol, self.device, self.dtype)

    def _before_clip(self, n_frames: int, notes: dict) -> None:
        branch = mol_branch(n_frames)
        switch_s = self.folder.apply(branch)
        notes.update(mol_branch=branch, mol=self.mol_mode, mol_switch_s=round(switch_s, 4), switched=switch_s > 0)

    def _after_placement(self) -> None:
        """The branches on the DiT's new (VRAM-managed) linear layers: restored, then applied again."""
        branch = self.folder.branch
        self.folder.restore()
        if branch is not None:
            self.folder.apply(branch)

    def _condition(self, start, end, n_frames, job, seed, notes):
        from semfi_batch.backends._wan import sampling

        request = job.request
        return sampling.semfi_condition(
            self.pipe, start, end, n_frames, request.prompt or "", request.negative_prompt or "", job.cfg, notes
        )

    def _identity(self) -> dict:
        return {**super()._identity(), "semfi_ckpt": Path(self.options.semfi_ckpt).name, "mol": self.mol_mode}


def _mol_mode(options: BackendOptions) -> str:
    mode = str(options.extra.get("mol", "branches"))
    if mode not in MOL_MODES:
        raise BackendUnavailable(f"MoL mode {mode!r} is not one of {', '.join(MOL_MODES)}")
    return mode
