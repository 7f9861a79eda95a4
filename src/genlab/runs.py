"""Runs: a run is a folder holding everything about one trained model (``runfiles.py`` names its files).

``Run`` is the use-case face of a run folder: ``sample`` (generate, watermark, and return outputs that save
themselves, signed), ``vary``, ``interpolate`` and ``continue_clip`` (for families that can), ``evaluate``,
``audit``, ``detect``, ``write_card`` and ``export``. The command line and the HTTP API call these; nothing here
tests a modality's or a family's name: what differs comes from the run's modality plugin and its family.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from genlab import config as cfgmod
from genlab import registry
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.base import Modality, accepts
from genlab.runfiles import (
    AUDIT_DIR,
    AUDIT_FILE,
    CONFIG_TOML,
    DATA_DIR,
    EVAL_FILE,
    EVAL_PARTIAL_FILE,
    LINEAGE_FILE,
    check_folder,
    list_run_folders,
    read_json,
    summarize,
    write_json,
)


@dataclass
class Run:
    """A trained (or training) run folder, with its family loaded."""

    path: Path
    config: cfgmod.RunConfig
    model: Any  # the family instance (a models.base.Family), weights loaded
    data: Any  # the modality's data object (e.g. TextData)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        from genlab.memory import check_model_fits

        path = Path(path)
        if not (path / CONFIG_TOML).is_file():
            raise GenlabError(f"{path} is not a genlab run (no {CONFIG_TOML}); see `genlab runs`")
        check_folder(path)  # only regular files inside the folder are read
        config = read_run_config(path)
        family_cls = registry.get_family(config.family)
        data = family_cls.load_data(config.data, path / DATA_DIR, modality=config.modality)
        model = family_cls(config.model, parent=parent_of(path) if family_cls.uses_parent else None,
                           modality=config.modality, privacy=config.privacy)
        device = inference_device(config.train.device)
        check_model_fits(model, data, seed=config.train.seed, training=False, device=device)  # sizes from the folder
        model.build(data, seed=config.train.seed)
        model.load_weights(path)
        for net in [*model.networks_.values(), *getattr(model, "frozen_", {}).values()]:
            net.to(device)  # sampling, evaluation and audits run where the run asks (a GPU when it trained on one)
        return cls(path, config, model, data)

    @property
    def modality(self) -> Modality:
        """The plugin of the run's kind of data."""
        return registry.get_modality(self.config.modality)

    @property
    def lineage(self) -> dict[str, Any] | None:
        """The parent run this one was made from (``lineage.json``), or None for a run trained from scratch."""
        return read_json(self.path / LINEAGE_FILE)

    @cached_property
    def release(self):
        """The release layer: watermarks this run's outputs and signs the files they go to."""
        from genlab.responsible.release import Release

        return Release(self)

    # -- generating -------------------------------------------------------------------------------------------
    def sample(self, n: int = 1, *, seed: int | None = None, watermark: bool | None = None, **options: Any) -> Any:
        """``n`` outputs of the family (the modality's ``Outputs``), watermarked as ``[release]`` says
        (``watermark=False`` to turn it off), ready to ``save(folder)`` signed. ``options`` are the family's
        sampling options (the modality's ``sample_options``: a prompt, a label, ...)."""
        if not self.model.generates:
            self.model.sample(n)  # raises the family's own one-line error (e.g. bert: use `genlab fill`)
        self.modality.check_sample(self.model, options)
        self._check_outputs_fit(n, options)
        return self.release.sample(n, seed=seed, watermark=watermark, **options)

    def _check_outputs_fit(self, n: int, options: dict[str, Any], fix: str = "ask for fewer (--n)") -> None:
        """Refuse, before any is made, ``n`` outputs that would not fit in memory (the modality's estimate)."""
        from genlab.memory import require

        require(self.modality.output_bytes(self.model, n, options), f"making {n:,} outputs", fix)

    def vary(self, image: Any, n: int, *, watermark: bool | None = None, **options: Any) -> Any:
        """Variations of the user's image (families with ``vary``), watermarked and attached like samples."""
        vary = getattr(self.model, "vary", None)
        if vary is None:
            raise GenlabError(f"the {self.config.family} family cannot make variations of an image")
        accepts(vary, options, f"{self.config.family} variations")
        self._check_outputs_fit(n, options)
        return self.release.made(vary(image, n, **options), watermark=watermark, action="vary", **options)

    def interpolate(self, steps: int, *, watermark: bool | None = None, **options: Any) -> Any:
        """Frames walking the latent space (families with ``interpolate``), watermarked and attached like samples."""
        interpolate = getattr(self.model, "interpolate", None)
        if interpolate is None:
            raise GenlabError(f"the {self.config.family} family has no latent space to interpolate in")
        accepts(interpolate, options, f"{self.config.family} interpolation")
        self._check_outputs_fit(steps, options)
        return self.release.made(interpolate(steps, **options), watermark=watermark, action="interpolate",
                                 **{k: v for k, v in options.items() if k != "images"})

    def continue_clip(self, clip: Any = None, frames: int = 10, *, held_out: int | None = None,
                      watermark: bool | None = None, **options: Any) -> Any:
        """The next ``frames`` frames of ``clip`` (uint8 (K, C, H, W)), or of clip ``held_out`` of the run's
        held-out split (whose true future is then attached, for its contact sheet); families with
        ``continue_clip``. The given frames come back unchanged; the new ones are watermarked like samples."""
        extend = getattr(self.model, "continue_clip", None)
        if extend is None:
            raise GenlabError(f"the {self.config.family} family cannot continue a clip")
        if (clip is None) == (held_out is None):
            raise GenlabError("give a clip or a held-out clip's number (--held-out), not both or neither")
        accepts(extend, options, f"{self.config.family} continuation")
        truth = None
        if held_out is not None:
            count = self.data.counts["val"]
            if not 0 <= held_out < count:
                raise BadArgument("held_out", f"must be a held-out clip from 0 to {count - 1}, got {held_out}")
            clip = self.data.raw("val", [held_out])[0]  # (T, C, H, W)
        self._check_outputs_fit(options.get("n") or 1, {"frames": frames},
                                "ask for fewer frames (--frames) or futures (--n)")
        out = extend(clip, frames, **options)
        if held_out is not None:
            future = clip[out.given : out.given + frames]
            truth = np.repeat(future[None], len(out), 0) if len(future) else None
        out = self.release.made(out, watermark=watermark, action="continue", frames=frames, held_out=held_out,
                                **options)
        out.truth = truth
        return out

    # -- measuring --------------------------------------------------------------------------------------------
    def evaluate(self, *, save: bool = True, **options: Any) -> dict[str, Any]:
        """The family's report on the held-out split; kept in ``eval.json`` for the model card, or, when the options
        cover only part of the split, in ``eval.partial.json`` (marked ``partial``)."""
        self.modality.check_evaluate(self.model, options)
        if isinstance(options.get("n"), int):  # the samples an evaluation generates
            self._check_outputs_fit(options["n"], {})
        report = {"run": str(self.path), "family": self.config.family, "dataset": self.config.dataset,
                  **self.modality.evaluate(self.model, self.data, **options)}
        partial = self.modality.partial(options, self.data)
        if partial:
            report["partial"] = partial
        if save:  # a partial evaluation never replaces the full one the card shows
            write_json(self.path / (EVAL_PARTIAL_FILE if partial else EVAL_FILE), report)
            self.write_card()
        return report

    def audit(self, *, n: int | None = None, seed: int = 0, save: bool = True) -> dict[str, Any]:
        """Memorisation and bias audit of this run's outputs; kept in ``audit.json`` (pictures in ``audit/``).

        ``n`` samples (default: the modality's, e.g. 64 texts or 500 images).
        """
        from genlab.responsible.audit import audit_run

        from genlab.nets import check_seed

        n = n if n is not None else self.modality.audit_samples
        check_seed(seed)
        self._check_outputs_fit(n, {})
        report = audit_run(self, n=n, seed=seed, out=self.path / AUDIT_DIR if save else None)
        if save:
            write_json(self.path / AUDIT_FILE, report)
            self.write_card()
        return report

    def write_card(self) -> Path:
        """Write the model card ``README.md`` from what the run has measured so far."""
        from genlab.responsible.card import write_card

        return write_card(self.path)

    def detect(self, content: Any, **kwargs: Any) -> Any:
        """Look for this run's watermark: text -> ``Detection`` (z-scores), image array -> ``ImageMark``."""
        marks = self.release.marks
        if marks is None:
            raise GenlabError(f"{self.config.family} outputs carry no watermark yet")
        return marks.detect(content, **kwargs)

    def export(self, out: str | Path) -> Path:
        """A new folder that loads without genlab (transformers, diffusers or PyTorch alone), with the model card
        and how to use it as ``README.md``."""
        from genlab.files import UMASK, atomic_folder, atomic_write_bytes
        from genlab.responsible.card import render_card
        from genlab.runfiles import CARD_FILE

        out = Path(out)
        if out.exists():
            raise GenlabError(f"{out} already exists; choose a new folder to export to")

        def write(tmp: Path) -> None:
            self.model.export(tmp)
            card = render_card(self.path, usage=self.model.usage(str(out)))
            atomic_write_bytes(tmp / CARD_FILE, card.encode("utf-8"))
            for path in tmp.rglob("*"):  # libraries may write private (0600) files; an export holds no secret
                path.chmod((0o777 if path.is_dir() else 0o666) & ~UMASK)

        atomic_folder(out, write)
        return out

    def summary(self) -> dict[str, Any]:
        return summarize(self.path)


