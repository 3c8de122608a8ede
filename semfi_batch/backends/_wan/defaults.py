"""Sampling defaults of the SemFi reference and Wan2.1 (no torch import)."""

DEFAULT_STEPS = 50
DEFAULT_CFG_SCALE = 5.0
SIGMA_SHIFT = 5.0
