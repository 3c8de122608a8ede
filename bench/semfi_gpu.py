"""SemFi on the GPU: our Mixture-of-LoRA paths vs the reference's unfolded forward vs the bare Wan DiT.

With a random-init DiT of the real Wan2.1-I2V-14B config in bf16 it measures, per resolution (81 frames):
seconds per denoise step (two DiT passes: classifier-free guidance) for
  (a) ours, the default: branch 0 + the bucket's branch added to each adapted layer's output (the
      reference's numbers, two low-rank products per layer),
  (f) ours, folded (`mol=fold`): the two branches folded into the weights (no LoRA cost, other rounding),
  (b) the reference's way: all 7 LoRA branches computed on every pass, inactive ones multiplied by zero,
  (c) the bare Wan DiT,
  (d) as (a) with guidance's two passes as one batch of two,
the ratios to (c), model FLOPs utilisation, and peak GPU memory. Then the time to load the DiT once
(ours, per worker) vs once per pair (the reference), and the per-clip time of a 4-pair batch our way
(load once, jobs sorted by bucket, branches added) vs the reference's way (reload per pair, all branches,
DiT offloaded with 6e9 parameters resident), run with few denoise steps and extrapolated to 50.

Only the DiT is in this benchmark: text/image encoding and VAE decoding cost the same both ways and are
left out, and the reference's reload counts the DiT alone (bf16 shards; the release's fp32 shards and the
11 GB text encoder would make its reload slower still), so the batch comparison understates our gain.

Examples (GPU; each part fits in one 10-minute session):
  .venv/bin/python bench/semfi_gpu.py --part steps --resolutions 832x480,1280x720
  .venv/bin/python bench/semfi_gpu.py --part batch
Both resolutions and a shortened batch in one process (about 7 minutes on an H200):
  .venv/bin/python bench/semfi_gpu.py --part all --warmup first --batch-steps 1 --batch-frames 81,49
CPU run at toy size (the script works; relative LoRA costs at toy widths, not GPU figures):
  .venv/bin/python bench/semfi_gpu.py --tiny --device cpu
Targets: a/c <= 1.03, MFU >= 45 %, our batch >= 1.3x faster per clip."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semfi_batch.backends._wan import loading, sampling  # noqa: E402
from semfi_batch.backends._wan.mol import (  # noqa: E402
    N_BRANCHES,
    Branch,
    MixtureLoRA,
    MixtureLoRALinear,
    MolBranches,
    MolFolder,
    attach_unfolded,
    detach_unfolded,
    set_unfolded_branch,
)
from semfi_batch.backends.base import resolve_torch_device  # noqa: E402
from semfi_batch.plan import mol_branch  # noqa: E402

WAN_I2V_14B = dict(
    dim=5120, in_dim=36, ffn_dim=13824, out_dim=16, text_dim=4096, freq_dim=256, eps=1e-6,
    patch_size=(1, 2, 2), num_heads=40, num_layers=40, has_image_input=True,
)  # fmt: skip
TINY = dict(
    dim=256, in_dim=36, ffn_dim=512, out_dim=16, text_dim=32, freq_dim=256, eps=1e-6,
    patch_size=(1, 2, 2), num_heads=2, num_layers=2, has_image_input=True,
)  # fmt: skip
TEXT_LEN, IMAGE_TOKENS, MOL_RANK = 512, 257, 16
REFERENCE_RESIDENT_PARAMS = 6e9
# Dense bf16 tensor-core peaks (FLOP/s) by device name.
PEAKS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_random_dit(cfg: dict, device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """A WanModel of `cfg` with random weights made directly on `device` in `dtype` (no fp32 copy)."""
    from diffsynth.core.vram.initialization import skip_model_initialization
    from diffsynth.models.wan_video_dit import WanModel

    with skip_model_initialization():
        dit = WanModel(**cfg)
    dit = dit.to(dtype=dtype).to_empty(device=device).eval().requires_grad_(False)
    g = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if p.ndim >= 2:
                fan_in = math.prod(p.shape[1:])
                p.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g)
            elif "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    return dit


def random_mol(dit: torch.nn.Module, std: float = 1e-3, seed: int = 1) -> MixtureLoRA:
    """SemFi-shaped Mixture-of-LoRA with random weights on every adapted layer of `dit`."""
    g = torch.Generator().manual_seed(seed)
    layers = {}
    for i, block in enumerate(dit.blocks):
        named = {
            f"blocks.{i}.{a}.{p}": getattr(getattr(block, a), p) for a in ("self_attn", "cross_attn") for p in "qkvo"
        }
        named |= {f"blocks.{i}.ffn.0": block.ffn[0], f"blocks.{i}.ffn.2": block.ffn[2]}
        for name, lin in named.items():
            layers[name] = [
                Branch(
                    torch.randn(MOL_RANK, lin.in_features, generator=g) * std,
                    torch.randn(MOL_RANK, generator=g) * std,
                    torch.randn(lin.out_features, MOL_RANK, generator=g) * std,
                    torch.randn(lin.out_features, generator=g) * std,
                )
                for _ in range(N_BRANCHES)
            ]
    return MixtureLoRA(layers=layers, rank=MOL_RANK)


def dit_inputs(cfg: dict, width: int, height: int, frames: int, device, dtype) -> sampling.Conditioning:
    """Conditioning of the right shapes (random values) for a clip; latent shape included."""
    f, h, w = (frames - 1) // 4 + 1, height // 8, width // 8
    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    shared = {"clip_feature": rnd(1, IMAGE_TOKENS, 1280), "y": rnd(1, 20, f, h, w)}
    cond = sampling.Conditioning(
        shared=shared, posi={"context": rnd(1, TEXT_LEN, cfg["text_dim"])},
        nega={"context": rnd(1, TEXT_LEN, cfg["text_dim"])}, latent_shape=(1, 16, f, h, w),
    )  # fmt: skip
    return cond


def flops_per_forward(cfg: dict, width: int, height: int, frames: int) -> float:
    """Model FLOPs of one DiT pass (matmuls and attention; norms and elementwise work left out)."""
    d, ff, layers = cfg["dim"], cfg["ffn_dim"], cfg["num_layers"]
    tokens = ((frames - 1) // 4 + 1) * (height // 16) * (width // 16)
    per_block = (
        4 * 2 * tokens * d * d  # self-attention q, k, v, o
        + 2 * 2 * tokens * tokens * d  # self-attention scores and values
        + 2 * 2 * tokens * d * d  # cross-attention q, o
        + 2 * 2 * (TEXT_LEN + IMAGE_TOKENS) * d * d  # cross-attention k, v (text) and k_img, v_img
        + 2 * 2 * tokens * (TEXT_LEN + IMAGE_TOKENS) * d  # cross-attention scores and values
        + 2 * 2 * tokens * d * ff  # FFN
    )
    embed = 2 * tokens * cfg["in_dim"] * 4 * d + 2 * tokens * d * cfg["out_dim"] * 4
    embed += 2 * TEXT_LEN * (cfg["text_dim"] * d + d * d) + 2 * IMAGE_TOKENS * (1280 * 1280 + 1280 * d)
    return layers * per_block + embed


def lora_flops_per_forward(cfg: dict, width: int, height: int, frames: int, branches: int) -> float:
    """FLOPs of `branches` rank-16 LoRA branches on every adapted layer in one DiT pass."""
    d, ff, layers = cfg["dim"], cfg["ffn_dim"], cfg["num_layers"]
    tokens = ((frames - 1) // 4 + 1) * (height // 16) * (width // 16)
    per_branch = (
        6 * 2 * tokens * MOL_RANK * 2 * d  # self-attention q, k, v, o and cross-attention q, o (x: video tokens)
        + 2 * 2 * TEXT_LEN * MOL_RANK * 2 * d  # cross-attention k, v (on the text)
        + 2 * 2 * tokens * MOL_RANK * (d + ff)  # ffn.0 and ffn.2
    )
    return layers * branches * per_branch


class Denoiser:
    """Runs `steps` denoise steps (CFG: two passes each) of a DiT through the backend's own loop and guidance."""

    def __init__(self, dit, cond, device, dtype, cfg_scale: float = 5.0, batch_cfg: bool = False):
        from diffsynth.pipelines.wan_video import model_fn_wan_video

        self.cond, self.device, self.dtype = cond, device, dtype
        self.predict = sampling.make_guided(
            lambda **kw: model_fn_wan_video(dit=dit, **kw), cond, cfg_scale, batch_cfg=batch_cfg
        )

    @torch.no_grad()
    def run(self, steps: int) -> float:
        """Seconds for `steps` steps: wall time on a GPU; on the CPU the process's CPU time (one thread), which
        leaves out the time other processes held the core (this machine is shared)."""
        clock = time.perf_counter if self.device.type == "cuda" else time.process_time
        sync(self.device)
        t0 = clock()
        sampling.denoise(self.predict, self.cond.latent_shape, 0, steps, self.device, self.dtype)
        sync(self.device)
        return clock() - t0