def read_run_config(path: Path) -> cfgmod.RunConfig:
    """A run's ``config.toml``, every key and type checked as a config file given by the user is."""
    file = path / CONFIG_TOML
    raw = cfgmod.read_toml(file)
    for key in ("family", "dataset", "modality"):
        if key in raw and not isinstance(raw[key], str):
            raise GenlabError(f"{file}: {key} = {raw[key]!r} is not a string; the file was edited or damaged")
    if "family" not in raw:
        raise GenlabError(f"{file} names no family; the file was edited or damaged")
    family_cls = registry.get_family(raw["family"])
    modality = raw.get("modality") or family_cls.modality  # runs made before runs recorded it: the family's own
    registry.get_modality(modality)  # an unknown one is named
    try:
        return cfgmod.build(raw["family"], raw.get("dataset", "?"), family_cls.Config,
                            family_cls.data_config_class(modality), base=raw, modality=modality, where=str(file))
    except GenlabError as e:
        raise GenlabError(str(e) if str(file) in str(e) else f"{file}: {e}") from None


def inference_device(setting: str) -> Any:
    """Where a loaded run computes: CUDA when its ``train.device`` is "cuda" or "auto" and a GPU is visible, else
    the CPU (a run trained on a GPU still loads on a machine without one)."""
    import torch

    return torch.device("cuda" if setting in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def parent_of(path: Path) -> Run | None:
    """The parent run ``lineage.json`` names, loaded; None when there is none or its folder is gone."""
    lineage = read_json(Path(path) / LINEAGE_FILE)
    if not lineage or not Path(lineage.get("path", "")).joinpath(CONFIG_TOML).is_file():
        return None
    return Run.load(lineage["path"])


def list_runs(folder: str | Path = "runs") -> list[dict[str, Any]]:
    """``summarize`` of every run under ``folder`` (or of ``folder`` itself when it is a run)."""
    return [summarize(p) for p in list_run_folders(Path(folder))]
