"""The one training loop, shared by every family.

A family says how one step goes (``Family.phases``: a loss per optimizer) and what happens after it
(``Family.after_step``); this loop owns everything else: AdamW with warm-up then cosine decay, gradient
accumulation and clipping, mixed precision, periodic validation and previews, ``metrics.jsonl``, the progress
bar, step and time budgets, atomic checkpoints and exact resume.

Random state: the loop runs inside ``torch.random.fork_rng`` seeded from ``train.seed``, so dropout is
reproducible, its state is checkpointed, and the caller's global RNG is left as it was. Batches come from a
separate ``torch.Generator`` that is checkpointed too; a resumed run therefore continues bit-identically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genlab.config import TrainConfig
from genlab.models.base import Family
from genlab.train import checkpoint as ckpt
from genlab.train.precision import Precision, resolve_device, resolve_precision
from genlab.train.progress import TrainProgress

CHECKPOINT_FILE = "checkpoint.safetensors"
METRICS_FILE = "metrics.jsonl"
EVAL_SEED_OFFSET = 7919  # validation batches use their own fixed stream, the same at every evaluation

Callback = Callable[["Trainer", int, dict[str, Any]], None]  # (trainer, step, metrics as 0-d tensors or floats)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``max_steps`` (step counts from 0)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


class Trainer:
    def __init__(
        self,
        family: Family,
        data: Any,
        config: TrainConfig,
        *,
        run_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
        callbacks: list[Callback] = (),
    ) -> None:
        self.family = family
        self.data = data
        self.config = config
        self.run_dir = run_dir
        self.resume = resume
        self.progress = progress
        self.callbacks = list(callbacks)
        self.device = resolve_device(config.device)
        self.precision = Precision(self.device, resolve_precision(config.precision, self.device))

    # ---------------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until ``max_steps`` or ``max_minutes``; returns a summary."""
        threads = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                return self._run()
        finally:
            torch.set_num_threads(threads)

    def _run(self) -> dict[str, Any]:
        cfg, fam = self.config, self.family
        nets = fam.networks_
        for net in nets.values():
            net.to(self.device)
        if cfg.compile:
            for net in nets.values():
                net.compile()  # in place: the state dict keeps its names
        self.optimizers = {
            name: torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **_fused(self.device))
            for name, groups in fam.param_groups(cfg.weight_decay).items()
        }
        phases = fam.phases(self.data)
        torch.manual_seed(cfg.seed + 1)  # dropout stream, inside the forked RNG
        self.batch_rng = torch.Generator().manual_seed(cfg.seed)
        start, elapsed0 = 0, 0.0
        if self.resume:
            start, elapsed0 = self._resume()
        self.metrics_path = self.run_dir / METRICS_FILE if self.run_dir else None
        best_val, last_val = math.inf, math.nan
        if self.metrics_path and self.metrics_path.exists():
            best_val = min((r["val_loss"] for r in _read_metrics(self.metrics_path) if "val_loss" in r), default=best_val)

        t0 = time.perf_counter()
        budget_s = cfg.max_minutes * 60
        window_units, window_s, rate, stopped_by = 0, 0.0, math.nan, "max_steps"
        step = start
        bar = TrainProgress(cfg.max_steps, start, fam.unit, enabled=self.progress)
        with bar:
            try:
                while step < cfg.max_steps:
                    s0 = time.perf_counter()
                    lr = lr_at(step, cfg)
                    logs: dict[str, Any] = {}  # values stay tensors until logged: no device sync per step
                    units = 0
                    for phase in phases:
                        logs.update(self._update(phase, lr))
                        units += self._last_units if phase.counts_units else 0
                    fam.after_step(step)
                    step += 1
                    if step > start + 1:  # throughput counts step time only; a session's first step holds start-up
                        window_units += units
                        window_s += time.perf_counter() - s0
                    elapsed = elapsed0 + time.perf_counter() - t0
                    if step % cfg.log_every == 0 or step == cfg.max_steps:
                        if window_s:
                            rate, window_units, window_s = window_units / window_s, 0, 0.0
                        floats = {k: float(v) for k, v in logs.items()}
                        self._log({"step": step, **floats, "lr": lr, f"{fam.unit}_per_s": rate, "elapsed_s": elapsed})
                        bar.update(step, floats, rate)
                    out_of_time = budget_s and elapsed >= budget_s
                    last = step == cfg.max_steps or out_of_time
                    if (cfg.eval_every and step % cfg.eval_every == 0) or last:
                        last_val = self._validate()
                        best_val = min(best_val, last_val)
                        self._log({"step": step, "val_loss": last_val, "elapsed_s": elapsed})
                        bar.note(f"step {step}: val loss {last_val:.4f}")
                        if self.run_dir and not cfg.sample_every:
                            fam.preview(step, self.run_dir / "samples")
                    if self.run_dir and cfg.sample_every and step % cfg.sample_every == 0:
                        fam.preview(step, self.run_dir / "samples")
                    if step % cfg.checkpoint_every == 0 or last:
                        self._checkpoint(step, elapsed)
                    for cb in self.callbacks:
                        cb(self, step, logs)
                    if out_of_time:
                        stopped_by = "max_minutes"
                        break
            except KeyboardInterrupt:
                self._checkpoint(step, elapsed0 + time.perf_counter() - t0)
                raise
        for net in nets.values():
            net.eval()
        return {
            "steps": step,
            "stopped_by": stopped_by,
            "val_loss": last_val,
            "best_val_loss": best_val,
            "elapsed_s": elapsed0 + time.perf_counter() - t0,
            "precision": self.precision.name,
            "device": str(self.device),
        }

    # ---------------------------------------------------------------------------------------------------------
    def _update(self, phase, lr: float) -> dict[str, float]:
        """One optimizer step: accumulate gradients over micro-batches, clip, step."""
        cfg = self.config
        opt = self.optimizers[phase.optimizer]
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        sums: dict[str, Any] = {}
        self._last_units = 0
        for _ in range(cfg.grad_accum):
            # 1. draw a micro-batch, 2. forward under the precision policy, 3. backward the scaled loss
            batch = self.data.batch("train", phase.batch_size or cfg.batch_size, self.batch_rng)
            batch = _to(batch, self.device)  # (pinned host memory would make this asynchronous on CUDA)
            with self.precision.autocast():
                loss, metrics = phase.loss(batch)
            (loss / cfg.grad_accum).backward()
            self._last_units += self.family.batch_units(batch)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        params = [p for g in opt.param_groups for p in g["params"]]
        if cfg.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            sums[f"grad_norm_{phase.optimizer}" if len(self.optimizers) > 1 else "grad_norm"] = norm
        opt.step()
        return sums

    @torch.no_grad()
    def _validate(self) -> float:
        modes = {name: net.training for name, net in self.family.networks_.items()}
        for net in self.family.networks_.values():
            net.eval()
        g = torch.Generator().manual_seed(self.config.seed + EVAL_SEED_OFFSET)
        losses = []
        for _ in range(self.config.eval_batches):
            batch = _to(self.data.batch("val", self.config.batch_size, g), self.device)
            with self.precision.autocast():
                losses.append(self.family.validation_loss(batch))
        for name, net in self.family.networks_.items():
            net.train(modes[name])  # a frozen EMA copy stays in eval mode
        return float(sum(losses) / len(losses))

    def _log(self, record: dict[str, float]) -> None:
        if self.metrics_path is None:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}) + "\n")

    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch": torch.get_rng_state(), "batches": self.batch_rng.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _checkpoint(self, step: int, elapsed: float) -> None:
        if self.run_dir is None:
            return
        ckpt.save_checkpoint(
            self.run_dir / CHECKPOINT_FILE,
            step=step,
            architecture=self.family.architecture(),
            networks=self.family.networks_,
            optimizers=self.optimizers,
            rng=self._rng_state(),
            extra={"elapsed_s": elapsed},
        )
        self.family.save(self.run_dir)  # the run folder always holds a usable model

    def _resume(self) -> tuple[int, float]:
        path = self.run_dir / CHECKPOINT_FILE
        header, tensors = ckpt.load_checkpoint(path)
        ckpt.check_architecture(path, header, self.family.architecture())
        rng = ckpt.restore(header, tensors, self.family.networks_, self.optimizers)
        torch.set_rng_state(rng["torch"])
        self.batch_rng.set_state(rng["batches"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        step = int(header["step"])
        # drop what was logged after the checkpoint (the steps that will now be redone)
        metrics = self.run_dir / METRICS_FILE
        if metrics.exists():
            kept = [r for r in _read_metrics(metrics) if r.get("step", 0) <= step]
            from genlab.files import atomic_write_bytes

            atomic_write_bytes(metrics, "".join(json.dumps(r) + "\n" for r in kept).encode())
        return step, float(json.loads(header["extra"]).get("elapsed_s", 0.0))


def _fused(device: torch.device) -> dict[str, Any]:
    # Fused AdamW (one kernel for all parameters) saves 5-10% of a small model's step on CPU and CUDA.
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def _to(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a crash: everything after it is unreliable
    return rows


read_metrics = _read_metrics
