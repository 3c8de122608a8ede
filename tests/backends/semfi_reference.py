"""SemFi's sampling as its authors' code does it, written plainly for the golden test.

Written from hyj542682306/Semantic-Frame-Interpolation: `src/pipelines/wan_fi_custom.py` (the pipeline:
`encode_image`, `__call__`, `tensor2video`), `src/models/wan_video_dit.py` (the DiT with its Mixture-of-LoRA),
`src/schedulers/flow_match.py` (FlowMatchScheduler(shift=5, sigma_min=0, extra_one_step=True)) and
`src/pipelines/base.py` (`preprocess_image`, `generate_noise`), and the demo script (CLIP loaded in float32,
everything else in bf16, the checkpoint loaded into the DiT non-strictly).

Nothing here imports semfi_batch. The DiT is a plain function over the state dict read from the shard files:
every adapted layer computes its base output plus branch 0 plus all six bucket branches, the inactive ones
multiplied by 0.0, in bf16, in the reference's order. The encoders (UMT5, CLIP ViT-H, Wan VAE) are diffsynth's
classes, which are the reference's own copies of Wan's code; they are built and loaded here from the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

DTYPE = torch.bfloat16
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --- the DiT (src/models/wan_video_dit.py) ----------------------------------------------------------------
def sinusoidal_embedding_1d(dim, position):
    sinusoid = torch.outer(
        position.type(torch.float64),
        torch.pow(10000, -torch.arange(dim // 2, dtype=torch.float64, device=position.device).div(dim // 2)),
    )
    x = torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)
    return x.to(position.dtype)


def precompute_freqs_cis(dim, end=1024, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].double() / dim))
    freqs = torch.outer(torch.arange(end, device=freqs.device), freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def precompute_freqs_cis_3d(dim, end=1024, theta=10000.0):
    return (
        precompute_freqs_cis(dim - 2 * (dim // 3), end, theta),
        precompute_freqs_cis(dim // 3, end, theta),
        precompute_freqs_cis(dim // 3, end, theta),
    )


def rope_apply(x, freqs, num_heads):
    x = rearrange(x, "b s (n d) -> b s n d", n=num_heads)
    x_out = torch.view_as_complex(x.to(torch.float64).reshape(x.shape[0], x.shape[1], x.shape[2], -1, 2))
    x_out = torch.view_as_real(x_out * freqs).flatten(2)
    return x_out.to(x.dtype)


def attention(q, k, v, num_heads):
    q, k, v = (rearrange(t, "b s (n d) -> b n s d", n=num_heads) for t in (q, k, v))
    x = F.scaled_dot_product_attention(q, k, v)
    return rearrange(x, "b n s d -> b s (n d)", n=num_heads)


class ReferenceDiT:
    """WanModel(MoL=True).forward over a bf16 state dict holding the base weights and the MoL keys."""

    def __init__(self, sd: dict[str, torch.Tensor], num_heads: int, freq_dim: int, patch_size=(1, 2, 2), eps=1e-6):
        self.sd, self.num_heads, self.freq_dim, self.patch_size, self.eps = sd, num_heads, freq_dim, patch_size, eps
        self.dim = sd["patch_embedding.weight"].shape[0]
        self.num_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
        self.freqs = precompute_freqs_cis_3d(self.dim // num_heads)

    def linear(self, x, name):
        return F.linear(x, self.sd[f"{name}.weight"], self.sd[f"{name}.bias"])

    def lora(self, x, prefix, j):  # LoRALayer: lora_B(lora_A(x)) * (alpha / rank), alpha = rank = 16
        return self.linear(self.linear(x, f"{prefix}.{j}.lora_A"), f"{prefix}.{j}.lora_B") * (16 / 16)

    def mol(self, x, base, prefix, spec_idx):
        y = self.linear(x, base) + self.lora(x, prefix, 0)
        for idx in range(1, 7):
            y = y + self.lora(x, prefix, idx) * (1.0 if idx == spec_idx else 0.0)
        return y

    def rms_norm(self, x, name):
        dtype = x.dtype
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)).to(dtype) * self.sd[f"{name}.weight"]

    def self_attn(self, x, freqs, i, spec):
        p, lp = f"blocks.{i}.self_attn", f"blocks.{i}.self_attn.lora_"
        q = self.rms_norm(self.mol(x, f"{p}.q", lp + "q", spec), f"{p}.norm_q")
        k = self.rms_norm(self.mol(x, f"{p}.k", lp + "k", spec), f"{p}.norm_k")
        v = self.mol(x, f"{p}.v", lp + "v", spec)
        x = attention(rope_apply(q, freqs, self.num_heads), rope_apply(k, freqs, self.num_heads), v, self.num_heads)
        return self.mol(x, f"{p}.o", lp + "o", spec)

    def cross_attn(self, x, y, i, spec):
        p, lp = f"blocks.{i}.cross_attn", f"blocks.{i}.cross_attn.lora_"
        img, ctx = y[:, :257], y[:, 257:]
        q = self.rms_norm(self.mol(x, f"{p}.q", lp + "q", spec), f"{p}.norm_q")
        k = self.rms_norm(self.mol(ctx, f"{p}.k", lp + "k", spec), f"{p}.norm_k")
        v = self.mol(ctx, f"{p}.v", lp + "v", spec)
        x = attention(q, k, v, self.num_heads)
        k_img = self.rms_norm(self.linear(img, f"{p}.k_img"), f"{p}.norm_k_img")
        v_img = self.linear(img, f"{p}.v_img")
        x = x + attention(q, k_img, v_img, self.num_heads)
        return self.mol(x, f"{p}.o", lp + "o", spec)

    def block(self, x, context, t_mod, freqs, i, spec):
        sd, dim = self.sd, self.dim
        mod = sd[f"blocks.{i}.modulation"].to(dtype=t_mod.dtype) + t_mod
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        input_x = F.layer_norm(x, (dim,), eps=self.eps) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * self.self_attn(input_x, freqs, i, spec)
        norm3 = F.layer_norm(x, (dim,), sd[f"blocks.{i}.norm3.weight"], sd[f"blocks.{i}.norm3.bias"], self.eps)
        x = x + self.cross_attn(norm3, context, i, spec)
        input_x = F.layer_norm(x, (dim,), eps=self.eps) * (1 + scale_mlp) + shift_mlp
        ffn_0 = self.mol(input_x, f"blocks.{i}.ffn.0", f"blocks.{i}.lora_ffn_0", spec)
        ffn_1 = F.gelu(ffn_0, approximate="tanh")
        ffn_2 = self.mol(ffn_1, f"blocks.{i}.ffn.2", f"blocks.{i}.lora_ffn_2", spec)
        return x + gate_mlp * ffn_2

    def __call__(self, x, timestep, context, spec_idx, clip_feature, y):
        sd, dim = self.sd, self.dim
        t = self.linear(F.silu(self.linear(sinusoidal_embedding_1d(self.freq_dim, timestep), "time_embedding.0")),
                        "time_embedding.2")  # fmt: skip
        t_mod = self.linear(F.silu(t), "time_projection.1").unflatten(1, (6, dim))
        context = self.linear(F.gelu(self.linear(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")
        x = torch.cat([x, y], dim=1)
        c = F.layer_norm(clip_feature, (1280,), sd["img_emb.proj.0.weight"], sd["img_emb.proj.0.bias"])
        c = self.linear(F.gelu(self.linear(c, "img_emb.proj.1")), "img_emb.proj.3")
        c = F.layer_norm(c, (dim,), sd["img_emb.proj.4.weight"], sd["img_emb.proj.4.bias"])
        context = torch.cat([c, context], dim=1)
        x = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=self.patch_size)
        f, h, w = x.shape[2:]
        x = rearrange(x, "b c f h w -> b (f h w) c").contiguous()
        freqs = torch.cat([
            self.freqs[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
            self.freqs[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
            self.freqs[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
        ], dim=-1).reshape(f * h * w, 1, -1)  # fmt: skip
        for i in range(self.num_layers):
            x = self.block(x, context, t_mod, freqs, i, spec_idx)
        shift, scale = (sd["head.modulation"].to(dtype=t.dtype) + t).chunk(2, dim=1)
        x = self.linear(F.layer_norm(x, (dim,), eps=self.eps) * (1 + scale) + shift, "head.head")
        px, py, pz = self.patch_size
        return rearrange(x, "b (f h w) (x y z c) -> b c (f x) (h y) (w z)", f=f, h=h, w=w, x=px, y=py, z=pz)


# --- the pipeline (src/pipelines/wan_fi_custom.py) ---------------------------------------------------------
def get_spec_idx(frame):
    for limit, idx in ((7, 1), (13, 2), (25, 3), (49, 4), (73, 5)):
        if frame <= limit:
            return idx
    return 6


def preprocess_image(image: Image.Image) -> torch.Tensor:
    return torch.Tensor(np.array(image, dtype=np.float32) * (2 / 255) - 1).permute(2, 0, 1).unsqueeze(0)


def clip_encode_image(clip, image: torch.Tensor) -> torch.Tensor:
    size = (clip.image_size,) * 2
    x = F.interpolate(image, size=size, mode="bicubic", align_corners=False)
    x = x.mul_(0.5).add_(0.5)
    mean = torch.as_tensor(CLIP_MEAN, dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor(CLIP_STD, dtype=x.dtype).view(-1, 1, 1)
    x = (x - mean) / std
    x = x.to(next(iter(clip.visual.parameters())).dtype)
    return clip.visual(x, use_31_block=True)


class ReferencePipeline:
    """CustomWanFrameInterpolationPipeline.__call__ on the CPU (the reference runs it on cuda)."""

    def __init__(self, dit: ReferenceDiT, text_encoder, tokenizer, clip, vae, shift: float = 5.0):
        self.dit, self.text_encoder, self.tokenizer, self.clip, self.vae = dit, text_encoder, tokenizer, clip, vae
        self.shift = shift

    def encode_prompt(self, prompt):
        ids, mask = self.tokenizer(prompt, return_mask=True, add_special_tokens=True)
        seq_lens = mask.gt(0).sum(dim=1).long()
        emb = self.text_encoder(ids, mask)
        for v in seq_lens:
            emb[:, v:] = 0
        return emb

    def encode_image(self, image_start, image_end, num_frames, height, width):
        image_start = preprocess_image(image_start.resize((width, height)))
        image_end = preprocess_image(image_end.resize((width, height)))
        clip_context = clip_encode_image(self.clip, image_start) + clip_encode_image(self.clip, image_end)
        msk = torch.ones(1, num_frames, height // 8, width // 8)
        msk[:, 1 : num_frames - 1] = 0
        msk = torch.concat([torch.repeat_interleave(msk[:, 0:1], repeats=4, dim=1), msk[:, 1:num_frames]], dim=1)
        msk = msk.view(1, msk.shape[1] // 4, 4, height // 8, width // 8).transpose(1, 2)[0]
        vae_input = torch.concat(
            [image_start.transpose(0, 1), torch.zeros(3, num_frames - 2, height, width), image_end.transpose(0, 1)],
            dim=1,
        )
        y = self.vae.encode([vae_input.to(dtype=DTYPE)], device="cpu")[0]  # untiled, as the reference
        y = torch.concat([msk, y]).unsqueeze(0)
        return {"clip_feature": clip_context.to(dtype=DTYPE), "y": y.to(dtype=DTYPE)}

    def sigmas(self, steps):
        sigmas = torch.linspace(1.0, 0.0, steps + 1)[:-1]
        return self.shift * sigmas / (1 + (self.shift - 1) * sigmas)

    @torch.no_grad()
    def __call__(self, prompt, negative_prompt, start: Image.Image, end: Image.Image, height, width, num_frames,
                 steps, cfg_scale, seed) -> list[np.ndarray]:  # fmt: skip
        if num_frames % 4 != 1:
            num_frames = (num_frames + 2) // 4 * 4 + 1
        sigmas = self.sigmas(steps)
        timesteps = sigmas * 1000
        generator = torch.Generator("cpu").manual_seed(seed)
        shape = (1, 16, (num_frames - 1) // 4 + 1, height // 8, width // 8)
        latents = torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32).to(dtype=DTYPE)
        posi = self.encode_prompt(prompt)
        nega = self.encode_prompt(negative_prompt) if cfg_scale != 1.0 else None
        image_emb = self.encode_image(start, end, num_frames, height, width)
        spec_idx = get_spec_idx(num_frames)
        for i, timestep in enumerate(timesteps):
            timestep = timestep.unsqueeze(0).to(dtype=DTYPE)
            pred_posi = self.dit(latents, timestep, posi, spec_idx, **image_emb)
            if cfg_scale != 1.0:
                pred_nega = self.dit(latents, timestep, nega, spec_idx, **image_emb)
                pred = pred_nega + cfg_scale * (pred_posi - pred_nega)
            else:
                pred = pred_posi
            sigma_next = sigmas[i + 1] if i + 1 < len(sigmas) else 0
            latents = latents + pred * (sigma_next - sigmas[i])
        frames = self.vae.decode(latents, device="cpu", tiled=True, tile_size=(30, 52), tile_stride=(15, 26))[0]
        frames = rearrange(frames, "C T H W -> T H W C")
        return list(((frames.float() + 1) * 127.5).clip(0, 255).cpu().numpy().astype(np.uint8))


def load_reference(models_dir: Path, ckpt: Path, text_cfg: dict, clip_cfg: dict, vae_dim: int, num_heads: int,
                   freq_dim: int) -> ReferencePipeline:  # fmt: skip
    """Build the reference pipeline from the model files (the demo script's loading, on the CPU)."""
    from diffsynth.models.wan_video_image_encoder import clip_xlm_roberta_vit_h_14
    from diffsynth.models.wan_video_text_encoder import HuggingfaceTokenizer, WanTextEncoder
    from diffsynth.models.wan_video_vae import VideoVAE_, WanVideoVAE
    from safetensors.torch import load_file

    root = Path(models_dir) / "Wan2.1-I2V-14B-720P"
    sd = {}
    for shard in sorted(root.glob("diffusion_pytorch_model-*.safetensors")):
        sd.update(load_file(str(shard)))
    lora = torch.load(ckpt, map_location="cpu", weights_only=True)
    sd.update(lora)  # load_state_dict(lora, strict=False) into the MoL DiT
    sd = {k: v.to(DTYPE) for k, v in sd.items()}
    dit = ReferenceDiT(sd, num_heads=num_heads, freq_dim=freq_dim)

    text = WanTextEncoder(**text_cfg)
    text.load_state_dict(torch.load(root / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True))
    text = text.to(DTYPE).eval()
    tokenizer = HuggingfaceTokenizer(name=str(root / "google/umt5-xxl"), seq_len=512, clean="whitespace")

    clip = clip_xlm_roberta_vit_h_14(pretrained=False, return_transforms=False, **clip_cfg)
    clip_sd = torch.load(root / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth", weights_only=True)
    visual = {k: v for k, v in clip_sd.items() if k.startswith("visual.")}
    missing, _ = clip.load_state_dict(visual, strict=False)
    assert not [k for k in missing if k.startswith("visual.")], missing
    clip = clip.to(torch.float32).eval()  # the demo loads CLIP in float32

    vae = WanVideoVAE(z_dim=16)
    vae.model = VideoVAE_(dim=vae_dim, z_dim=16).eval().requires_grad_(False)
    vae.model.load_state_dict(torch.load(root / "Wan2.1_VAE.pth", weights_only=True))
    vae = vae.to(DTYPE)
    return ReferencePipeline(dit, text, tokenizer, clip, vae)
