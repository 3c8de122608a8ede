"""SemFi's Mixture-of-LoRA (MoL): reading the checkpoint, applying the active branches as the reference
does, folding them (an option), and the reference's unfolded forward (every branch computed, inactive ones
multiplied by zero).

Each adapted linear layer y = W x + b carries branches j = 0..6, branch_j(x) = B_j (A_j x + a_j) + c_j
(rank 16, alpha 16, so scale 1). Branch 0 and the bucket's branch k are on.

- `MolBranches` (the default) computes y = ((W x + b) + branch_0(x)) + branch_k(x) on the DiT's precision
  path, in that order, which is exactly what the reference computes (its inactive branches add zeros).
- `MolFolder` writes W + B_0 A_0 + B_k A_k and the matching bias into the layer: the same function in exact
  arithmetic and no LoRA cost per step, but in bf16 every part of the update below half a step of W is
  rounded away, so its frames differ from the reference's."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from semfi_batch.errors import BackendUnavailable

N_BRANCHES = 7
# Scale alpha / rank; SemFi uses alpha 16 with rank 16.
LORA_SCALE = 1.0

_LORA_KEY = re.compile(
    r"^blocks\.(?P<block>\d+)\."
    r"(?:(?P<attn>self_attn|cross_attn)\.lora_(?P<proj>[qkvo])|lora_ffn_(?P<ffn>[02]))"
    r"\.(?P<branch>\d+)\.lora_(?P<ab>[AB])\.(?P<kind>weight|bias)$"
)
_PARTS = ("lora_A.weight", "lora_A.bias", "lora_B.weight", "lora_B.bias")
# The DiT's linear layers SemFi adapts, by plain name: every block's attention projections and its FFN.
_ADAPTED_LAYER = re.compile(r"^blocks\.\d+\.(?:(?:self_attn|cross_attn)\.[qkvo]|ffn\.[02])$")
# How many keys a message names as examples.
_EXAMPLES = 3


def target_layer(key: str) -> tuple[str, int, str] | None:
    """For a MoL key, (name of the DiT linear it adapts, branch, part), e.g.
    ("blocks.3.cross_attn.k", 2, "lora_A.weight"); None for any other key."""
    m = _LORA_KEY.match(key)
    if not m:
        return None
    where = f"{m['attn']}.{m['proj']}" if m["attn"] else f"ffn.{m['ffn']}"
    layer = f"blocks.{m['block']}.{where}"
    return layer, int(m["branch"]), f"lora_{m['ab']}.{m['kind']}"


def lora_key(layer: str, branch: int, part: str) -> str:
    """Inverse of `target_layer`."""
    block, rest = layer.split(".", 2)[1], layer.split(".", 2)[2]
    if rest.startswith("ffn."):
        return f"blocks.{block}.lora_ffn_{rest[4:]}.{branch}.{part}"
    attn, proj = rest.split(".")
    return f"blocks.{block}.{attn}.lora_{proj}.{branch}.{part}"


@dataclass
class Branch:
    """One LoRA branch of one layer, in float32 on the CPU."""

    a_w: torch.Tensor  # (rank, in)
    a_b: torch.Tensor  # (rank,)
    b_w: torch.Tensor  # (out, rank)
    b_b: torch.Tensor  # (out,)


@dataclass
class MixtureLoRA:
    """The checkpoint's LoRA branches per adapted layer, plus any base-weight keys it carries."""

    layers: dict[str, list[Branch]]
    base_overrides: dict[str, torch.Tensor] = field(default_factory=dict)
    rank: int = 16
    source: Path | None = None

    def delta(self, layer: str, branch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(dW, db) in float32 for branch 0 plus `branch` of `layer`."""
        dw, db = None, None
        for j in sorted({0, branch}):
            br = self.layers[layer][j]
            a_w, a_b = br.a_w.to(device), br.a_b.to(device)
            b_w, b_b = br.b_w.to(device), br.b_b.to(device)
            w = LORA_SCALE * (b_w @ a_w)
            b = LORA_SCALE * (b_w @ a_b + b_b)
            dw = w if dw is None else dw + w
            db = b if db is None else db + b
        return dw, db


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: safetensors, or a torch pickle read with `weights_only=True`."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals, truncated files, wrong formats
        raise BackendUnavailable(f"cannot load SemFi checkpoint {path} (weights only): {exc}") from None
    while isinstance(sd, dict) and len(sd) == 1 and next(iter(sd)) in ("state_dict", "module", "model"):
        sd = next(iter(sd.values()))
    if not isinstance(sd, dict):
        raise BackendUnavailable(f"SemFi checkpoint {path} holds a {type(sd).__name__}, expected a state dict")
    out = {}
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor) or value.ndim == 0:
            continue  # metadata (a step count, an epoch), never weights
        # Checkpoints saved from a wrapper carry a prefix such as "dit." or "pipe.dit."; the DiT's own
        # names start at "blocks." (or a top-level module).
        m = re.search(r"(?:^|\.)(blocks\.\d+\..+)$", key)
        out[m.group(1) if m else key] = value
    return out


def linear_layers(dit: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The DiT's linear layers by their plain names (VRAM-management wrappers add ".module" levels)."""
    out = {}
    for name, module in dit.named_modules():
        if isinstance(module, torch.nn.Linear):
            out[".".join(p for p in name.split(".") if p != "module")] = module
    return out


def adapted_layers(dit: torch.nn.Module) -> list[str]:
    """The DiT's layers SemFi's Mixture-of-LoRA adapts (q, k, v, o of both attentions and the FFN's two
    linears, in every block), by plain name."""
    return [name for name in linear_layers(dit) if _ADAPTED_LAYER.match(name)]


def _examples(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_EXAMPLES])
    return shown + (", ..." if len(names) > _EXAMPLES else "")


