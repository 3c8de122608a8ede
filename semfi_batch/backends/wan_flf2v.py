"""`wan-flf2v`: Wan2.1-FLF2V-14B-720P, diffsynth's first/last-frame model used as it is (its pipeline's units,
`end_image`), sharing loading, frame math, size policy and step-checkpoint resume with `semfi`. The strongest
peer for side-by-side comparison."""

from __future__ import annotations

from semfi_batch.backends._wan.engine import WanBackend
from semfi_batch.backends._wan.layout import FLF2V_14B_720P
from semfi_batch.errors import BackendUnavailable


class WanFlf2vBackend(WanBackend):
    """Wan2.1-FLF2V-14B-720P through diffsynth's WanVideoPipeline conditioning."""

    name = "wan-flf2v"
    description = "Wan2.1-FLF2V-14B-720P first/last-frame video model (diffsynth); needs --models-dir"
    version = "1"
    layout = FLF2V_14B_720P

    def _setup(self) -> None:
        if not self.pipe.dit.has_image_pos_emb:
            raise BackendUnavailable(
                f"{self.model_files(self.options).root} does not hold an FLF2V DiT (no img_emb.emb_pos); "
                "wan-flf2v needs Wan2.1-FLF2V-14B-720P"
            )
