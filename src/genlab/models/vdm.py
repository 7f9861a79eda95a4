"""Video diffusion (after Ho et al. 2022): a motion predictor and a space-time UNet that generate and continue clips.

Two networks, as in Yang et al. 2022's residual video diffusion (RVD):

- the motion predictor (``video_motion.py``) moves the pixels of the last given frame along predicted flows, one
  per future frame, ``motion_horizon`` frames a pass (``condition``): a deterministic guess of the future that
  keeps the digits' strokes;
- the factorised space-time UNet (``video_unet.py``) sees a noisy clip, the given frames followed by the
  predictor's (``condition``) and a mask of which frames are given, and diffuses each frame's residual from the
  condition. In generation nothing is given, the condition is zero and the residual is the clip itself.

Earlier versions held the last given frame in place of the predictor's frames (and before that, gave the frames
alone); after 14 minutes of training their continuations were grainy blobs (SSIM 0.12 against copy-last's 0.62),
because the UNet had to learn to move the digits itself. The predictor learns the motion in minutes.

In training, each clip gives its first k frames, with k = 0 for a share ``model.p_free`` of clips (generation) and k
uniform in 1..T-1 otherwise (continuation, as in masked conditional video diffusion, Voleti et al. 2022). The loss is
the plain v-prediction MSE (Salimans & Ho 2022) on the frames not given, at timesteps drawn from a cosine schedule
(plain, because Min-SNR-γ weights, ``model.min_snr_gamma``, give the noisiest timesteps almost no weight), plus the
predictor's multi-scale MSE (``motion_loss``) on ``motion_windows`` windows of each clip; the UNet's condition is
computed without gradients, so each network learns from its own loss. EMA copies ("ema", "ema_motion") sample,
continue, evaluate and give the validation loss.

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
from genlab.models.video_motion import MotionNet, motion_loss, warp
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
    head: int = 16  # width of the full-resolution block after the patches (0 = none; see video_unet.Head)
    layers_per_block: int = 1  # (ResNet, temporal conv) layers per level
    norm_groups: int = 16  # GroupNorm groups (every width must divide by it)
    attention_levels: int = 1  # lowest levels with attention across frames (the middle block always has it)
    timesteps: int = 1000  # diffusion steps T of training
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"  # cosine (Nichol & Dhariwal) or linear
    min_snr_gamma: float = 0.0  # Min-SNR-γ loss weights (Hang et al. 2023); 0 = plain v-MSE (see the docstring)
    ema_decay: float = 0.995  # EMA of the weights, warmed up as min(decay, (1 + step) / (10 + step))
    p_free: float = 0.4  # share of training clips given no frames (generation); the rest give their first 1..T-1
    sample_steps: int = 25  # DDIM steps in sample(), continue_clip(), previews and evaluation
    motion_horizon: int = 5  # frames the predictor moves ahead in one pass; later ones come from its own frames
    motion_widths: tuple[int, ...] = (32, 64, 128, 128)  # motion predictor width per level (full side first)
    motion_context: int = 5  # given frames the motion predictor reads (the latest ones)
    motion_windows: int = 8  # windows of each training clip the predictor learns from in a step

    limits: ClassVar[dict[str, str]] = {
        "widths": "[1, 4096]", "patch": "[1, 16]", "head": "[0, 4096]", "layers_per_block": "[1, 16]",
        "norm_groups": "[1, 4096]", "attention_levels": "[0, 16]", "timesteps": "[2, 100000]",
        "min_snr_gamma": "[0, 1000000]", "ema_decay": "[0, 1)", "p_free": "[0, 1]", "sample_steps": "[1, 100000]",
        "motion_horizon": "[1, 1000]", "motion_widths": "[1, 4096]", "motion_context": "[1, 1000]",
        "motion_windows": "[1, 1000]"}

    def validate(self) -> None:
        if not self.widths:
            raise ValueError("model.widths must be a non-empty list of widths")
        if not self.motion_widths:
            raise ValueError("model.motion_widths must be a non-empty list of widths")
        for key in ("widths", "motion_widths"):
            if any(w % self.norm_groups for w in getattr(self, key)):
                raise ValueError(f"every entry of model.{key} {list(getattr(self, key))} must divide by "
                                 f"model.norm_groups ({self.norm_groups})")
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
                                                 "model.motion_widths=[8, 16]", "model.motion_windows=2",
                                                 "model.head=8", "model.norm_groups=8",
                                                 "model.timesteps=100", "model.sample_steps=3",
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
        factor = max(factor, 2 ** (len(c.motion_widths) - 1))  # the predictor's levels too
        if side % factor:
            raise GenlabError(f"vdm with patch {c.patch}, {len(c.widths)} levels and {len(c.motion_widths)} motion "
                              f"levels needs a frame side divisible by {factor}; {side} is not: set data.size to a "
                              f"multiple of {factor}")
        self.shape_ = tuple(data.shape)  # (T, C, H, W)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = VideoUNet(channels=channels, frames=frames, widths=tuple(c.widths), patch=c.patch,
                             layers=c.layers_per_block, groups=c.norm_groups, attention_levels=c.attention_levels,
                             head=c.head)
            horizon = min(c.motion_horizon, frames - 1)
            motion = MotionNet(channels=channels, context=c.motion_context, horizon=horizon,
                               widths=tuple(c.motion_widths), groups=c.norm_groups)
        channels_last_convs(unet)
        channels_last_convs(motion)
        self.networks_ = {"unet": unet.train(), "motion": motion.train(),
                          "ema": copy.deepcopy(unet).requires_grad_(False).eval(),
                          "ema_motion": copy.deepcopy(motion).requires_grad_(False).eval()}
        self.noise_ = DDPMScheduler(**self._betas())  # the forward process q(x_t | x_0) used in training

    def _betas(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.config.timesteps, "beta_schedule": self.config.beta_schedule,
                "prediction_type": "v_prediction", "clip_sample": True, "clip_sample_range": 2.0,  # a change: [-2, 2]
                "timestep_spacing": "trailing"}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for k in ("min_snr_gamma", "ema_decay", "p_free", "sample_steps", "motion_windows"):
            arch.pop(k)  # training and sampling settings: they do not change what the weights are
        return {**arch, "widths": list(arch["widths"]), "motion_widths": list(arch["motion_widths"]),
                "shape": list(self.shape_)}

    def param_groups(self, weight_decay: float) -> dict[str, list[dict[str, Any]]]:
        nets = torch.nn.ModuleList([self.networks_["unet"], self.networks_["motion"]])
        return {"model": decay_groups(nets, weight_decay)}  # the EMA copies are not optimized

    # -- training -------------------------------------------------------------------------------------------------
    def condition(self, motion: MotionNet, x: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """What the UNet is given: each clip's first ``given`` (B,) frames of ``x`` (B, T, C, H, W), then the
        predictor's frames; zeros for a clip given none. The predictor moves the latest frame ``horizon`` frames
        ahead at a time, reading the latest ``motion_context`` frames, its own predictions included."""
        b, frames = x.shape[:2]
        pos = torch.arange(frames, device=x.device)
        k, horizon = self.config.motion_context, motion.horizon
        seq = x * (pos[None, :] < given[:, None]).to(x.dtype)[:, :, None, None, None]  # the given frames, then 0
        have = given.clone()  # (B,) frames known so far
        while True:
            rows = ((have < frames) & (given > 0)).nonzero()[:, 0]  # 1. clips with frames still to predict
            if not len(rows):
                break
            n = have[rows]
            context, real = latest(seq[rows], n, n, k)  # (b, K, C, H, W): every frame known so far may be read
            moved = warp(pick(seq[rows], (n - 1)[:, None])[:, 0], motion(context, real)).to(x.dtype)  # 2. (b, F, ...)
            ahead = pos[None, :] - n[:, None]  # (b, T): which of the moved frames each frame is
            fill = ((ahead >= 0) & (ahead < horizon))[:, :, None, None, None]
            placed = torch.where(fill, pick(moved, ahead.clamp(0, horizon - 1)), seq[rows])  # 3. into the clip
            seq = seq.index_put((rows,), placed)
            have = have.index_put((rows,), n + horizon)
        return seq

    def _errors(self, net: VideoUNet, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                given: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B,) v-prediction MSE of each clip over the frames it does not give; ``given``: (B,) frames given,
        ``cond`` (B, T, C, H, W) the UNet's condition."""
        frames = torch.arange(x.shape[1], device=x.device)
        mask = (frames[None, :] < given[:, None]).float()[:, :, None, None, None]  # (B, T, 1, 1, 1)
        r = x - cond  # 1. what the diffusion models: the residual from the predictor's frames (the clip, if none)
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
            with torch.no_grad():  # the UNet's condition: each network learns from its own loss
                cond = self.condition(self.networks_["motion"], x, given)  # (B, T, C, H, W)
            err = self._errors(self.networks_["unet"], x, t, noise, given, cond)  # (B,)
            moving = self._window_errors(self.networks_["motion"], x)  # (B * motion_windows,)
            loss = (err * self._weights(t)).mean() + moving.mean()
            return loss, {"train_loss": err.mean().detach(), "motion_loss": moving.mean().detach()}

        return [Phase("model", loss)]

    def _window_errors(self, motion: MotionNet, x: torch.Tensor) -> torch.Tensor:
        """(B * motion_windows,) the predictor's multi-scale MSE on windows of each clip: 2 to ``motion_context``
        frames read (all of them for half the windows), then one pass of ``horizon`` frames to predict.

        Several windows a clip make the predictor's share of a step cheap (it has no UNet to run) and give it many
        more examples than the UNet sees; a clip given a single frame has no motion to read, and is left out."""
        b, frames = x.shape[:2]
        k = min(self.config.motion_context, frames - 1)
        h = min(motion.horizon, frames - k)
        r = self.config.motion_windows
        start = torch.randint(0, frames - k - h + 1, (b, r), device=x.device)  # (B, R)
        win = pick(x, (start[:, :, None] + torch.arange(k + h, device=x.device)).flatten(1))  # (B, R (K+H), ...)
        win = win.reshape(b * r, k + h, *x.shape[2:])
        seen = torch.where(torch.rand(b * r, device=x.device) < 0.5, k,
                           torch.randint(2, k + 1, (b * r,), device=x.device))  # frames read, latest last
        end = torch.full((b * r,), k, device=x.device)
        context, real = latest(win, end, seen, self.config.motion_context)
        moved = warp(win[:, k - 1], motion(context, real))[:, :h]  # (B R, H, C, H, W)
        return motion_loss(moved, win[:, k:], torch.ones((b * r, h), device=x.device))

    @staticmethod
    def _chain_errors(x: torch.Tensor, cond: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """(B,) multi-scale MSE of the predictor's frames in ``cond`` (its passes chained) after the given ones;
        0 for a clip given fewer than two frames, whose motion cannot be read."""
        pos = torch.arange(x.shape[1], device=x.device)
        future = ((pos[None, :] >= given[:, None]) & (given[:, None] > 1)).float()  # (B, T)
        return motion_loss(cond, x, future)

    def after_step(self, step: int) -> None:
        ema_update(self.networks_["ema"], self.networks_["unet"], step, self.config.ema_decay)
        ema_update(self.networks_["ema_motion"], self.networks_["motion"], step, self.config.ema_decay)

    @torch.no_grad()
    def validation_loss(self, x) -> float:
        """EMA v-MSE at evenly spread timesteps plus the predictor's error; every other clip gives its first half
        (fixed noise)."""
        g = torch.Generator().manual_seed(VAL_SEED)
        offset = torch.rand((), generator=g)
        t = ((torch.arange(len(x)) + offset) * self.config.timesteps / len(x)).long().to(x.device)
        noise = torch.randn(x.shape, generator=g).to(x.device)
        given = (torch.arange(len(x), device=x.device) % 2) * (x.shape[1] // 2)  # 0, T/2, 0, T/2, ...
        cond = self.condition(self.networks_["ema_motion"], x, given)
        moving = self._chain_errors(x, cond, given).sum() / (given > 1).sum().clamp(min=1)
        return float(self._errors(self.networks_["ema"], x, t, noise, given, cond).mean() + moving)

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
        with eval_mode(self.networks_["ema"], self.networks_["ema_motion"]):
            losses = [self.validation_loss(x[i : i + 16].to(device)) * len(x[i : i + 16]) for i in range(0, len(x), 16)]
        return {**report, "val_loss": sum(losses) / len(x),
                "n_params": n_params(self.networks_["unet"], self.networks_["motion"]),
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
        """The ``frames`` frames after each clip of ``given`` (B, K, C, H, W) in [-1, 1]: (B, frames, C, H, W);
        ``steps=0`` gives the motion predictor's frames alone (no residual diffusion: deterministic)."""
        t_model = self.shape_[0]
        scheduler, g = self._scheduler(steps, predictor=True), seeded_generator(seed)
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

    def predict(self, given: torch.Tensor, frames: int) -> torch.Tensor:
        """The motion predictor's ``frames`` frames after each clip of ``given`` (B, K, C, H, W): ``extend`` with
        no diffusion steps, the deterministic part of the model (video_report scores it beside the samples)."""
        return self.extend(given, frames, steps=0)

    @torch.no_grad()
    def _denoise(self, x: torch.Tensor, window: torch.Tensor, context: int, scheduler: Any, what: str) -> torch.Tensor:
        """DDIM from noise ``x`` (B, T, C, H, W) given the first ``context`` frames of ``window``; on the CPU.
        With no scheduler (0 steps) the residual is zero: the predictor's frames."""
        net, motion, device = self.networks_["ema"], self.networks_["ema_motion"], self._device()
        mask = (torch.arange(x.shape[1]) < context).float()[None, :, None, None, None].to(device)  # (1, T, 1, 1, 1)
        chunks = range(0, len(x), SAMPLE_BATCH)
        out = []
        timesteps = scheduler.timesteps if scheduler is not None else []
        with eval_mode(net, motion), task(what, total=len(chunks) * max(1, len(timesteps))) as advance:
            for i in chunks:
                xs = x[i : i + SAMPLE_BATCH].to(device)  # (b, T, C, H, W)
                cond = self.condition(motion, window[i : i + SAMPLE_BATCH].to(device),
                                      torch.full((len(xs),), context, device=device))
                m = mask.expand(len(xs), -1, -1, -1, -1)
                if scheduler is None:
                    xs = torch.zeros_like(xs)
                    advance()
                for t in timesteps:
                    v = net(xs, t.expand(len(xs)).to(device), cond, m).float()  # 1. predict v at x_t
                    xs = scheduler.step(v, t, xs).prev_sample  # 2. x_t -> x_{t-1}
                    advance()
                xs = torch.where(mask.bool(), cond, cond + xs)  # 3. the predicted frame plus its residual
                out.append(xs.float().clamp(-1, 1).cpu())
        return torch.cat(out)

    def _scheduler(self, steps: int | None, *, predictor: bool = False) -> DDIMScheduler | None:
        """DDIM with ``steps`` steps; None for 0 steps where the predictor alone may answer (a continuation)."""
        steps = steps if steps is not None else self.config.sample_steps
        low = 0 if predictor else 1
        if not low <= steps <= self.config.timesteps:
            what = " (0: the motion predictor alone)" if predictor else " (a clip from nothing needs at least 1)"
            raise BadArgument("steps", f"must be between {low} and {self.config.timesteps}{what}, got {steps}")
        if steps == 0:
            return None
        scheduler = DDIMScheduler(**self._betas())
        scheduler.set_timesteps(steps)
        return scheduler


def pick(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Frames of each clip: ``x`` (B, T, C, H, W) at ``index`` (B, N) -> (B, N, C, H, W)."""
    return x.gather(1, index[:, :, None, None, None].expand(-1, -1, *x.shape[2:]))


def latest(x: torch.Tensor, end: torch.Tensor, seen: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the predictor reads: the ``slots`` frames of each clip ``x`` (B, T, C, H, W) before frame ``end`` (B,),
    the last of them in the last slot, those older than the ``seen`` (B,) latest (or before the clip) zeroed:
    (B, slots, C, H, W) and the (B, slots) mask of real frames."""
    src = end[:, None] - slots + torch.arange(slots, device=x.device)[None]  # (B, slots) frame indices
    real = (src >= (end - seen)[:, None]) & (src >= 0)
    return pick(x, src.clamp(min=0)) * real[:, :, None, None, None].to(x.dtype), real
