"""The model card: ``RUN/README.md`` in the Hugging Face model-card format, written from the run's own files.

YAML front matter (``library_name``, ``tags``, ``datasets``, ``metrics``, ``model-index`` from ``eval.json``,
``co2_eq_emissions`` from ``energy.json``) then sections (``card_sections.py``): model, lineage, training data,
training set-up, evaluation, energy and compute, responsible release, audit, intended use and limitations, how to
reproduce. Every figure is read from a file of the run; a section whose file is missing says which command makes
it. Nothing here names a family or a modality: the task, the intended use and the watermark's detector come from
the run's modality plugin.

``genlab train`` writes the card at the end of training; ``genlab card RUN`` writes it again (after
``genlab eval`` or ``genlab audit``, say).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from genlab import registry
from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.numbers import sig as _sig
from genlab.responsible import card_sections as S
from genlab.runfiles import (
    AUDIT_FILE,
    CARD_FILE,
    CONFIG_JSON,
    CONFIG_TOML,
    DATA_DIR,
    ENERGY_FILE,
    EVAL_FILE,
    EVAL_PARTIAL_FILE,
    LINEAGE_FILE,
    RELEASE_FILE,
    SUMMARY_FILE,
    check_folder,
    read_json,
    summarize,
)


def write_card(run_dir: Path) -> Path:
    """Write ``RUN/README.md`` (atomically) from the run's files; returns its path."""
    run_dir = Path(run_dir)
    text = render_card(run_dir)
    path = run_dir / CARD_FILE
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def render_card(run_dir: Path, *, usage: str | None = None) -> str:
    """The card's Markdown; ``usage`` (Python that uses an export) makes it the README of an exported folder."""
    from genlab import config as cfgmod

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_TOML).is_file():
        raise GenlabError(f"{run_dir} is not a genlab run (no {CONFIG_TOML}); see `genlab runs`")
    check_folder(run_dir)  # only regular files inside the run folder are read
    info = _gather(run_dir, cfgmod.read_toml(run_dir / CONFIG_TOML))
    try:
        return _render(info, usage)
    except GenlabError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as e:  # a record of the wrong shape?
        culprit = _damaged_record(info, usage)
        if culprit is None:
            raise  # every record is as genlab writes it: a bug in genlab
        raise GenlabError(f"{run_dir / culprit} does not hold what genlab writes ({type(e).__name__}: {e}); it was "
                          "edited or damaged: restore it, or delete it and run the command that makes it") from None


# the files a card is made from: info key -> file name in the run folder
RECORDS = {"raw": CONFIG_TOML, "model_json": CONFIG_JSON, "summary": SUMMARY_FILE, "meta": f"{DATA_DIR}/meta.json",
           "eval": f"{EVAL_FILE} (or {EVAL_PARTIAL_FILE})", "energy": ENERGY_FILE, "audit": AUDIT_FILE,
           "release_file": RELEASE_FILE, "lineage": LINEAGE_FILE}


def _damaged_record(info: dict[str, Any], usage: str | None) -> str | None:
    """The one record without which the card renders: the file that was edited or damaged (None: no such one)."""
    for key, name in RECORDS.items():
        if info.get(key) is None:
            continue
        try:
            _render({**info, key: {} if key == "raw" else None}, usage)
        except Exception:
            continue
        return name
    return None


def _render(info: dict[str, Any], usage: str | None) -> str:
    parts = [
        _front_matter(info),
        f"# {info['name']}\n\n{S.lede(info)}\n\n" + ("Commands below write `RUN` for this folder." if not usage else
                                                     "This folder is an export of that genlab run; commands below "
                                                     "that name `RUN` need the run itself."),
        *([f"## Use this export\n\nThis folder loads without genlab:\n\n```python\n{usage}\n```"] if usage else []),
        S.model_section(info),
        S.lineage_section(info),
        S.data_section(info),
        S.training_section(info),
        S.evaluation_section(info),
        S.energy_section(info),
        S.release_section(info),
        S.audit_section(info),
        S.use_section(info),
        S.how_to_use_section(info),
        S.reproduce_section(info),
        S.citation_section(info),
    ]
    return "\n\n".join(p.strip() for p in parts) + "\n"