def load_mixture_lora(path: Path, dit: torch.nn.Module) -> MixtureLoRA:
    """Read and check a MoL checkpoint against the DiT: it must hold all 7 branches of every layer SemFi
    adapts (`adapted_layers`), with finite values, and every key must be used (a LoRA key, or a DiT
    parameter the checkpoint overrides). Any mismatch names the checkpoint and the keys."""
    sd = read_checkpoint(path)
    linears = linear_layers(dit)
    params = {".".join(p for p in n.split(".") if p != "module"): t for n, t in dit.named_parameters()}
    parts: dict[str, dict[tuple[int, str], torch.Tensor]] = {}
    overrides, ignored = {}, []
    ranks = {v.shape[0] for k, v in sd.items() if (h := target_layer(k)) and h[2] == "lora_A.weight" and v.ndim == 2}
    if len(ranks) > 1:
        raise BackendUnavailable(f"SemFi checkpoint {path}: lora_A weights have several ranks {sorted(ranks)}")
    rank = ranks.pop() if ranks else None
    for key, value in sd.items():
        hit = target_layer(key)
        if hit is None:
            if key in params:
                if tuple(params[key].shape) != tuple(value.shape):
                    raise BackendUnavailable(
                        f"SemFi checkpoint {path}: key {key!r} has shape {tuple(value.shape)}, "
                        f"the DiT's is {tuple(params[key].shape)}"
                    )
                overrides[key] = value
            else:
                ignored.append(key)
            continue
        layer, branch, part = hit
        if layer not in linears:
            raise BackendUnavailable(f"SemFi checkpoint {path}: key {key!r} adapts {layer!r}, which the DiT lacks")
        if branch >= N_BRANCHES:
            raise BackendUnavailable(f"SemFi checkpoint {path}: key {key!r} names branch {branch}; MoL has 0..6")
        lin = linears[layer]
        r = rank if rank is not None else -1
        want = {
            "lora_A.weight": (r, lin.in_features),
            "lora_A.bias": (r,),
            "lora_B.weight": (lin.out_features, r),
            "lora_B.bias": (lin.out_features,),
        }[part]
        if tuple(value.shape) != want:
            raise BackendUnavailable(
                f"SemFi checkpoint {path}: key {key!r} has shape {tuple(value.shape)}, expected {want} "
                f"for {layer!r} ({lin.in_features}->{lin.out_features}, rank {r})"
            )
        parts.setdefault(layer, {})[(branch, part)] = value.detach().to(torch.float32)
    if ignored:
        raise BackendUnavailable(
            f"SemFi checkpoint {path}: {len(ignored)} of {len(sd)} keys are not used (neither Mixture-of-LoRA "
            f"keys such as {lora_key('blocks.0.self_attn.q', 0, 'lora_A.weight')!r} nor parameters of the DiT): "
            f"{_examples(ignored)}; is it SemFi's checkpoint, with its key names?"
        )
    if not parts:
        example = lora_key("blocks.0.self_attn.q", 0, "lora_A.weight")
        raise BackendUnavailable(f"SemFi checkpoint {path} holds no Mixture-of-LoRA keys (such as {example!r})")
    uncovered = [layer for layer in adapted_layers(dit) if layer not in parts]
    if uncovered:
        raise BackendUnavailable(
            f"SemFi checkpoint {path} does not cover every layer SemFi adapts: {len(uncovered)} of "
            f"{len(uncovered) + len(parts)} layers have no Mixture-of-LoRA keys ({_examples(uncovered)}; "
            f"missing keys such as {lora_key(uncovered[0], 0, 'lora_A.weight')!r})"
        )
    layers = {}
    for layer, got in parts.items():
        for j in range(N_BRANCHES):
            for part in _PARTS:
                if (j, part) not in got:
                    raise BackendUnavailable(
                        f"SemFi checkpoint {path}: key {lora_key(layer, j, part)!r} is missing "
                        f"({layer!r} has other MoL keys, and every branch needs all four tensors)"
                    )
        layers[layer] = [Branch(*(got[(j, p)] for p in _PARTS)) for j in range(N_BRANCHES)]
    broken = [key for key, value in sd.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise BackendUnavailable(
            f"SemFi checkpoint {path}: {len(broken)} tensors hold non-finite values (NaN or infinity): "
            f"{_examples(broken)}"
        )
    return MixtureLoRA(layers=layers, base_overrides=overrides, rank=rank, source=Path(path))


class _AddBranches:
    """Forward hook: adds the active branches' low-rank products to a linear layer's output."""

    def __init__(self, branches: list[tuple[torch.Tensor, ...]]):
        self.branches = branches

    def __call__(self, module, args, output):
        x = args[0]
        for a_w, a_b, b_w, b_b in self.branches:
            update = F.linear(F.linear(x, a_w, a_b), b_w, b_b)
            output = output + (update if LORA_SCALE == 1.0 else update * LORA_SCALE)
        return output


class MolBranches:
    """Applies branch 0 + one bucket branch the reference's way: each adapted linear layer's output gets
    branch_0(x) and then branch_k(x) added, computed in the DiT's dtype on its compute device (forward hooks,
    so it works on plain and VRAM-managed layers alike). Only the two active branches are on the device."""

    def __init__(self, dit: torch.nn.Module, mol: MixtureLoRA, device, dtype: torch.dtype):
        self.dit, self.mol = dit, mol
        self.device, self.dtype = torch.device(device), dtype
        self.branch: int | None = None
        self._handles: list = []
        self._hooked: dict[str, torch.nn.Module] = {}  # the modules the hooks are on, by layer name
        with torch.no_grad():
            plain = {".".join(p for p in n.split(".") if p != "module"): t for n, t in dit.named_parameters()}
            for key, value in mol.base_overrides.items():
                # The reference applies its checkpoint with a non-strict state-dict load.
                plain[key].data.copy_(value.to(plain[key].dtype))

    def _branch_tensors(self, layer: str, branch: int) -> tuple[torch.Tensor, ...]:
        br = self.mol.layers[layer][branch]
        return tuple(t.to(device=self.device, dtype=self.dtype) for t in (br.a_w, br.a_b, br.b_w, br.b_b))

    def apply(self, branch: int) -> float:
        """Switch to branch 0 + `branch` (1..6). Returns the seconds spent (0.0 when already on)."""
        if not 1 <= branch < N_BRANCHES:
            raise ValueError(f"MoL bucket branch must be 1..{N_BRANCHES - 1}, got {branch}")
        linears = linear_layers(self.dit)
        if self.branch == branch and self._on(linears):
            return 0.0
        t0 = time.perf_counter()
        self.restore()
        for name in self.mol.layers:
            hook = _AddBranches([self._branch_tensors(name, j) for j in (0, branch)])
            self._handles.append(linears[name].register_forward_hook(hook))
            self._hooked[name] = linears[name]
        self.branch = branch
        return time.perf_counter() - t0

    def _on(self, linears: dict[str, torch.nn.Linear]) -> bool:
        """Whether the hooks are on the DiT's current layers (VRAM management replaces them with wrappers,
        and hooks on the replaced ones no longer run)."""
        return all(self._hooked.get(name) is linears.get(name) for name in self.mol.layers)

    def restore(self) -> None:
        """Remove the branches: the bare DiT."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._hooked = {}
        self.branch = None


def _host_copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True)


class MolFolder:
    """Folds branch 0 + one bucket branch into the DiT's linear layers, exactly, and restores the base.

    The base weights and biases of the adapted layers are copied once (to CPU memory, in the DiT's own
    dtype); every fold is computed from that copy, every restore copies it back, so the DiT is bit-identical
    to its loaded state after any sequence of switches."""

    def __init__(self, dit: torch.nn.Module, mol: MixtureLoRA):
        self.dit = dit
        self.mol = mol
        self.branch: int | None = None
        params = dict(dit.named_parameters())
        plain = {".".join(p for p in n.split(".") if p != "module"): t for n, t in params.items()}
        with torch.no_grad():
            for key, value in mol.base_overrides.items():
                # The reference applies its checkpoint with a non-strict state-dict load.
                plain[key].data.copy_(value.to(plain[key].dtype))
        # Pageable, not pinned: torch rounds pinned blocks up to powers of two, which for the 14B DiT's
        # 28 GB of adapted weights would waste gigabytes; a fold streams them at a few GB/s, once per bucket.
        self._base: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        for name, lin in self._layers().items():
            self._base[name] = (_host_copy(lin.weight), None if lin.bias is None else _host_copy(lin.bias))

    def _layers(self) -> dict[str, torch.nn.Linear]:
        # Looked up on every use: VRAM management may have re-wrapped or moved the layers.
        linears = linear_layers(self.dit)
        return {name: linears[name] for name in self.mol.layers}

    @torch.no_grad()
    def apply(self, branch: int) -> float:
        """Fold branch 0 + `branch` (1..6). Returns the seconds spent (0.0 when already folded)."""
        if not 1 <= branch < N_BRANCHES:
            raise ValueError(f"MoL bucket branch must be 1..{N_BRANCHES - 1}, got {branch}")
        if self.branch == branch:
            return 0.0
        t0 = time.perf_counter()
        for name, lin in self._layers().items():
            base_w, base_b = self._base[name]
            dev = lin.weight.device
            dw, db = self.mol.delta(name, branch, dev)
            lin.weight.data.copy_((base_w.to(dev, torch.float32) + dw).to(lin.weight.dtype))
            if lin.bias is None:
                raise BackendUnavailable(f"{name} has no bias; SemFi's LoRA biases cannot be folded into it")
            lin.bias.data.copy_((base_b.to(dev, torch.float32) + db).to(lin.bias.dtype))
        self.branch = branch
        return time.perf_counter() - t0

    @torch.no_grad()
    def restore(self) -> None:
        """Put the base weights back, bit for bit."""
        for name, lin in self._layers().items():
            base_w, base_b = self._base[name]
            lin.weight.data.copy_(base_w)
            if base_b is not None:
                lin.bias.data.copy_(base_b)
        self.branch = None


class MixtureLoRALinear(torch.nn.Module):
    """The reference's unfolded MoL layer: base linear plus all 7 branches every call, gated by 0/1."""

    def __init__(self, base: torch.nn.Linear, branches: list[Branch]):
        super().__init__()
        self.base = base
        dev, dtype = base.weight.device, base.weight.dtype
        rank = branches[0].a_w.shape[0]
        self.lora_A = torch.nn.ModuleList()
        self.lora_B = torch.nn.ModuleList()
        for br in branches:
            a = torch.nn.Linear(base.in_features, rank, device=dev, dtype=dtype)
            b = torch.nn.Linear(rank, base.out_features, device=dev, dtype=dtype)
            with torch.no_grad():
                a.weight.copy_(br.a_w)
                a.bias.copy_(br.a_b)
                b.weight.copy_(br.b_w)
                b.bias.copy_(br.b_b)
            self.lora_A.append(a)
            self.lora_B.append(b)
        self.register_buffer("gates", torch.zeros(len(branches), device=dev, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The reference's order: base + branch 0, then each other branch times its 0/1 gate.
        y = self.base(x) + LORA_SCALE * self.lora_B[0](self.lora_A[0](x))
        for j in range(1, len(self.lora_A)):
            y = y + LORA_SCALE * self.lora_B[j](self.lora_A[j](x)) * self.gates[j]
        return y


def attach_unfolded(dit: torch.nn.Module, mol: MixtureLoRA) -> None:
    """Replace each adapted linear layer of a plain (not VRAM-managed) DiT with a MixtureLoRALinear."""
    for name in mol.layers:
        parent_name, _, child = name.rpartition(".")
        parent = dit.get_submodule(parent_name)
        setattr(parent, child, MixtureLoRALinear(getattr(parent, child), mol.layers[name]))


def detach_unfolded(dit: torch.nn.Module) -> None:
    """Undo `attach_unfolded`: put the base linear layers back."""
    for name, module in list(dit.named_modules()):
        if isinstance(module, MixtureLoRALinear):
            parent_name, _, child = name.rpartition(".")
            setattr(dit.get_submodule(parent_name), child, module.base)


def set_unfolded_branch(dit: torch.nn.Module, branch: int) -> None:
    """Gate branches 0 and `branch` on, all others off, in a DiT prepared by `attach_unfolded`."""
    for module in dit.modules():
        if isinstance(module, MixtureLoRALinear):
            module.gates.zero_()
            module.gates[0] = 1
            module.gates[branch] = 1
