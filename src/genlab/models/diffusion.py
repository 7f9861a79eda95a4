"""Diffusion: DDPM (Ho et al. 2020) with diffusers' ``UNet2DModel`` and schedulers, trained from scratch.

The UNet learns to predict the noise in ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` (MSE on eps, Min-SNR-γ weights)
at timesteps drawn uniformly from the ``model.timesteps`` of one beta schedule. An EMA copy of the UNet (network
"ema") is what samples, evaluates and is measured by the validation loss; only "unet" is optimized. Sampling runs
DDPM (every step, stochastic) or DDIM (Song et al. 2021; e.g. 50 steps, deterministic), both from the same betas.

Class conditioning (``model.conditional``) adds a label embedding with one extra "null" class; training replaces a
label by it with probability ``model.label_dropout``, so sampling can use classifier-free guidance (Ho & Salimans
2022): ``eps = eps_null + guidance * (eps_label - eps_null)``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler, UNet2DModel

from genlab.data.images import ImageData, fit_image, from_unit
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.image import Images, Interpolation, check_count, check_strength, class_labels
from genlab.models.base import Family, Phase, decay_groups
from genlab.nets import channels_last_convs, ema_update, eval_mode, n_params, seeded_generator, slerp
from genlab.progress import task

VAL_SEED = 2024  # timesteps and noise of the validation loss: the same at every evaluation
PREVIEW_SEED = 0  # the preview grids share their noise, so successive grids show the same samples improving
SAMPLE_BATCH = 250  # images denoised at once (memory stays small at any n)


@dataclass(frozen=True)
class DiffusionConfig:
    """The UNet's shape, the noise schedule, EMA and conditioning. Image size and channels come from the data."""

    channels: tuple[int, ...] = (32, 64, 64)  # UNet width at each level; each level after the first halves the side
    layers_per_block: int = 1  # ResNet blocks per level on the way down (the way up has one more)
    norm_groups: int = 8  # GroupNorm groups (every entry of channels must divide by it)
    attention: bool = True  # self-attention in the middle block, at the lowest resolution (cheap there)
    timesteps: int = 1000  # diffusion steps T: training draws t in [0, T); DDPM sampling takes all of them
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "linear"  # linear (DDPM) or cosine (Nichol & Dhariwal)
    min_snr_gamma: float = 5.0  # Min-SNR-γ loss weights (Hang et al. 2023; faster training); 0 = plain MSE
    ema_decay: float = 0.999  # EMA of the weights, warmed up as min(decay, (1 + step) / (10 + step))
    conditional: bool = False  # learn p(x | class) from the dataset's labels
    label_dropout: float = 0.1  # conditional: chance a training label becomes "null" (0 = no guidance possible)
    guidance: float = 1.0  # conditional: default guidance scale (1 = plain conditional; >1 needs a well-trained model)
    sample_steps: int = 50  # default DDIM steps in sample(), previews and evaluation

    limits: ClassVar[dict[str, str]] = {
        "channels": "[1, 4096]", "layers_per_block": "[1, 64]", "norm_groups": "[1, 4096]", "timesteps": "[2, 100000]",
        "min_snr_gamma": "[0, 1000000]", "ema_decay": "[0, 1)", "label_dropout": "[0, 1)", "guidance": "[0, 100]",
        "sample_steps": "[1, 100000]"}

    def validate(self) -> None:
        if not self.channels:
            raise ValueError("model.channels must be a non-empty list of widths")
        if any(c % self.norm_groups for c in self.channels):
            raise ValueError(f"every entry of model.channels {list(self.channels)} must divide by "
                             f"model.norm_groups ({self.norm_groups})")
        if not self.sample_steps <= self.timesteps:
            raise ValueError(f"model.sample_steps must be between 1 and model.timesteps ({self.timesteps}), "
                             f"got {self.sample_steps}")