# -- reading the run ------------------------------------------------------------------------------------------------
def _gather(run_dir: Path, raw: dict[str, Any]) -> dict[str, Any]:
    from genlab.responsible.energy_record import read_energy

    family = str(raw.get("family", "?"))
    try:
        family_cls = registry.get_family(family)
        plugin = registry.get_modality(raw.get("modality") or family_cls.modality)
    except GenlabError:  # a family or modality this genlab does not have: the card is still written
        family_cls = plugin = None
    dataset = str(raw.get("dataset", "?"))
    registered = registry.get_dataset(dataset) if registry.dataset_modality(dataset) else None
    return {
        "run_dir": run_dir,
        "name": run_dir.resolve().name,
        "family": family,
        "family_cls": family_cls,
        "plugin": plugin,
        "dataset_info": registered,
        "modality": plugin.name if plugin else "unknown",
        "pipeline_tag": plugin.pipeline_tag if plugin else None,
        "intended_use": plugin.intended_use if plugin else (),
        "keyed_mark": bool(plugin and plugin.Marks is not None and plugin.Marks.keyed),
        "dataset": _dataset_name(dataset),
        "raw": raw,
        "model_json": read_json(run_dir / CONFIG_JSON),
        "summary": read_json(run_dir / SUMMARY_FILE),
        "progress": summarize(run_dir),
        "meta": read_json(run_dir / DATA_DIR / "meta.json"),
        "eval": read_json(run_dir / EVAL_FILE) or read_json(run_dir / EVAL_PARTIAL_FILE),
        "energy": read_energy(run_dir),
        "audit": read_json(run_dir / AUDIT_FILE),
        "release_file": read_json(run_dir / RELEASE_FILE),
        "lineage": read_json(run_dir / LINEAGE_FILE),
        "data_unused": _unused(plugin, raw.get("data") or {}),
    }


def _unused(plugin: Any, data_cfg: dict[str, Any]) -> dict[str, str]:
    """The ``[data]`` settings that had no effect on this run, and why (the data config says)."""
    try:
        config = plugin.DataConfig(**data_cfg)
    except (AttributeError, TypeError, ValueError):  # no plugin, or a config this genlab does not read
        return {}
    unused = getattr(config, "unused", None)
    return unused() if unused else {}


def _dataset_name(dataset: str) -> str:
    """A registry name as it is; a path to the user's files by its last part only (no local paths in a card)."""
    return Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset


# -- front matter ---------------------------------------------------------------------------------------------------
def _front_matter(info: dict[str, Any]) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    metrics = _eval_metrics(info)
    task = info["pipeline_tag"] or f"{info['modality']}-generation"
    results = [
        EvalResult(task_type=task, dataset_type=info["dataset"], dataset_name=info["dataset"],
                   dataset_split="validation", metric_type=k, metric_value=v, metric_name=k.replace("_", " "))
        for k, v in metrics.items()
    ]
    extra: dict[str, Any] = {}
    co2 = _co2_block(info)
    if co2:
        extra["co2_eq_emissions"] = co2
    if info["lineage"] and info["lineage"].get("name"):
        extra["base_model"] = info["lineage"]["name"]
    info_d = info["dataset_info"]
    if info_d is not None:
        extra["license"] = info_d.license_id
        extra["language"] = list(info_d.language) or None
    else:
        extra["license"] = "unknown"  # the user's own data: only its owner can say
    data = ModelCardData(
        library_name="genlab",
        tags=list(dict.fromkeys([info["family"], info["modality"], "genlab"])),
        datasets=[info["dataset"]],
        metrics=list(metrics) or None,
        pipeline_tag=info["pipeline_tag"],
        model_name=info["name"] if results else None,
        eval_results=results or None,
        **extra,
    )
    return f"---\n{data.to_yaml()}\n---"


def _eval_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The report's measured figures; integers are counts (tokens scored, samples, parameters), not metrics."""
    report = info["eval"] or {}
    if report.get("partial"):  # the model index holds figures of the whole held-out split only
        return {}
    figures = {**report, **(report["model"] if isinstance(report.get("model"), dict) else {})}
    return {k: _sig(v, 6) for k, v in figures.items() if isinstance(v, float) and math.isfinite(v)}


def _co2_block(info: dict[str, Any]) -> dict[str, Any] | None:
    energy = info["energy"]
    total = (energy or {}).get("total") or {}
    if total.get("emissions_kg_co2eq") is None:
        return None
    last = S.last_measured(energy)
    return {
        "emissions": _sig(total["emissions_kg_co2eq"] * 1000),  # grams, as the Hub expects
        "source": "CodeCarbon (offline)",
        "training_type": "fine-tuning" if info["lineage"] else "pre-training",
        "geographical_location": last.get("country_name") or last.get("country") or "unknown",
        "hardware_used": S.hardware(last),
    }
