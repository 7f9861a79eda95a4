"""The motion predictor of ``vdm``: where each pixel of the last given frame goes next (a flow per future frame).

A small full-resolution UNet of diffusers' ``ResnetBlock2D`` reads the last ``context`` given frames (and two
coordinate channels, so that bounces off the frame's edges can depend on where a digit is) and predicts, for each of
the next ``horizon`` frames, a flow: how far each pixel of the last given frame moves. ``warp`` splats every pixel
there (forward, bilinear), so the predicted frames keep the digits' own strokes and only move them, as in Liu et
al. (2017)'s deep voxel flow. A network that had to redraw the digits from its features (the factorised UNet alone,
and a 2D UNet with frames as channels) learnt a blurred haze in the same minutes.

The predictor learns from the multi-scale MSE of its frames (``motion_loss``): the frames average-pooled by 2, 4
and 8 are compared too, weighted as sums, so that a digit several pixels away still pulls its flow the right way.
It runs in fp32: in a trial under bf16 autocast (and without gradient clipping) its frames came out blank.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D

FLOW_GAIN = 8.0  # pixels per unit of the network's output: a digit moves 3.6 px a frame in moving-digits
POOLS = (1, 2, 4, 8)  # scales of motion_loss (average-pooled, weighted by the pool's area)


class MotionNet(nn.Module):
    """(B, K, C, H, W) last given frames and (B, K) mask of which are real -> (B, horizon, 2, H, W) flows (px)."""

    def __init__(self, *, channels: int, context: int, horizon: int, widths: tuple[int, ...], groups: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.conv_in = nn.Conv2d(context * (channels + 1) + 2, widths[0], 3, padding=1)
        self.down, self.downsamplers = nn.ModuleList(), nn.ModuleList()
        c_in = widths[0]
        for i, width in enumerate(widths):
            self.down.append(ResnetBlock2D(in_channels=c_in, out_channels=width, temb_channels=None, groups=groups))
            self.downsamplers.append(Downsample2D(width, use_conv=True) if i < len(widths) - 1 else nn.Identity())
            c_in = width
        self.up, self.upsamplers = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(widths))):
            self.up.append(ResnetBlock2D(in_channels=c_in + widths[i], out_channels=widths[i], temb_channels=None,
                                         groups=groups))
            self.upsamplers.append(Upsample2D(widths[i], use_conv=True) if i > 0 else nn.Identity())
            c_in = widths[i]
        self.conv_out = nn.Conv2d(widths[0], 2 * horizon, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # no motion at first: the copy-last-frame baseline
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast(frames.device.type, enabled=False):  # see the module's docstring
            return self._flows(frames.float(), mask)

    def _flows(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, k, c, height, width = frames.shape
        planes = mask[:, :, None, None].to(frames.dtype).expand(b, k, height, width)
        h = torch.cat([frames.reshape(b, k * c, height, width), planes, grid(height, width, frames)[None]
                       .permute(0, 3, 1, 2).expand(b, -1, -1, -1)], 1)  # (B, K(C+1)+2, H, W)
        h = self.conv_in(h)
        skips = []
        for block, down in zip(self.down, self.downsamplers):
            h = block(h, None)
            skips.append(h)
            h = down(h)
        for block, up in zip(self.up, self.upsamplers):
            h = up(block(torch.cat([h, skips.pop()], 1), None))
        return self.conv_out(h).float().reshape(b, self.horizon, 2, height, width) * FLOW_GAIN


def grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(H, W, 2) coordinates (x, y) of each pixel, in [-1, 1]."""
    ys = torch.linspace(-1, 1, height, device=like.device)
    xs = torch.linspace(-1, 1, width, device=like.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).to(like.dtype)


def warp(frame: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """``frame`` (B, C, H, W) in [-1, 1] with each pixel moved along its flow (B, F, 2, H, W), in pixels, once per
    flow: (B, F, C, H, W). Forward splatting: every pixel's brightness above black is spread bilinearly over the
    four pixels around where it lands and the frame is clamped to [-1, 1].

    Splatting moves what is there and cannot make it vanish. A backward warp (each output pixel reads the frame
    somewhere) learnt to read the black background for digits it could not place, and so blanked its predictions:
    an empty frame is a safe guess in MSE and scores well in SSIM. A pixel that lands outside the frame is lost.
    """
    b, f, _, height, width = flows.shape
    c = frame.shape[1]
    light = ((frame.float() + 1) / 2).reshape(b, 1, c, height * width).expand(b, f, c, height * width)
    yy, xx = torch.meshgrid(torch.arange(height, device=flows.device), torch.arange(width, device=flows.device),
                            indexing="ij")
    x = xx.float() + flows[:, :, 0].float()  # (B, F, H, W) where each pixel lands
    y = yy.float() + flows[:, :, 1].float()
    x0, y0 = x.floor(), y.floor()
    out = torch.zeros((b, f, c, height * width), device=flows.device)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # the four pixels around the landing point
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - (x - xi).abs()) * (1 - (y - yi).abs())  # bilinear: (B, F, H, W)
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long().flatten(2)  # (B, F, HW)
        share = (weight * inside).flatten(2)[:, :, None]  # (B, F, 1, HW)
        out = out.scatter_add(3, index[:, :, None].expand(-1, -1, c, -1), light * share)
    return (out.clamp(max=1) * 2 - 1).reshape(b, f, c, height, width)


def motion_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B,) MSE of predicted frames (B, T, C, H, W) against the truth, summed over ``POOLS`` average-pooled scales,
    over the frames where ``weight`` (B, T) is 1 (the frames to predict)."""
    b, t = pred.shape[:2]
    err = torch.zeros(b, device=pred.device)
    for s in POOLS:
        p, y = pred.flatten(0, 1).float(), target.flatten(0, 1).float()
        if s > 1:
            p, y = F.avg_pool2d(p, s), F.avg_pool2d(y, s)
        err = err + s * s * ((p - y).pow(2).mean((1, 2, 3)).reshape(b, t) * weight).sum(1)  # as sum-pooled
    return err / weight.sum(1).clamp(min=1)
