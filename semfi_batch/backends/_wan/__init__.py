"""Shared Wan2.1 machinery for the `semfi` and `wan-flf2v` backends, built on the `diffsynth` package.

- layout: which model files are expected where (no torch import; used by `availability`).
- defaults: steps, guidance scale and flow shift of the reference (no torch import).
- geometry: the size policy (model size in multiples of 16, pad and crop back) on numpy frames.
- loading: reading the files with diffsynth's loader, configs read from the files' shapes, GPU placement.
- mol: the SemFi Mixture-of-LoRA checkpoint, exact per-bucket folding, and the unfolded reference forward.
- sampling: conditioning, the flow-matching denoise loop with step checkpoints, decoding to frames.
- engine: the backend body both backends share (load once, bucket order, resume, OOM retry).

The backends import only `engine` (and through it `layout`, `defaults`, `geometry`) at module level, so
listing or checking backends never imports torch."""