def peak_memory_reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None


def peak_flops(device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


MODES = {
    "c_bare": "(c) bare Wan DiT",
    "a_branches": "(a) ours: 2 branches",
    "f_folded": "(f) ours: folded",
    "b_reference": "(b) reference: 7 br.",
    "d_branches_batched_cfg": "(d) (a), CFG batched",
}


def measure_steps(dit, mol, branches, folder, cfg, args, device, dtype) -> list[dict]:
    """Seconds per step, ratios to the bare DiT, MFU and peak memory per resolution for every MODE."""
    rows = []
    peak = peak_flops(device, args.peak_tflops)
    branch = mol_branch(args.frames)
    modes = [m for m in args.modes if folder is not None or m != "f_folded"]
    for i, res in enumerate(args.resolutions):
        width, height = res
        cond = dit_inputs(cfg, width, height, args.frames, device, dtype)
        row = {"resolution": f"{width}x{height}", "frames": args.frames, "bucket": branch}
        if i == 0 or args.warmup == "each":
            # Warm-up (kernels, allocator) per resolution, or only before the first one where device time is
            # short: the kernels are the same at the next size and the allocator grows in milliseconds.
            Denoiser(dit, cond, device, dtype).run(1)
        times: dict[str, list[float]] = {m: [] for m in modes}
        # Modes take turns, `repeats` rounds, and each keeps its fastest: background load hits all alike.
        for _ in range(args.repeats):
            for mode in modes:
                if mode in ("a_branches", "d_branches_batched_cfg"):
                    branches.apply(branch)
                elif mode == "f_folded":
                    folder.apply(branch)
                elif mode == "b_reference":
                    attach_unfolded(dit, mol)
                    set_unfolded_branch(dit, branch)
                peak_memory_reset(device)
                den = Denoiser(dit, cond, device, dtype, batch_cfg=mode == "d_branches_batched_cfg")
                times[mode].append(den.run(args.steps) / args.steps)
                row[f"{mode}_peak_gb"] = peak_memory_gb(device)
                # Each timing as it comes: a run cut short by its time limit still shows what it measured.
                print(f"  {width}x{height} {mode}: {times[mode][-1]:.4f} s/step", flush=True)
                branches.restore()
                if mode == "f_folded":
                    folder.restore()
                if mode == "b_reference":
                    detach_unfolded(dit)
        for mode in modes:
            row[f"{mode}_s_per_step"] = min(times[mode])
        flops = 2 * flops_per_forward(cfg, width, height, args.frames)
        row["model_tflop_per_step"] = flops / 1e12
        for label, n_branches in (("a_branches", 2), ("b_reference", 7)):
            lora = 2 * lora_flops_per_forward(cfg, width, height, args.frames, n_branches)
            row[f"{label}_lora_flop_share"] = lora / flops
        bare = row["c_bare_s_per_step"]
        for mode in modes:
            row[f"{mode}_over_bare"] = row[f"{mode}_s_per_step"] / bare
            row[f"mfu_{mode}"] = flops / row[f"{mode}_s_per_step"] / peak if peak else None
        rows.append(row)
        print_step_row(row, modes)
    return rows


def print_step_row(row: dict, modes: list[str]) -> None:
    def gb(v):
        return "n/a" if v is None else f"{v:.1f} GB"

    def pct(v):
        return "n/a (give --peak-tflops)" if v is None else f"{100 * v:.1f} %"

    print(f"\n{row['resolution']}, {row['frames']} frames (bucket {row['bucket']}), "
          f"{row['model_tflop_per_step']:.3g} model TFLOP per step (bare DiT)")  # fmt: skip
    for mode in modes:
        print(f"  {MODES[mode]:22s} {row[f'{mode}_s_per_step']:9.4f} s/step  x{row[f'{mode}_over_bare']:.3f} of bare"
              f"   peak {gb(row[f'{mode}_peak_gb'])}   MFU {pct(row[f'mfu_{mode}'])}")  # fmt: skip
    print(f"  LoRA FLOPs over the bare DiT's: (a) {100 * row['a_branches_lora_flop_share']:.2f} %, "
          f"(b) {100 * row['b_reference_lora_flop_share']:.2f} %;  targets: (a)/(c) <= 1.03, MFU >= 45 %")  # fmt: skip


def measure_load(dit, device, dtype, scratch: Path) -> float:
    """Seconds to load the DiT from 7 safetensors shards through the backend's loading path (the shards are
    written first; the read may be served from the page cache, which favours the reference's reloads)."""
    from diffsynth.core.loader import load_model, load_state_dict
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.utils.state_dict_converters.wan_video_dit import WanVideoDiTStateDictConverter
    from safetensors.torch import save_file

    scratch.mkdir(parents=True, exist_ok=True)
    sd = dit.state_dict()
    keys = sorted(sd)
    paths = []
    for i in range(7):
        path = scratch / f"diffusion_pytorch_model-{i + 1:05d}-of-00007.safetensors"
        save_file({k: sd[k].detach().to("cpu").contiguous() for k in keys[i::7]}, str(path))
        paths.append(str(path))
    shapes = loading.safetensors_shapes(paths)
    config = loading.dit_config(shapes)
    target = str(device)
    sync(device)
    t0 = time.perf_counter()
    state = load_state_dict(paths, torch_dtype=dtype, device=target)
    loaded = load_model(WanModel, paths, config=config, torch_dtype=dtype, device=target,
                        state_dict_converter=WanVideoDiTStateDictConverter, state_dict=state)  # fmt: skip
    sync(device)
    seconds = time.perf_counter() - t0
    del state, loaded
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds


def offload_reference(dit, device, dtype, resident: float) -> int:
    """The reference's memory setup: DiT on the CPU under diffsynth VRAM management, with layers made
    resident on the GPU until `resident` parameters are there; the rest is copied in on every pass."""
    from diffsynth.core.vram.layers import AutoWrappedLinear, enable_vram_management
    from diffsynth.models.model_loader import ModelPool

    dit.to("cpu")
    vram_config = {
        "offload_dtype": dtype, "offload_device": "cpu", "onload_dtype": dtype, "onload_device": "cpu",
        "preparing_dtype": dtype, "preparing_device": device, "computation_dtype": dtype, "computation_device": device,
    }  # fmt: skip
    module_map = ModelPool().fetch_module_map("diffsynth.models.wan_video_dit.WanModel", vram_config)
    # vram_limit 0: nothing becomes resident by itself; we choose what does, as the reference's
    # num_persistent_param_in_dit does.
    limit = 0.0 if device.type == "cuda" else None
    enable_vram_management(dit, module_map, vram_config=vram_config, vram_limit=limit)
    from diffsynth.core.vram.layers import AutoTorchModule, AutoWrappedNonRecurseModule

    for module in dit.modules():
        if isinstance(module, AutoTorchModule):
            module.onload()
    count = 0
    for module in dit.modules():
        if isinstance(module, AutoWrappedLinear) and count < resident:
            module.preparing()
            count += module.weight.numel()
    for module in dit.modules():
        # Small whole-module wrappers (norms, embeddings, head) stay on the GPU. A block wrapper's own
        # `preparing` would move its whole block, linears included, so blocks keep copying in per pass.
        if isinstance(module, AutoTorchModule) and not isinstance(
            module, (AutoWrappedLinear, AutoWrappedNonRecurseModule)
        ):
            module.preparing()
        if isinstance(module, MixtureLoRALinear):
            module.gates = module.gates.to(device)
    return count


def batch(dit, mol, branches, cfg, args, device, dtype, load_s: float) -> dict:
    """Per-clip time of a batch: ours (load once, bucket order, branches added) vs the reference's way."""
    width, height = args.batch_resolution
    frame_counts = args.batch_frames
    steps = args.batch_steps
    result = {"pairs": len(frame_counts), "frames": frame_counts, "resolution": f"{width}x{height}", "steps_run": steps}

    # Ours: jobs sorted by bucket; branches switched once per bucket.
    ours_denoise, ours_fold = [], 0.0
    for n in sorted(frame_counts, key=mol_branch):
        sync(device)
        ours_fold += branches.apply(mol_branch(n))
        sync(device)
        den = Denoiser(dit, dit_inputs(cfg, width, height, n, device, dtype), device, dtype)
        ours_denoise.append(den.run(steps))
    branches.restore()

    # The reference's way: all branches every pass, DiT offloaded with 6e9 parameters resident.
    attach_unfolded(dit, mol)
    resident = offload_reference(dit, device, dtype, args.resident_params)
    ref_denoise = []
    for n in frame_counts:
        set_unfolded_branch(dit, mol_branch(n))
        den = Denoiser(dit, dit_inputs(cfg, width, height, n, device, dtype), device, dtype)
        if not ref_denoise:
            den.run(1)  # warm-up once, as ours had during the per-step timings
        ref_denoise.append(den.run(steps))
    pairs = len(frame_counts)

    def per_clip(load_total, fixed, denoise, target_steps):
        return (load_total + fixed + sum(d * target_steps / steps for d in denoise)) / pairs

    for label, target in (("measured", steps), ("extrapolated_50", 50)):
        ours = per_clip(load_s, ours_fold, ours_denoise, target)
        ref = per_clip(load_s * pairs, 0.0, ref_denoise, target)
        result[label] = {"ours_s_per_clip": ours, "reference_s_per_clip": ref, "speedup": ref / ours}
    result.update(load_once_s=load_s, load_per_pair_total_s=load_s * pairs, fold_total_s=ours_fold,
                  reference_resident_params=resident)  # fmt: skip
    print(f"\nbatch of {pairs} pairs at {width}x{height}, frames {frame_counts}, {steps} steps run")
    print(f"  load: once {load_s:.2f} s (ours) vs per pair {pairs} x {load_s:.2f} s (reference)")
    print(f"  branch switches (ours, bucket order): {ours_fold:.2f} s in all; "
          f"reference resident params {resident / 1e6:,.1f}M")  # fmt: skip
    for label in ("measured", "extrapolated_50"):
        r = result[label]
        print(f"  {label:16s} ours {r['ours_s_per_clip']:9.2f} s/clip   reference {r['reference_s_per_clip']:9.2f} "
              f"s/clip   speedup {r['speedup']:.2f}x (target >= 1.3x)")  # fmt: skip
    return result


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    ap.add_argument("--tiny", action="store_true", help="toy DiT and sizes (CPU smoke run)")
    ap.add_argument("--part", choices=("all", "steps", "batch"), default="all")
    ap.add_argument("--resolutions", default=None, help="WxH list for the per-step timings (default 832x480,1280x720)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip for the per-step timings (default 81)")
    ap.add_argument(
        "--steps", type=int, default=None, help="timed denoise steps per mode after a warm-up (default 1; 3 tiny)"
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per mode, fastest kept (default 1; 5 tiny)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"modes timed per step (default all: {','.join(MODES)})")
    ap.add_argument("--warmup", choices=("each", "first"), default="each",
                    help="warm-up step before each resolution (default) or only before the first")  # fmt: skip
    ap.add_argument("--batch-resolution", default=None, help="WxH of the batch (default 832x480)")
    ap.add_argument("--batch-frames", default=None, help="frame counts of the batch's pairs (default 81,49,81,49)")
    ap.add_argument("--batch-steps", type=int, default=2, help="denoise steps run per pair in the batch")
    ap.add_argument("--resident-params", type=float, default=REFERENCE_RESIDENT_PARAMS)
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s for MFU (default by GPU name)")
    ap.add_argument("--scratch", default=None, help="folder for the DiT shards of the load test (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPUs, float32 on the CPU), bfloat16 or float32")
    ap.add_argument("--no-fold", action="store_true", help="skip the folded mode (it keeps a CPU copy of the weights)")
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in args.modes) or "c_bare" not in args.modes:
        ap.error(f"--modes takes some of {','.join(MODES)}, c_bare included (the ratios' base); got {args.modes}")

    cfg = TINY if args.tiny else WAN_I2V_14B
    device = resolve_torch_device(args.device)
    dtype = loading.default_dtype(device, args.dtype)
    default_res = "64x48,96x64" if args.tiny else "832x480,1280x720"
    args.resolutions = [parse_size(s) for s in (args.resolutions or default_res).split(",")]
    args.frames = args.frames or (9 if args.tiny else 81)
    args.steps = args.steps or (3 if args.tiny else 1)
    args.repeats = args.repeats or (5 if args.tiny else 1)
    args.batch_resolution = parse_size(args.batch_resolution or ("64x48" if args.tiny else "832x480"))
    args.batch_frames = [int(x) for x in (args.batch_frames or ("9,5,9,5" if args.tiny else "81,49,81,49")).split(",")]

    if device.type == "cpu":
        # One thread: on a shared CPU, OpenMP barriers between preempted threads make timings erratic.
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}, dtype {dtype}, DiT {'toy' if args.tiny else 'Wan2.1-I2V-14B'} config: {cfg}")
    t0 = time.perf_counter()
    dit = build_random_dit(cfg, device, dtype)
    n_params = sum(p.numel() for p in dit.parameters())
    mol = random_mol(dit)
    branches = MolBranches(dit, mol, device, dtype)
    folder = None if args.no_fold or args.part == "batch" else MolFolder(dit, mol)
    print(f"random DiT: {n_params / 1e6:,.1f}M parameters; MoL: {len(mol.layers)} layers x {N_BRANCHES} branches, "
          f"rank {MOL_RANK}; setup {time.perf_counter() - t0:.1f} s")  # fmt: skip

    if args.tiny:  # keep the reference's resident share of the linear weights (6e9 of 14e9) at toy size
        linear = sum(m.weight.numel() for m in dit.modules() if isinstance(m, torch.nn.Linear))
        args.resident_params = linear * REFERENCE_RESIDENT_PARAMS / 14e9
    results = {"device": name, "dtype": str(dtype), "tiny": args.tiny, "dit_params": n_params,
               "torch": torch.__version__}  # fmt: skip

    def save() -> None:  # after each part: a later part that runs out of time keeps the earlier figures
        if args.json:
            tmp = Path(args.json).with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=2, default=str))
            tmp.replace(args.json)

    if args.part in ("all", "steps"):
        results["steps"] = measure_steps(dit, mol, branches, folder, cfg, args, device, dtype)
        save()
    if args.part in ("all", "batch"):
        scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="semfi-bench-"))
        try:
            load_s = measure_load(dit, device, dtype, scratch)
        finally:
            if not args.scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        results["batch"] = batch(dit, mol, branches, cfg, args, device, dtype, load_s)
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
