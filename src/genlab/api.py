"""The Python API; the CLI calls only this.

Example::

    import genlab
    run = genlab.train("gpt", "shakespeare", out="runs/demo", overrides=["train.max_steps=500"])
    print(run.sample(prompt="ROMEO:", n=2, seed=1))
    print(run.evaluate()["bits_per_char"])
    run.export("exported/")            # loads with transformers.AutoModelForCausalLM
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab import config as cfgmod
from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.models import get_family
from genlab.responsible.card import write_card
from genlab.responsible.country import country_code
from genlab.responsible.energy import energy_session
from genlab.responsible.release import run_identity
from genlab.runs import CONFIG_TOML, DATA_DIR, Run, read_run_config, write_summary_json
from genlab.train.loop import CHECKPOINT_FILE, METRICS_FILE, Trainer, read_metrics


def default_out(family: str, dataset: str) -> Path:
    name = Path(dataset).name if ("/" in dataset or "." in dataset) else dataset
    return Path("runs") / f"{family}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    family: str,
    data: str,
    *,
    out: str | Path | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[Any] = (),
) -> Run:
    """Train ``family`` on dataset ``data`` into the run folder ``out``; returns the loaded ``Run``.

    With ``resume=True`` the run continues from its checkpoint; ``[train]`` settings may change (e.g. a larger
    ``max_steps``), the architecture may not.
    """
    family_cls = get_family(family)
    out = Path(out) if out is not None else default_out(family, data)
    if resume:
        if not (out / CONFIG_TOML).is_file():
            raise GenlabError(f"{out} is not a run to resume (no {CONFIG_TOML}); train without --resume")
        saved = read_run_config(out)
        if saved.family != family:
            raise GenlabError(f"cannot resume {out}: it is a '{saved.family}' run, not '{family}'")
        if saved.dataset != data:
            raise GenlabError(f"cannot resume {out}: it was trained on '{saved.dataset}', not '{data}'")
        base = saved.to_dict()
        config = cfgmod.build(family, data, family_cls.Config, family_cls.data_config_class(),
                              base=base, config_file=config_file, overrides=overrides)
        if config.model != saved.model or config.data != saved.data:
            changed = [f"{s}.{k}" for s in ("model", "data") for k, v in base[s].items()
                       if config.to_dict()[s][k] != v]
            raise GenlabError(f"cannot resume {out}: the architecture or data settings differ ({', '.join(changed)})")
        if not (out / CHECKPOINT_FILE).is_file():
            raise GenlabError(f"{out} has no checkpoint to resume from; train it again without --resume")
    else:
        config = cfgmod.build(family, data, family_cls.Config, family_cls.data_config_class(),
                              base={"train": dict(family_cls.train_defaults)}, config_file=config_file,
                              overrides=overrides)
        if out.exists() and any(out.iterdir()):
            hint = "add --resume to continue it" if (out / CONFIG_TOML).exists() else "choose a new --out"
            raise GenlabError(f"{out} already exists and is not empty; {hint}")

    if config.release.track_energy:
        country_code(config.release.country)  # a bad release.country fails before anything is written
    model = family_cls(config.model)
    if resume:
        dataset = family_cls.load_data(config.data, out / DATA_DIR)
    else:
        source = _resolve_source(data, family_cls.modality)
        out.mkdir(parents=True, exist_ok=True)
        try:
            dataset = family_cls.prepare_data(source, config.data, out / DATA_DIR)
            model.build(dataset, seed=config.train.seed)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # nothing half-made is left to be mistaken for a run
            raise
    if resume:
        model.build(dataset, seed=config.train.seed)
    cfgmod.write_toml(config, out / CONFIG_TOML)
    run_identity(out)  # the run id and text-watermark key, made once

    trainer = Trainer(model, dataset, config.train, run_dir=out, resume=resume, progress=progress,
                      callbacks=list(callbacks))
    with energy_session(out, model, dataset, config, trainer):  # RUN/energy.json, also for a Ctrl-C'd session
        summary = trainer.run()
    write_summary_json(out / "summary.json", {**summary, "n_params": _n_params(model)})
    plot_losses(out, unit={"tok": "token", "img": "image"}.get(family_cls.unit, family_cls.unit))
    write_card(out)  # RUN/README.md, the model card (`genlab card RUN` rewrites it)
    return Run(out, config, model, dataset)


def _resolve_source(name: str, modality: str) -> Any:
    from genlab.data import resolve

    return resolve(name, modality)


def _n_params(model) -> int:
    return sum(p.numel() for net in model.networks_.values() for p in net.parameters())


def load(path: str | Path) -> Run:
    """Open a run folder: its config, data and trained model."""
    return Run.load(path)


def plot_losses(run_dir: Path, *, unit: str = "token") -> Path | None:
    """Draw training and validation loss against step into ``loss.png``."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return None
    rows = read_metrics(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    keys = sorted({k for r in rows for k in r if k.endswith("_loss") and k != "val_loss"}) + ["val_loss"]
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), "o-" if key == "val_loss" else "-", label=key.replace("_", " "), markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (nats per {unit})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(run_dir / "loss.png", buf.getvalue())
    return run_dir / "loss.png"
