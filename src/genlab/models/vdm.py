"""Video diffusion (after Ho et al. 2022): one factorised space-time UNet that generates clips and continues them.

The network (``video_unet.py``) sees a noisy clip, the frames it is given (clean, the last one held in place of
every frame still to make: ``hold_last``) and a mask of which those are. What is diffused is each frame's change
from that held frame (the residual, as in Yang et al. 2022's residual video diffusion): a residual of zero is the
copy-last-frame baseline, so a continuation has to learn the motion, not the digits' appearance again. In generation
nothing is held and the residual is the clip itself. Two first versions diffused the frames themselves (with and
without Min-SNR weights) and both ignored their given frames after 15 minutes of training: their error at t = T - 1
was the same with another clip's frames given.

In training, each clip gives its first k frames, with k = 0 for a share ``model.p_free`` of clips (generation) and k
uniform in 1..T-1 otherwise (continuation, as in masked conditional video diffusion, Voleti et al. 2022). The loss is
the plain v-prediction MSE (Salimans & Ho 2022) on the frames not given, at timesteps drawn from a cosine schedule:
plain, because Min-SNR-γ weights (``model.min_snr_gamma``) give the noisiest timesteps almost no weight (2e-9 at
t = T - 1), and those are where a continuation must be read from the given frames. An EMA copy (network "ema")
samples, continues, evaluates and gives the validation loss.

Sampling runs DDIM (deterministic, ``model.sample_steps``) from diffusers' schedulers. Continuing a clip gives the
network its first frames and returns them unchanged followed by the new ones; a future longer than fits in one
window of T frames is made window by window, each conditioned on the latest frames.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from genlab.data.clips import MAX_FRAMES
from genlab.data.images import from_unit, to_unit
from genlab.data.video import VideoData
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.image import check_count
from genlab.modalities.video import Clips, Continuation, fit_clip
from genlab.models.base import Family, Phase, decay_groups
from genlab.models.video_unet import VideoUNet
from genlab.nets import channels_last_convs, ema_update, eval_mode, n_params, seeded_generator
from genlab.progress import task

VAL_SEED = 2024  # timesteps, noise and given frames of the validation loss: the same at every evaluation
PREVIEW_SEED = 0
SAMPLE_BATCH = 16  # clips denoised at once


@dataclass(frozen=True)
class VDMConfig:
    """The UNet's shape, the noise schedule, EMA and the training mix. Frames, size and channels come from the data."""

    widths: tuple[int, ...] = (64, 128, 128)  # UNet width at each level; each level after the first halves the side
    patch: int = 4  # frames enter as patch x patch patches: the first level works at side / patch
    layers_per_block: int = 1  # (ResNet, temporal conv) layers per level
    norm_groups: int = 16  # GroupNorm groups (every width must divide by it)
    attention_levels: int = 1  # lowest levels with attention across frames (the middle block always has it)
    timesteps: int = 1000  # diffusion steps T of training
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"  # cosine (Nichol & Dhariwal) or linear
    min_snr_gamma: float = 0.0  # Min-SNR-γ loss weights (Hang et al. 2023); 0 = plain v-MSE (see the docstring)
    ema_decay: float = 0.995  # EMA of the weights, warmed up as min(decay, (1 + step) / (10 + step))
    p_free: float = 0.4  # share of training clips given no frames (generation); the rest give their first 1..T-1
    sample_steps: int = 25  # DDIM steps in sample(), continue_clip(), previews and evaluation

    limits: ClassVar[dict[str, str]] = {
        "widths": "[1, 4096]", "patch": "[1, 16]", "layers_per_block": "[1, 16]", "norm_groups": "[1, 4096]",
        "attention_levels": "[0, 16]", "timesteps": "[2, 100000]", "min_snr_gamma": "[0, 1000000]",
        "ema_decay": "[0, 1)", "p_free": "[0, 1]", "sample_steps": "[1, 100000]"}

    def validate(self) -> None:
        if not self.widths:
            raise ValueError("model.widths must be a non-empty list of widths")
        if any(w % self.norm_groups for w in self.widths):
            raise ValueError(f"every entry of model.widths {list(self.widths)} must divide by model.norm_groups "
                             f"({self.norm_groups})")
        if self.attention_levels > len(self.widths):
            raise ValueError(f"model.attention_levels ({self.attention_levels}) is more than the "
                             f"{len(self.widths)} levels of model.widths")
        if not self.sample_steps <= self.timesteps:
            raise ValueError(f"model.sample_steps must be between 1 and model.timesteps ({self.timesteps}), "
                             f"got {self.sample_steps}")


