"""The Python API; the CLI (and the HTTP API) call only this and ``Run``.

Example::

    import genlab
    run = genlab.train("gpt", "shakespeare", out="runs/demo", overrides=["train.max_steps=500"])
    print(run.sample(2, prompt="ROMEO:", seed=1))
    print(run.evaluate()["bits_per_char"])
    run.sample(4, prompt="ROMEO:").save("stories/")  # .txt files, watermarked and signed
    run.export("exported/")            # loads with transformers.AutoModelForCausalLM
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab import config as cfgmod
from genlab import registry
from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.lock import LOCK_FILE, RunLock, clean_leftovers
from genlab.runfiles import CHECKPOINT_FILE, CONFIG_TOML, DATA_DIR, LINEAGE_FILE, LOSS_PLOT, METRICS_FILE, \
    SUMMARY_FILE, check_folder, read_metrics, write_json
from genlab.runs import Run, parent_of, read_run_config
from genlab.settings import config_path
from genlab.train.checkpoint import check_resumable
from genlab.train.tensorboard import TensorBoard
from genlab.train.tensorboard import available as tensorboard_available
from genlab.train.distributed import is_main


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
    parent: str | Path | None = None,
) -> Run:
    """Train ``family`` on dataset ``data`` into the run folder ``out``; returns the loaded ``Run``.

    With ``resume=True`` the run continues from its checkpoint; ``[train]`` settings may change (e.g. a larger
    ``max_steps``), the architecture may not. A run stopped before its first checkpoint resumes from step 0 (its
    data prepared again). ``parent`` names the run a family builds on (fine-tuning, distillation: families with
    ``uses_parent``); it is left unchanged and recorded in ``lineage.json``. ``callbacks`` subscribe to the training
    loop's events (``genlab.train.hooks``). The run folder is locked while this trains in it: a second process
    training into it is refused.
    """
    family_cls = registry.get_family(family)
    out = Path(out) if out is not None else default_out(family, data)
    config_file = config_path(config_file) if config_file is not None else None  # a file, or a shipped config's name
    if out.exists() and not out.is_dir():
        raise GenlabError(f"{out} is a file, not a run folder; choose a new --out")
    if parent is not None and not resume:  # refused before any folder is made or any data read
        if Path(parent).resolve() == out.resolve():
            raise GenlabError(f"{out} is the base run it builds on, which is never written: choose a new folder")
        if not (Path(parent) / CONFIG_TOML).is_file():
            raise GenlabError(f"{parent} is not a genlab run (no {CONFIG_TOML}); see `genlab runs`")
        family_cls.check_parent(read_run_config(Path(parent)))
    config = source = None
    if not resume:  # bad settings and an unknown dataset are refused before any folder is made
        modality = modality_for(family_cls, data)
        config = cfgmod.build(family, data, family_cls.Config, family_cls.data_config_class(modality),
                              base={"train": dict(family_cls.train_defaults)}, config_file=config_file,
                              overrides=overrides, modality=modality)
        if config.privacy.private and not family_cls.supports_privacy:
            raise GenlabError(f"the {family} family has no differentially private training; privacy.epsilon applies "
                              "to " + ", ".join(n for n in registry.FAMILIES
                                                if registry.get_family(n).supports_privacy))
        source = registry.get_modality(modality).resolve(data)
    made = out.resolve()  # the outermost folder this call makes (removed again if the run cannot start)
    while not made.parent.exists():
        made = made.parent
    made = made if not made.exists() else None
    with RunLock(out) if is_main() else contextlib.nullcontext():  # only the main process of torchrun writes
        try:
            if is_main():
                check_folder(out)  # no link out of the folder is read or written through
                clean_leftovers(out)  # temporary files of a killed process
            if resume:
                config, restart = _resume_config(family, data, family_cls, out, config_file, overrides)
            else:
                restart = False
                if is_main():
                    _check_empty(out)
        except BaseException:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            raise
        try:
            return _train(family_cls, data, out, config, source, resume=resume and not restart, restart=restart,
                          progress=progress, callbacks=callbacks, parent=parent, made=made)
        except BaseException:
            if made is not None and not (out / CONFIG_TOML).is_file():  # refused before the run began: no trace
                shutil.rmtree(made, ignore_errors=True)
            raise


def _check_empty(out: Path) -> None:
    """A new run goes into an empty folder; say what to do with one that holds a run."""
    if any(p.name != LOCK_FILE for p in out.iterdir()):
        if (out / CHECKPOINT_FILE).is_file():
            hint = "add --resume to continue it"
        elif (out / CONFIG_TOML).is_file():
            hint = "it holds a run that has no checkpoint: add --resume to train it from step 0, or choose a new --out"
        else:
            hint = "choose a new --out"
        raise GenlabError(f"{out} already exists and is not empty; {hint}")


def _train(family_cls: type, data: str, out: Path, config: cfgmod.RunConfig, source: Any, *, resume: bool,
           restart: bool, progress: bool, callbacks: Sequence[Any], parent: str | Path | None,
           made: Path | None) -> Run:
    """Prepare (or reopen) the data, build the model, check it fits, train it; the folder is already locked.
    A new run that cannot start removes the folders it made (``made``)."""
    from genlab.memory import check_model_fits
    from genlab.train.precision import resolve_device

    parent_run = _parent(family_cls, parent, out, resume or restart)
    subscribers = list(callbacks)
    if tensorboard_available() and is_main():
        subscribers.append(TensorBoard(out))  # event files beside metrics.jsonl
    if config.release.track_energy:
        from genlab.responsible.energy_record import EnergyTracker

        subscribers.append(EnergyTracker(out, config.release.country))  # a bad country fails before any writing
    model = family_cls(config.model, parent=parent_run, modality=config.modality, privacy=config.privacy)
    device = resolve_device(config.train.device)
    if resume:
        dataset = family_cls.load_data(config.data, out / DATA_DIR, modality=config.modality)
        check_model_fits(model, dataset, seed=config.train.seed, training=True, device=device)
        model.build(dataset, seed=config.train.seed)
        check_resumable(out / CHECKPOINT_FILE, model.architecture())  # refused before anything is written
    else:
        source = source if source is not None else registry.get_modality(config.modality).resolve(data)
        if restart:  # what a session stopped before its first checkpoint left is made again
            shutil.rmtree(out / DATA_DIR, ignore_errors=True)
            (out / METRICS_FILE).unlink(missing_ok=True)
        if is_main():
            cfgmod.write_toml(config, out / CONFIG_TOML)  # a run killed from here on can be resumed from step 0
        try:
            dataset = family_cls.prepare_data(source, config.data, out / DATA_DIR, modality=config.modality)
            check_model_fits(model, dataset, seed=config.train.seed, training=True, device=device)
            model.build(dataset, seed=config.train.seed)
        except BaseException:
            if not restart:  # nothing half-made is left to be mistaken for a run
                shutil.rmtree(made if made is not None else out, ignore_errors=True)
            raise
    if is_main():
        from genlab.responsible.release import run_identity

        cfgmod.write_toml(config, out / CONFIG_TOML)
        run_identity(out, create=True)  # the run id and text-watermark key, made once
        if parent_run is not None and not resume and not (out / LINEAGE_FILE).is_file():
            write_json(out / LINEAGE_FILE, _lineage(family_cls, parent_run))
    model.fit(dataset, config.train, run_dir=out, resume=resume, progress=progress, callbacks=subscribers)
    if is_main():
        from genlab.nets import n_params
        from genlab.responsible.card import write_card

        write_json(out / SUMMARY_FILE, {**model.fit_summary_, "n_params": n_params(*model.networks_.values())})
        plot_losses(out, unit=registry.get_modality(config.modality).unit_name)
        write_card(out)  # RUN/README.md, the model card (`genlab card RUN` rewrites it)
    return Run(out, config, model, dataset)


def modality_for(family_cls: type, data: str) -> str:
    """The kind of data a run of ``family_cls`` on ``data`` learns: a registered dataset's own; for a user's path,
    the first modality feeding the family that claims it (the family's own first, and the fallback)."""
    named = registry.dataset_modality(data)
    if named is not None:
        feeds = registry.get_modality(named).data_interface
        if feeds != family_cls.data_interface:
            raise GenlabError(f"dataset '{data}' is {named} data; the {family_cls.name} family learns from "
                              f"{family_cls.data_interface}, which {named} data does not give")
        return named
    path = Path(data).expanduser()
    if path.exists():
        feeding = [registry.get_modality(name) for name in
                   [family_cls.modality, *(m for m in registry.MODALITIES if m != family_cls.modality)]]
        feeding = [m for m in feeding if m.data_interface == family_cls.data_interface]
        for plugin in feeding:
            if plugin.claims(path):
                return plugin.name
        if path.is_dir() and len(feeding) > 1:  # a folder none of them reads: say what each would
            kinds = "; ".join(f"{m.name}: {m.path_hint}" for m in feeding)
            raise GenlabError(f"{path}: no files the {family_cls.name} family learns from in this folder ({kinds})")
    return family_cls.modality


def _resume_config(family: str, data: str, family_cls: type, out: Path, config_file: Any,
                   overrides: Sequence[str]) -> tuple[cfgmod.RunConfig, bool]:
    """The run's saved config with the new ``[train]`` and ``[release]`` settings (the rest must not change), and
    whether it restarts from step 0 (no checkpoint yet)."""
    if not (out / CONFIG_TOML).is_file():
        raise GenlabError(f"{out} is not a run to resume (no {CONFIG_TOML}); train without --resume")
    saved = read_run_config(out)
    if saved.family != family:
        raise GenlabError(f"cannot resume {out}: it is a '{saved.family}' run, not '{family}'")
    if saved.dataset != data:
        raise GenlabError(f"cannot resume {out}: it was trained on '{saved.dataset}', not '{data}'")
    base = saved.to_dict()
    config = cfgmod.build(family, data, family_cls.Config, family_cls.data_config_class(saved.modality), base=base,
                          config_file=config_file, overrides=overrides, modality=saved.modality)
    if config.model != saved.model or config.data != saved.data or config.privacy != saved.privacy:
        changed = [f"{s}.{k}" for s in ("model", "data", "privacy") for k, v in base[s].items()
                   if config.to_dict()[s].get(k) != v]
        raise GenlabError(f"cannot resume {out}: the architecture or data settings differ ({', '.join(changed)})")
    return config, not (out / CHECKPOINT_FILE).is_file()


def _parent(family_cls: type, parent: str | Path | None, out: Path, resume: bool) -> Run | None:
    """The loaded parent run: the one given, or on resume the one ``lineage.json`` names."""
    if resume and parent is None and family_cls.uses_parent:
        found = parent_of(out)
        if found is None:
            raise GenlabError(f"cannot resume {out}: the parent run its {LINEAGE_FILE} names is gone")
        return found
    if parent is None:
        if family_cls.uses_parent:
            raise GenlabError(f"the {family_cls.name} family builds on a parent run; name it (parent=RUN)")
        return None
    if not family_cls.uses_parent:
        raise GenlabError(f"the {family_cls.name} family trains from scratch; it takes no parent run")
    return Run.load(parent)


def _lineage(family_cls: type, parent: Run) -> dict[str, Any]:
    return {"relation": family_cls.parent_relation, "name": parent.path.resolve().name,
            "path": str(parent.path.resolve()), "run_id": parent.release.identity.run_id,
            "family": parent.config.family, "dataset": Path(parent.config.dataset).name,
            "weights_sha256": parent.release.weights_sha256}


def describe(data: str, *, target: str | None = None) -> dict[str, Any]:
    """The metadata genlab detects for dataset ``data`` (a name or a path): what ``--set data.metadata=FILE`` takes
    back once edited. Only kinds of data with metadata (tables) have one."""
    from genlab.modalities.base import Modality

    named = registry.dataset_modality(data)
    names = [named] if named else [m for m in registry.MODALITIES if registry.get_modality(m).claims(Path(data))
                                   and type(registry.get_modality(m)).describe is not Modality.describe]
    if not names:
        raise GenlabError(f"{data}: not a dataset genlab knows nor a file it can describe (see `genlab data list`)")
    modality = registry.get_modality(names[0])
    return modality.describe(modality.resolve(data), target=target)


def load(path: str | Path) -> Run:
    """Open a run folder: its config, data and trained model."""
    return Run.load(path)


def plot_losses(run_dir: Path, *, unit: str = "token") -> Path | None:
    """Draw training and validation loss against step into ``loss.png``."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
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
    atomic_write_bytes(run_dir / LOSS_PLOT, buf.getvalue())
    return run_dir / LOSS_PLOT