class Diffusion(Family):
    name = "diffusion"
    modality = "image"
    data_interface = "images"
    cites = ("Ho et al. 2020, Denoising Diffusion Probabilistic Models; "
             "Song et al. 2021, Denoising Diffusion Implicit Models")
    hints = ('genlab interpolate {run} --steps 8',)  # commands that work on any of its runs
    export_hint = "diffusers.DiffusionPipeline.from_pretrained('{path}') (class-conditional: trust_remote_code=True)"
    export_usage = ("from diffusers import DiffusionPipeline\n\n"
                    "pipe = DiffusionPipeline.from_pretrained('{path}', trust_remote_code=True)\n"
                    "# class-conditional: class_labels=[...] and guidance_scale; unconditional: batch_size\n"
                    "images = pipe({call}, num_inference_steps=50, output_type='np').images")
    Config = DiffusionConfig
    example: ClassVar[dict[str, Any]] = {"set": ["model.channels=[8, 16]", "model.timesteps=100",
                                                 "model.sample_steps=5", "train.batch_size=16",
                                                 "train.warmup_steps=5"]}
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 2e-3, "min_lr": 1e-4, "weight_decay": 0.0, "batch_size": 64, "max_steps": 2000, "warmup_steps": 100,
        "eval_every": 500, "eval_batches": 10,
    }

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: ImageData, *, seed: int) -> None:
        c = self.config
        channels, side = data.shape[0], data.shape[1]
        factor = 2 ** (len(c.channels) - 1)  # every level but the last halves the side
        if side % factor:
            fix = (f"add --set data.size={side // factor * factor}" if side >= factor
                   else "use fewer levels in model.channels or a larger data.size")
            raise GenlabError(f"diffusion with {len(c.channels)} levels needs data.size divisible by {factor}; "
                              f"{side} is not: {fix}")
        if c.conditional and data.num_classes == 0:
            raise GenlabError(f"model.conditional needs class labels and {data.meta['name']} has none; "
                              "set model.conditional=false or use labelled sub-folders")
        self.shape_ = tuple(data.shape)  # (C, H, W)
        self.num_classes_ = data.num_classes if c.conditional else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = UNet2DModel(
                sample_size=side,
                in_channels=channels,
                out_channels=channels,
                block_out_channels=c.channels,
                layers_per_block=c.layers_per_block,
                down_block_types=("DownBlock2D",) * len(c.channels),
                up_block_types=("UpBlock2D",) * len(c.channels),
                norm_num_groups=c.norm_groups,
                add_attention=c.attention,
                attention_head_dim=None,  # one head as wide as the block
                num_class_embeds=self.num_classes_ + 1 if c.conditional else None,  # + the "null" class
            )
        channels_last_convs(unet)
        ema = copy.deepcopy(unet).requires_grad_(False)
        self.networks_ = {"unet": unet.train(), "ema": ema.eval()}
        self.noise_ = DDPMScheduler(**self._betas())  # the forward process q(x_t | x_0) used in training

    def _betas(self, *, clip: bool = True) -> dict[str, Any]:
        """One beta schedule for every scheduler; "trailing" timesteps make a short DDIM start at t = T - 1.

        ``clip`` clamps each step's predicted x_0 to [-1, 1] (cleaner samples), but makes DDIM inversion inexact.
        """
        return {"num_train_timesteps": self.config.timesteps, "beta_schedule": self.config.beta_schedule,
                "prediction_type": "epsilon", "clip_sample": clip, "timestep_spacing": "trailing"}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for k in ("min_snr_gamma", "ema_decay", "label_dropout", "guidance", "sample_steps"):
            arch.pop(k)  # training and sampling settings: they do not change what the weights are
        arch["channels"] = list(arch["channels"])  # as JSON gives it back from a checkpoint
        return {**arch, "shape": list(self.shape_), "num_classes": self.num_classes_}

    def param_groups(self, weight_decay: float) -> dict[str, list[dict[str, Any]]]:
        return {"model": decay_groups(self.networks_["unet"], weight_decay)}  # the EMA copy is not optimized

    # -- training -------------------------------------------------------------------------------------------------
    def _mse(self, net: UNet2DModel, x: torch.Tensor, labels: torch.Tensor | None, t: torch.Tensor,
             noise: torch.Tensor) -> torch.Tensor:
        """(B,) noise-prediction MSE of each example."""
        x_t = self.noise_.add_noise(x, noise, t)  # (B, C, H, W) = sqrt(a_t) x_0 + sqrt(1 - a_t) eps
        eps = net(x_t, t, class_labels=labels).sample  # (B, C, H, W) predicted eps
        return (eps.float() - noise).pow(2).mean(dim=(1, 2, 3))

    def phases(self, data: ImageData) -> list[Phase]:
        def loss(batch):
            x, y = batch  # (B, C, H, W) in [-1, 1], (B,)
            # noise, timesteps and label dropout come from the loop's RNG: seeded, checkpointed, resumed exactly
            noise = torch.randn_like(x)
            t = torch.randint(0, self.config.timesteps, (len(x),), device=x.device)
            labels = None
            if self.num_classes_:
                drop = torch.rand(len(x), device=x.device) < self.config.label_dropout
                labels = torch.where(drop, self.num_classes_, y)  # (B,) the null class where dropped
            mse = self._mse(self.networks_["unet"], x, labels, t, noise)  # (B,)
            gamma = self.config.min_snr_gamma
            if gamma:  # Min-SNR-γ: w = min(SNR, γ) / SNR; less weight on the nearly clean, high-SNR steps
                a = self.noise_.alphas_cumprod.to(x.device)[t]  # (B,)
                snr = a / (1 - a)
                value = (mse * snr.clamp(max=gamma) / snr).mean()
            else:
                value = mse.mean()
            return value, {"train_loss": mse.mean().detach()}  # the plain MSE, comparable with val_loss

        return [Phase("model", loss)]

    def after_step(self, step: int) -> None:
        ema_update(self.networks_["ema"], self.networks_["unet"], step, self.config.ema_decay)

    @torch.no_grad()
    def validation_loss(self, batch) -> float:
        """EMA noise-prediction MSE at evenly spread timesteps, with noise from a fixed generator."""
        x, y = batch  # (B, C, H, W), (B,)
        g = torch.Generator().manual_seed(VAL_SEED)
        offset = torch.rand((), generator=g)
        t = ((torch.arange(len(x)) + offset) * self.config.timesteps / len(x)).long()  # (B,) one per stratum
        noise = torch.randn(x.shape, generator=g).to(x.device)
        labels = y if self.num_classes_ else None
        return float(self._mse(self.networks_["ema"], x, labels, t.to(x.device), noise).mean())

    def preview(self, step: int, folder: Path) -> None:
        from genlab.sample.images import save_grid

        folder.mkdir(parents=True, exist_ok=True)
        save_grid(self.sample(64, seed=PREVIEW_SEED), folder / f"step-{step}.png")

    def evaluate(self, data: ImageData, **kwargs: Any) -> dict[str, Any]:
        """image_report's sample metrics (DDIM, EMA weights) plus the noise MSE on the whole validation split."""
        from genlab.evaluate.images import image_report

        report = image_report(self, data, **kwargs)
        device = next(self.networks_["ema"].parameters()).device
        x, y = data.x["val"].to(device), data.y["val"].to(device)
        with eval_mode(self.networks_["ema"]):
            mses = [self.validation_loss((x[i : i + 256], y[i : i + 256])) * len(x[i : i + 256])
                    for i in range(0, len(x), 256)]
        guidance = self._guidance(None, self._labels(1, None, cycle=True))
        return {**report, "val_noise_mse": sum(mses) / len(x), "n_params": n_params(self.networks_["unet"]),
                "sampler": f"ddim, {self.config.sample_steps} steps, guidance {guidance}"}

    def export(self, folder: Path) -> None:
        """A diffusers pipeline folder: the EMA UNet and a DDIM scheduler with this run's beta schedule."""
        from genlab.models.exports import diffusers_export

        scheduler = DDIMScheduler(**self._betas())
        diffusers_export(folder, unet=self.networks_["ema"], scheduler=scheduler, num_classes=self.num_classes_)

    def usage(self, path: str) -> str:
        call = "class_labels=[0, 1, 2]" if self.num_classes_ else "batch_size=3"  # the pipeline's own arguments
        return self.export_usage.format(path=path, call=call)

    # -- sampling -------------------------------------------------------------------------------------------------
    def sample(self, n: int = 1, *, seed: int | None = None, label: int | None = None, sampler: str = "ddim",
               steps: int | None = None, guidance: float | None = None) -> Images:
        """``n`` images as uint8 (n, C, H, W); the same seed gives the same images.

        ``sampler``: "ddim" (deterministic; ``steps`` defaults to ``model.sample_steps``) or "ddpm" (stochastic;
        ``steps`` defaults to all T). ``label``: one class for every image; None cycles 0..K-1 on a conditional
        model. ``guidance``: classifier-free guidance scale (conditional models; default ``model.guidance``).
        """
        check_count("n", n)
        labels = self._labels(n, label, cycle=True)
        scale = self._guidance(guidance, labels)
        scheduler = self._scheduler(sampler, steps)
        g = seeded_generator(seed)
        x = torch.randn((n, *self.shape_), generator=g)  # (n, C, H, W) x_T ~ N(0, I)
        return Images(from_unit(self._denoise(x, labels, scheduler, scale, g)))

    def vary(self, image: np.ndarray, n: int, *, strength: float, seed: int | None = None, label: int | None = None,
             steps: int | None = None) -> Images:
        """Variations of ``image`` (uint8 (C, H, W)): noise it to t = strength * T, then denoise with DDIM.

        DDIM runs the part of its ``steps``-step schedule (default ``model.sample_steps``) below t, so strength 0.5
        takes about steps / 2; it starts from the largest of its timesteps not above t. The image is centre-cropped
        to a square and resized to the model's size when it differs. A conditional model uses ``label`` (default:
        the null class, unguided).
        """
        check_count("n", n)
        check_strength(strength)
        x0 = self._fit_image(image)  # (1, C, H, W)
        if strength == 0:
            return Images(from_unit(x0.expand(n, -1, -1, -1)))
        labels = self._labels(n, label, cycle=False)
        scale = self._guidance(None, labels) if label is not None else 1.0
        scheduler = self._scheduler("ddim", steps)
        t_start = min(round(strength * self.config.timesteps), self.config.timesteps - 1)
        kept = scheduler.timesteps[scheduler.timesteps <= t_start]
        scheduler.timesteps = kept if len(kept) else scheduler.timesteps[-1:]
        g = seeded_generator(seed)
        noise = torch.randn((n, *self.shape_), generator=g)  # (n, C, H, W) a different noise per variation
        t = scheduler.timesteps[:1].expand(n)
        x = self.noise_.add_noise(x0.expand(n, -1, -1, -1), noise, t)  # (n, C, H, W) x_t
        return Images(from_unit(self._denoise(x, labels, scheduler, scale, g)))

    def interpolate(self, steps: int, *, seed: int | None = None, images: list[np.ndarray] | None = None,
                    label: int | None = None, ddim_steps: int | None = None) -> Interpolation:
        """``steps`` frames as uint8 (steps, C, H, W) along a slerp between two noises, decoded by DDIM (eta = 0).

        Random ends: two Gaussian x_T drawn with ``seed``. Given ``images`` (two uint8 (C, H, W), resized like
        ``vary``'s): their x_T come from DDIM inversion (the deterministic DDIM map run backwards, unguided and
        without clipping), so the end frames reconstruct the images. A conditional model uses ``label`` for every
        frame (default: the null class).
        """
        check_count("steps", steps, 2)
        labels = self._labels(2, label, cycle=False)
        g = seeded_generator(seed)
        if images is None:
            scale = self._guidance(None, labels) if label is not None else 1.0
            z = torch.randn((2, *self.shape_), generator=g)  # (2, C, H, W) the two ends x_T
        else:
            if len(images) != 2:
                raise GenlabError(f"interpolation needs two images, got {len(images)}")
            # inversion and decoding use the same unguided, unclipped DDIM map, so the ends come back (50 steps on
            # mnist: MSE 0.006 in [-1, 1] units; with clipping 0.29)
            scale = 1.0
            x0 = torch.cat([self._fit_image(im) for im in images])  # (2, C, H, W)
            z = self._denoise(x0, labels, self._inverse_scheduler(ddim_steps), 1.0, g, clamp=False)
        w = torch.linspace(0, 1, steps)
        frames = slerp(z[0], z[1], w)  # (steps, C, H, W)
        frame_labels = labels[:1].expand(steps) if labels is not None else None
        decoder = self._scheduler("ddim", ddim_steps, clip=images is None)
        return Interpolation(from_unit(self._denoise(frames, frame_labels, decoder, scale, g)))

    # -- sampling helpers -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _denoise(self, x: torch.Tensor, labels: torch.Tensor | None, scheduler: Any, guidance: float,
                 generator: torch.Generator, *, clamp: bool = True) -> torch.Tensor:
        """Run ``scheduler``'s timesteps over x with the EMA UNet, in chunks of SAMPLE_BATCH; returns it on the CPU."""
        net = self.networks_["ema"]
        device = next(net.parameters()).device
        step_args = {"generator": generator} if isinstance(scheduler, (DDPMScheduler, DDIMScheduler)) else {}
        out = []
        chunks = range(0, len(x), SAMPLE_BATCH)
        with eval_mode(net), task(f"denoising {len(x)} images", total=len(chunks) * len(scheduler.timesteps)) as advance:
            for i in chunks:
                xs = x[i : i + SAMPLE_BATCH].to(device)  # (b, C, H, W)
                ls = labels[i : i + SAMPLE_BATCH].to(device) if labels is not None else None
                for t in scheduler.timesteps:
                    eps = self._eps(net, xs, t, ls, guidance)  # 1. predict the noise in x_t
                    xs = scheduler.step(eps, t, xs, **step_args).prev_sample  # 2. x_t -> x_{t-1}
                    advance()
                out.append(xs.float().cpu())
        x = torch.cat(out)
        return x.clamp(-1, 1) if clamp else x

    def _eps(self, net: UNet2DModel, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
             guidance: float) -> torch.Tensor:
        if labels is None or guidance == 1:
            return net(x, t, class_labels=labels).sample.float()
        null = torch.full_like(labels, self.num_classes_)
        both = net(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample.float()  # (2b, C, H, W)
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    def _scheduler(self, sampler: str, steps: int | None, *, clip: bool = True) -> DDPMScheduler | DDIMScheduler:
        if sampler not in ("ddim", "ddpm"):
            raise BadArgument("sampler", f"must be ddim or ddpm, got {sampler!r}")
        if steps is None:
            steps = self.config.sample_steps if sampler == "ddim" else self.config.timesteps
        if not 1 <= steps <= self.config.timesteps:
            raise BadArgument("steps", f"must be between 1 and {self.config.timesteps}, got {steps}")
        scheduler = (DDIMScheduler if sampler == "ddim" else DDPMScheduler)(**self._betas(clip=clip))
        scheduler.set_timesteps(steps)
        return scheduler

    def _inverse_scheduler(self, steps: int | None) -> DDIMInverseScheduler:
        steps = steps if steps is not None else self.config.sample_steps
        if not 1 <= steps <= self.config.timesteps:
            raise BadArgument("ddim_steps", f"must be between 1 and {self.config.timesteps}, got {steps}")
        scheduler = DDIMInverseScheduler(**self._betas(clip=False))
        scheduler.set_timesteps(steps)
        return scheduler

    def _labels(self, n: int, label: int | None, *, cycle: bool) -> torch.Tensor | None:
        """(n,) class labels for a conditional model: ``label``, 0..K-1 in turn (cycle), or the null class K."""
        k = self.num_classes_
        if label is not None or cycle or not k:
            return class_labels(n, label, k)
        if not self.config.label_dropout:
            raise BadArgument("label", "is needed: this conditional model was trained without label dropout, so it "
                                       "has no unconditional mode")
        return torch.full((n,), k, dtype=torch.long)

    def _guidance(self, guidance: float | None, labels: torch.Tensor | None) -> float:
        if guidance is None:
            return self.config.guidance if labels is not None and self.config.label_dropout else 1.0
        if labels is None and guidance != 1:
            raise BadArgument("guidance", "needs a class-conditional model; this one is unconditional")
        if guidance != 1 and not self.config.label_dropout:
            raise BadArgument("guidance", "needs a model trained with model.label_dropout > 0; use guidance=1")
        if not guidance >= 0:
            raise BadArgument("guidance", f"must be 0 or more, got {guidance}")
        return float(guidance)

    def _fit_image(self, image: np.ndarray) -> torch.Tensor:
        """A user's uint8 (C, H, W) image -> (1, C, H, W) in [-1, 1], resized and cropped like dataset images."""
        return fit_image(image, self.shape_)