class VDM(Family):
    name = "vdm"
    modality = "video"
    data_interface = "clips"
    cites = ("Ho et al. 2022, Video Diffusion Models; Voleti et al. 2022, MCVD: Masked Conditional Video Diffusion; "
             "Yang et al. 2022, Diffusion Probabilistic Modeling for Video Generation (residuals); "
             "Song et al. 2021, Denoising Diffusion Implicit Models")
    hints = ("genlab continue {run} --held-out 0 --frames 10",)  # a held-out clip: works on any run
    Config = VDMConfig
    example: ClassVar[dict[str, Any]] = {"set": ["data.frames=4", "data.size=32", "model.widths=[16, 32]",
                                                 "model.norm_groups=8", "model.timesteps=100", "model.sample_steps=3",
                                                 "train.batch_size=4", "train.warmup_steps=5"]}
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-3, "min_lr": 1e-4, "weight_decay": 0.0, "batch_size": 8, "max_steps": 1000, "warmup_steps": 50,
        "eval_every": 250, "eval_batches": 4,
    }

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: VideoData, *, seed: int) -> None:
        c = self.config
        frames, channels, side, _ = data.shape
        factor = c.patch * 2 ** (len(c.widths) - 1)  # the patch, then every level but the last halves the side
        if side % factor:
            raise GenlabError(f"vdm with patch {c.patch} and {len(c.widths)} levels needs a frame side divisible by "
                              f"{factor}; {side} is not: set data.size to a multiple of {factor}")
        self.shape_ = tuple(data.shape)  # (T, C, H, W)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = VideoUNet(channels=channels, frames=frames, widths=tuple(c.widths), patch=c.patch,
                             layers=c.layers_per_block, groups=c.norm_groups, attention_levels=c.attention_levels)
        channels_last_convs(unet)
        self.networks_ = {"unet": unet.train(), "ema": copy.deepcopy(unet).requires_grad_(False).eval()}
        self.noise_ = DDPMScheduler(**self._betas())  # the forward process q(x_t | x_0) used in training

    def _betas(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.config.timesteps, "beta_schedule": self.config.beta_schedule,
                "prediction_type": "v_prediction", "clip_sample": True, "clip_sample_range": 2.0,  # a change: [-2, 2]
                "timestep_spacing": "trailing"}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for k in ("min_snr_gamma", "ema_decay", "p_free", "sample_steps"):
            arch.pop(k)  # training and sampling settings: they do not change what the weights are
        return {**arch, "widths": list(arch["widths"]), "shape": list(self.shape_)}

    def param_groups(self, weight_decay: float) -> dict[str, list[dict[str, Any]]]:
        return {"model": decay_groups(self.networks_["unet"], weight_decay)}  # the EMA copy is not optimized

    # -- training -------------------------------------------------------------------------------------------------
    def _errors(self, net: VideoUNet, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                given: torch.Tensor) -> torch.Tensor:
        """(B,) v-prediction MSE of each clip over the frames it does not give; ``given``: (B,) frames given."""
        frames = torch.arange(x.shape[1], device=x.device)
        mask = (frames[None, :] < given[:, None]).float()[:, :, None, None, None]  # (B, T, 1, 1, 1)
        cond = hold_last(x, given)  # (B, T, C, H, W) the given frames, the last one held
        r = x - cond  # 1. what the diffusion models: the change since the last given frame (the clip, if none)
        x_t = self.noise_.add_noise(r, noise, t)  # 2. noised
        v = self.noise_.get_velocity(r, noise, t)  # the target: sqrt(a_t) eps - sqrt(1 - a_t) r
        pred = net(x_t, t, cond, mask)
        free = 1 - mask
        return ((pred.float() - v).pow(2) * free).sum((1, 2, 3, 4)) / (free.sum((1, 2, 3, 4)) * x[0, 0].numel())

    def _weights(self, t: torch.Tensor) -> torch.Tensor:
        """Min-SNR-γ for v-prediction: min(SNR, γ) / (SNR + 1)."""
        gamma = self.config.min_snr_gamma
        if not gamma:
            return torch.ones(len(t), device=t.device)
        a = self.noise_.alphas_cumprod.to(t.device)[t]
        snr = a / (1 - a)
        return snr.clamp(max=gamma) / (snr + 1)

    def phases(self, data: VideoData) -> list[Phase]:
        def loss(x):
            b, frames = x.shape[:2]  # x: (B, T, C, H, W) in [-1, 1]
            # noise, timesteps and given frames come from the loop's RNG: seeded, checkpointed, resumed exactly
            noise = torch.randn_like(x)
            t = torch.randint(0, self.config.timesteps, (b,), device=x.device)
            given = torch.randint(1, frames, (b,), device=x.device)
            given = torch.where(torch.rand(b, device=x.device) < self.config.p_free, 0, given)  # (B,)
            err = self._errors(self.networks_["unet"], x, t, noise, given)  # (B,)
            return (err * self._weights(t)).mean(), {"train_loss": err.mean().detach()}

        return [Phase("model", loss)]

    def after_step(self, step: int) -> None:
        ema_update(self.networks_["ema"], self.networks_["unet"], step, self.config.ema_decay)

    @torch.no_grad()
    def validation_loss(self, x) -> float:
        """EMA v-MSE at evenly spread timesteps; every other clip gives its first half (fixed noise)."""
        g = torch.Generator().manual_seed(VAL_SEED)
        offset = torch.rand((), generator=g)
        t = ((torch.arange(len(x)) + offset) * self.config.timesteps / len(x)).long().to(x.device)
        noise = torch.randn(x.shape, generator=g).to(x.device)
        given = (torch.arange(len(x), device=x.device) % 2) * (x.shape[1] // 2)  # 0, T/2, 0, T/2, ...
        return float(self._errors(self.networks_["ema"], x, t, noise, given).mean())

    def preview(self, step: int, folder: Path) -> None:
        from genlab.sample.video import sheet_png

        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"step-{step}.png").write_bytes(sheet_png(np.asarray(self.sample(4, seed=PREVIEW_SEED))))

    def evaluate(self, data: VideoData, **kwargs: Any) -> dict[str, Any]:
        """video_report's figures (DDIM, EMA weights) and the validation loss on held-out clips."""
        from genlab.evaluate.video import video_report

        report = video_report(self, data, **kwargs)
        x = data.clips("val", np.arange(min(64, data.counts["val"])))
        device = self._device()
        with eval_mode(self.networks_["ema"]):
            losses = [self.validation_loss(x[i : i + 16].to(device)) * len(x[i : i + 16]) for i in range(0, len(x), 16)]
        return {**report, "val_loss": sum(losses) / len(x), "n_params": n_params(self.networks_["unet"]),
                "sampler": f"ddim, {self.config.sample_steps} steps"}

    # -- sampling -------------------------------------------------------------------------------------------------
    def sample(self, n: int = 1, *, seed: int | None = None, steps: int | None = None) -> Clips:
        """``n`` clips as uint8 (n, T, C, H, W); the same seed gives the same clips."""
        check_count("n", n)
        scheduler = self._scheduler(steps)
        g = seeded_generator(seed)
        noise = torch.randn((n, *self.shape_), generator=g)  # (n, T, C, H, W) x_T ~ N(0, I)
        empty = torch.zeros_like(noise)
        return Clips(from_unit(self._denoise(noise, empty, 0, scheduler, f"sampling {n} clips")))

    def continue_clip(self, clip: np.ndarray, frames: int, *, n: int = 1, given: int | None = None,
                      seed: int | None = None, steps: int | None = None) -> Continuation:
        """``n`` futures of ``frames`` frames after the first ``given`` frames of ``clip`` (uint8 (K, C, H, W),
        resized to the model's frames when it differs): uint8 (n, given + frames, C, H, W), the given frames unchanged.

        ``given`` defaults to T - frames (at least 1, at most T - 1), capped by the clip's length."""
        check_count("frames", frames)
        check_count("n", n)
        if frames > MAX_FRAMES:
            raise BadArgument("frames", f"must be at most {MAX_FRAMES:,}, got {frames:,}")
        t_model = self.shape_[0]
        k = given if given is not None else max(1, min(t_model - frames, len(clip), t_model - 1))
        check_count("given", k)
        prompt = fit_clip(clip, self.shape_[1:], need=k)[:k]  # uint8 (k, C, H, W)
        x = to_unit(prompt)[None].expand(n, -1, -1, -1, -1)  # (n, k, C, H, W)
        future = self.extend(x, frames, seed=seed, steps=steps)
        out = np.concatenate([np.repeat(prompt[None], n, 0), from_unit(future)], 1)
        return Continuation(out, given=k)

    def extend(self, given: torch.Tensor, frames: int, *, seed: int | None = None,
               steps: int | None = None) -> torch.Tensor:
        """The ``frames`` frames after each clip of ``given`` (B, K, C, H, W) in [-1, 1]: (B, frames, C, H, W)."""
        t_model = self.shape_[0]
        scheduler, g = self._scheduler(steps), seeded_generator(seed)
        have, made = given, []
        while sum(len(m[0]) for m in made) < frames:
            remaining = frames - sum(len(m[0]) for m in made)
            context = min(have.shape[1], max(t_model - remaining, t_model // 2), t_model - 1)  # frames given
            window = torch.zeros((len(given), *self.shape_))  # (B, T, C, H, W): the context, then the new frames
            window[:, :context] = have[:, -context:]
            noise = torch.randn(window.shape, generator=g)
            out = self._denoise(noise, window, context, scheduler, f"continuing {len(given)} clip(s)")
            new = out[:, context : context + remaining]
            made.append(new)
            have = torch.cat([have, new], 1)
        return torch.cat(made, 1)

    # -- sampling helpers -----------------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.networks_["ema"].parameters()).device

    @torch.no_grad()
    def _denoise(self, x: torch.Tensor, window: torch.Tensor, context: int, scheduler: Any, what: str) -> torch.Tensor:
        """DDIM from noise ``x`` (B, T, C, H, W) given the first ``context`` frames of ``window``; on the CPU."""
        net, device = self.networks_["ema"], self._device()
        mask = (torch.arange(x.shape[1]) < context).float()[None, :, None, None, None].to(device)  # (1, T, 1, 1, 1)
        chunks = range(0, len(x), SAMPLE_BATCH)
        out = []
        with eval_mode(net), task(what, total=len(chunks) * len(scheduler.timesteps)) as advance:
            for i in chunks:
                xs = x[i : i + SAMPLE_BATCH].to(device)  # (b, T, C, H, W)
                cond = hold_last(window[i : i + SAMPLE_BATCH].to(device), torch.full((len(xs),), context))
                m = mask.expand(len(xs), -1, -1, -1, -1)
                for t in scheduler.timesteps:
                    v = net(xs, t.expand(len(xs)).to(device), cond, m).float()  # 1. predict v at x_t
                    xs = scheduler.step(v, t, xs).prev_sample  # 2. x_t -> x_{t-1}
                    advance()
                xs = torch.where(mask.bool(), cond, cond + xs)  # 3. the held frame plus its change; given as given
                out.append(xs.float().clamp(-1, 1).cpu())
        return torch.cat(out)

    def _scheduler(self, steps: int | None) -> DDIMScheduler:
        steps = steps if steps is not None else self.config.sample_steps
        if not 1 <= steps <= self.config.timesteps:
            raise BadArgument("steps", f"must be between 1 and {self.config.timesteps}, got {steps}")
        scheduler = DDIMScheduler(**self._betas())
        scheduler.set_timesteps(steps)
        return scheduler


def hold_last(x: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """What the network is given: each clip's first ``given`` frames, then its last given frame held in place of
    every frame to predict (zeros when none is given): (B, T, C, H, W), ``given`` (B,).

    Holding the last frame puts the digits where they were at every future frame's own pixels, so the network
    learns the motion locally instead of carrying appearance across frames through attention alone.
    """
    frames = torch.arange(x.shape[1], device=x.device)
    last = (given.to(x.device) - 1).clamp(min=0)  # (B,)
    idx = torch.minimum(frames[None, :], last[:, None])  # (B, T) frame held at each position
    held = x.gather(1, idx[:, :, None, None, None].expand(-1, -1, *x.shape[2:]))
    return held * (given.to(x.device) > 0).to(x.dtype)[:, None, None, None, None]
