"""The one training loop, shared by every family.

A family says how one step goes (``Family.phases``: a loss per optimizer), what happens after it
(``Family.after_step``), which optimizers it steps (``Family.optimizers``: AdamW unless it makes its own) and how
its networks are wrapped for training (``Family.wrap``); this loop owns everything else: warm-up then cosine
decay, gradient accumulation and clipping, mixed precision, periodic validation and previews, ``metrics.jsonl``,
the progress bar, step and time budgets, atomic checkpoints, exact resume, an exact stop on Ctrl-C or SIGTERM
(the step finishes, then a checkpoint: ``train/signals.py``), keeping the best validation point, and the named events
callbacks subscribe to (``train/hooks.py``). A family with no gradient steps
(``iterative = False``) is fitted once by ``Family.solve``, with the same events, validation and saving.

Random state: the loop runs inside ``torch.random.fork_rng`` seeded from ``train.seed``, so dropout is
reproducible, its state is checkpointed, and the caller's global RNG is left as it was. Batches come from a
separate ``torch.Generator`` that is checkpointed too; a resumed run therefore continues bit-identically (with a
fixed ``train.threads``: by default the thread count follows the cores other processes leave free,
``train/threads.py``, and a different count rounds differently).

Several processes (``torchrun``): every process trains; only the main one writes (``distributed.is_main``).
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from genlab.config import TrainConfig
from genlab import progress
from genlab.nets import eval_mode, to_device
from genlab.runfiles import CHECKPOINT_FILE, METRICS_FILE, SAMPLES_DIR, read_metrics
from genlab.train import checkpoint as ckpt
from genlab.train.distributed import is_main
from genlab.train.hooks import as_callback
from genlab.train.precision import Precision, resolve_device, resolve_precision
from genlab.train.progress import TrainProgress
from genlab.train.signals import StopSignals
from genlab.train.threads import ThreadGovernor

EVAL_SEED_OFFSET = 7919  # validation batches use their own fixed stream, the same at every evaluation

Wrapper = Callable[[str, torch.nn.Module], torch.nn.Module]  # (network name, network) -> the module to train


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``max_steps`` (step counts from 0)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


class Trainer:
    def __init__(self, family: Any, data: Any, config: TrainConfig, *, run_dir: Path | None = None,
                 resume: bool = False, progress: bool = True, callbacks: Sequence[Any] = (),
                 wrap: Wrapper | None = None) -> None:
        self.family = family
        self.data = data
        self.config = config
        self.run_dir = run_dir
        self.resume = resume
        self.progress = progress
        self.callbacks = [ThreadGovernor(), *(as_callback(c) for c in callbacks)]  # train.threads, or the free cores
        self.wrap = wrap  # the loop's own wrapping (DistributedDataParallel), after the family's
        self.device = resolve_device(config.device)
        self.precision = Precision(self.device, resolve_precision(config.precision, self.device))
        self.writes = run_dir is not None and is_main()
        self.start_step = self.step = 0

    # ---------------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until ``max_steps`` or ``max_minutes``; returns a summary."""
        threads = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), progress.shown(False):  # the loop draws its own bar
                return self._run()
        finally:
            torch.set_num_threads(threads)

    def _emit(self, event: str, **info: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, f"on_{event}", None)
            if fn is not None:
                fn(self, **info)

    def _setup(self) -> None:
        """1. networks to the device, 2. optimizers, 3. wrappers, 4. RNG streams and a resumed state."""
        cfg, fam = self.config, self.family
        for net in fam.networks_.values():
            net.to(self.device)
            if cfg.compile:
                net.compile()  # in place: the state dict keeps its names
        for net in getattr(fam, "frozen_", {}).values():  # used (a teacher), never optimized or saved
            net.to(self.device).eval().requires_grad_(False)
        self.optimizers = fam.optimizers(cfg, self.device) if fam.iterative else {}
        # the modules the training steps run (DDP, GradSampleModule ...); everything else uses the networks themselves
        self.raw, self.wrapped = dict(fam.networks_), {}
        for name, net in self.raw.items():
            net = fam.wrap(name, net)
            self.wrapped[name] = self.wrap(name, net) if self.wrap is not None else net
        torch.manual_seed(cfg.seed + 1)  # dropout stream, inside the forked RNG
        self.batch_rng = torch.Generator().manual_seed(cfg.seed)
        self.elapsed0, self.kept = 0.0, (math.inf, None)  # (val loss, step) of the weights train.keep_best kept
        self._kept_state = None  # those weights, in memory (None: kept in an earlier session, on disk only)
        if self.resume:
            self.start_step, self.elapsed0 = self._resume()
        self.step = self.start_step
        self.metrics_path = self.run_dir / METRICS_FILE if self.run_dir else None
        vals = [r["val_loss"] for r in read_metrics(self.metrics_path) if "val_loss" in r] \
            if self.metrics_path and self.metrics_path.exists() else []
        self.best_val = min(vals, default=math.inf)

    def _run(self) -> dict[str, Any]:
        self._setup()
        status, summary = "failed", {}
        try:
            self._emit("train_start")
            summary = self._steps() if self.family.iterative else self._solve()
            status = "completed"
            return summary
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException as e:
            status = f"failed ({type(e).__name__})"
            raise
        finally:
            for net in self.family.networks_.values():
                net.eval()
            self._emit("train_end", status=status, summary=summary)

    def _steps(self) -> dict[str, Any]:
        cfg, fam = self.config, self.family
        phases = fam.phases(self.data)
        t0 = time.perf_counter()
        budget_s = cfg.max_minutes * 60
        window_units, window_s, rate, stopped_by, last_val = 0, 0.0, math.nan, "max_steps", math.nan
        bar = TrainProgress(cfg.max_steps, self.start_step, fam.unit, enabled=self.progress and is_main())
        with bar, StopSignals() as stop:  # Ctrl-C / SIGTERM: finish the step, checkpoint, then stop
            while self.step < cfg.max_steps:
                s0 = time.perf_counter()
                lr = lr_at(self.step, cfg)
                logs: dict[str, Any] = {}  # values stay tensors until logged: no device sync per step
                units = 0
                for phase in phases:  # 1. one optimizer update per phase (a GAN: D, then G)
                    logs.update(self._update(phase, lr))
                    units += self._last_units if phase.counts_units else 0
                fam.after_step(self.step)  # 2. the family's own update (EMA weights)
                self.step += 1
                step = self.step
                if step > self.start_step + 1:  # throughput counts step time only; a first step holds start-up
                    window_units += units
                    window_s += time.perf_counter() - s0
                elapsed = self.elapsed0 + time.perf_counter() - t0
                if step % cfg.log_every == 0 or step == cfg.max_steps:  # 3. log
                    if window_s:
                        rate, window_units, window_s = window_units / window_s, 0, 0.0
                    floats = {k: float(v) for k, v in logs.items()}
                    self._log({"step": step, **floats, "lr": lr, f"{fam.unit}_per_s": rate, "elapsed_s": elapsed})
                    bar.update(step, floats, rate)
                out_of_time = budget_s and elapsed >= budget_s
                last = step == cfg.max_steps or out_of_time
                if (cfg.eval_every and step % cfg.eval_every == 0) or last:  # 4. validate (and preview)
                    last_val = self._validated(step, elapsed)
                    bar.note(f"step {step}: val loss {last_val:.4f}")
                    if not cfg.sample_every:
                        self._preview(step)
                if cfg.sample_every and step % cfg.sample_every == 0:
                    self._preview(step)
                saved = step % cfg.checkpoint_every == 0 or last
                if saved:  # 5. checkpoint
                    self._checkpoint(step, elapsed)
                try:
                    self._emit("step_end", step=step, logs=logs)
                except KeyboardInterrupt:  # a subscriber stopping the run at this step boundary
                    stop.signum = stop.signum or signal.SIGINT
                if stop.signum:  # 6. stop asked for during this step: its end is an exact place to resume from
                    if not saved:
                        self._checkpoint(step, elapsed)
                    raise stop.interrupted(step)
                if out_of_time:
                    stopped_by = "max_minutes"
                    break
        self._restore_kept()
        return self._summary(stopped_by, last_val, self.elapsed0 + time.perf_counter() - t0)

    def _solve(self) -> dict[str, Any]:
        """A family without gradient steps: fitted once, then validated and saved like a trained one."""
        t0 = time.perf_counter()
        self.family.solve(self.data)
        elapsed = self.elapsed0 + time.perf_counter() - t0
        last_val = self._validated(0, elapsed)
        self._preview(0)
        self._checkpoint(0, elapsed)
        return self._summary("solved", last_val, elapsed)

    def _summary(self, stopped_by: str, last_val: float, elapsed: float) -> dict[str, Any]:
        return {
            "steps": self.step,
            "stopped_by": stopped_by,
            "val_loss": last_val,
            "best_val_loss": self.best_val,
            "weights_step": self.kept[1] if self.config.keep_best and self.kept[1] is not None else self.step,
            "elapsed_s": elapsed,
            "precision": self.precision.name,
            "device": str(self.device),
        }

    # ---------------------------------------------------------------------------------------------------------
    def _update(self, phase, lr: float) -> dict[str, Any]:
        """One optimizer step: accumulate gradients over micro-batches, clip, step."""
        cfg = self.config
        opt = self.optimizers[phase.optimizer]
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        sums: dict[str, Any] = {}
        self._last_units = 0
        self.family.networks_ = self.wrapped  # the step runs the training modules (the same parameters)
        try:
            for _ in range(cfg.grad_accum):
                # 1. draw a micro-batch, 2. forward under the precision policy, 3. backward the scaled loss
                batch = self.data.batch("train", phase.batch_size or cfg.batch_size, self.batch_rng)
                batch = to_device(batch, self.device)  # (pinned host memory would make this asynchronous on CUDA)
                with self.precision.autocast():
                    loss, metrics = phase.loss(batch)
                (loss / cfg.grad_accum).backward()
                self._last_units += self.data.units(batch)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        finally:
            self.family.networks_ = self.raw
        params = [p for g in opt.param_groups for p in g["params"]]
        if cfg.grad_clip and not getattr(opt, "clips_per_example", False):  # DP-SGD clips each row itself
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            sums[f"grad_norm_{phase.optimizer}" if len(self.optimizers) > 1 else "grad_norm"] = norm
        opt.step()
        return sums

    def _validated(self, step: int, elapsed: float) -> float:
        """Validate, log, tell subscribers, and keep these weights if they are the best so far (train.keep_best)."""
        val = self.validate()
        if val < self.best_val:
            self.best_val = val
        if self.config.keep_best and val < self.kept[0]:
            self.kept = (val, step)
            self._kept_state = {n: {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                                for n, net in self.family.networks_.items()}
            if self.writes:
                self.family.save(self.run_dir)
        self._log({"step": step, "val_loss": val, "elapsed_s": elapsed})
        self._emit("validation", step=step, val_loss=val)
        return val

    def validate(self) -> float:
        """The mean validation loss on the fixed validation batches (the same batches at every call)."""
        g = torch.Generator().manual_seed(self.config.seed + EVAL_SEED_OFFSET)
        losses = []
        with eval_mode(*self.family.networks_.values()):  # a frozen EMA copy stays in eval mode after
            for _ in range(self.config.eval_batches):
                batch = to_device(self.data.batch("val", self.config.batch_size, g), self.device)
                with self.precision.autocast():
                    losses.append(self.family.validation_loss(batch))
        return float(sum(losses) / len(losses))

    def _restore_kept(self) -> None:
        """With train.keep_best, end with the kept weights in memory too (on disk they already are)."""
        if not self.config.keep_best or self.kept[1] is None:
            return
        if self._kept_state is None and self.run_dir is not None:  # kept before a resume: read them back
            self.family.load_weights(self.run_dir)
            return
        for name, net in self.family.networks_.items():
            net.load_state_dict(self._kept_state[name])

    def _preview(self, step: int) -> None:
        if self.writes:
            self.family.preview(step, self.run_dir / SAMPLES_DIR)

    def _log(self, record: dict[str, float]) -> None:
        if self.metrics_path is not None and self.writes:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()})
                        + "\n")
        self._emit("log", record=record)

    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch": torch.get_rng_state(), "batches": self.batch_rng.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _checkpoint(self, step: int, elapsed: float) -> None:
        """The model files first, then the checkpoint: a kill between the two leaves a checkpoint whose run is whole
        (a checkpoint written first could stand without the tokenizer its data needs on resume)."""
        if not self.writes:
            return
        if not (self.config.keep_best and self.kept[1] is not None):
            self.family.save(self.run_dir)  # the run folder always holds a usable model
        if self.family.iterative:
            ckpt.save_checkpoint(
                self.run_dir / CHECKPOINT_FILE,
                step=step,
                architecture=self.family.architecture(),
                networks=self.family.networks_,
                optimizers=self.optimizers,
                rng=self._rng_state(),
                extra={"elapsed_s": elapsed, "kept_val_loss": self.kept[0] if self.kept[1] is not None else None,
                       "kept_step": self.kept[1]},
            )
        self._emit("checkpoint", step=step)

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
        extra = json.loads(header["extra"])
        if extra.get("kept_step") is not None:  # the weights on disk are the best of an earlier session
            self.kept = (float(extra["kept_val_loss"]), int(extra["kept_step"]))
        # drop what was logged after the checkpoint (the steps that will now be redone)
        metrics = self.run_dir / METRICS_FILE
        if metrics.exists() and self.writes:
            kept = [r for r in read_metrics(metrics) if r.get("step", 0) <= step]
            from genlab.files import atomic_write_bytes

            atomic_write_bytes(metrics, "".join(json.dumps(r) + "\n" for r in kept).encode())
        return step, float(extra.get("elapsed_s", 0.0))
