"""The model card: ``RUN/README.md`` in the Hugging Face model-card format, written from the run's own files.

YAML front matter (``library_name``, ``tags``, ``datasets``, ``metrics``, ``model-index`` from ``eval.json``,
``co2_eq_emissions`` from ``energy.json``) then sections: model, training data, training set-up, evaluation,
energy and compute, responsible release, audit, intended use and limitations, how to reproduce. Every figure is
read from a file of the run (``config.toml``, ``config.json``, ``summary.json``, ``metrics.jsonl``,
``data/meta.json``, ``eval.json``, ``energy.json``, ``audit.json``); a section whose file is missing says which
command makes it. Nothing here names a family: the family's name and modality come from its registry entry.

``genlab train`` writes the card at the end of training; ``genlab card RUN`` writes it again (after
``genlab eval`` or ``genlab audit``, say).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.runs import AUDIT_FILE, EVAL_FILE

CARD_FILE = "README.md"

PIPELINE_TAGS = {"text": "text-generation", "image": "unconditional-image-generation"}

# What the model is for and what it is not, by modality; a new modality gets the generic text until it has its own.
INTENDED_USE = {
    "text": [
        ("A small language model trained from scratch on the user's own corpus, on one machine. It continues text "
         "in the style and vocabulary of that corpus: for learning how language models work, for style experiments, "
         "and as a baseline."),
        ("It is not a source of facts: it invents names, dates, quotations and claims that read fluently. Do not "
         "use it for advice, or for decisions about people."),
        ("It can reproduce passages of its training text verbatim, more so for small corpora and long training; "
         "see the audit before sharing outputs or weights trained on private or copyrighted text."),
        "It knows nothing outside its corpus, and repeats that corpus's biases and stereotypes.",
        ("Generated text carries a statistical watermark (Kirchenbauer et al.'s green list: a bias on the "
         "next-token choice) that `genlab detect FILE --run RUN` finds with this run's secret key. Paraphrasing, "
         "translation or heavy editing removes it, and a short text (a few dozen tokens) cannot be told apart "
         "reliably; the absence of the mark proves nothing."),
    ],
    "image": [
        ("A small image generator trained from scratch on the user's own images, at their resolution: for "
         "learning how generative models work, for data-set exploration and as a baseline."),
        ("It reproduces the look of its training set, including its biases (what and who is shown, and how), and "
         "can produce near-copies of training images; see the audit's nearest-neighbour figures before sharing "
         "outputs or weights trained on private images or images of people."),
        "Do not use it to make images of real people, or images meant to deceive.",
        ("Generated images carry an invisible watermark holding this run's id (`genlab verify FILE` reports it). It survives "
         "resizing and mild compression, not rotation, flips, heavy crops or editing; images under 24x24 pixels "
         "carry none. Its key is public, so anyone can detect, remove or forge it: it labels honest provenance, "
         "it does not secure it, and the absence of the mark proves nothing."),
    ],
}
GENERIC_USE = [
    ("A small generative model trained from scratch on the user's own data, on one machine: for learning, "
     "exploration and as a baseline. It reproduces its training data's content and biases and may copy from it; "
     "see the audit before sharing outputs or weights."),
]
SIGNING_NOTE = (
    "Files written by `genlab sample` are signed with a C2PA manifest (embedded in PNG/JPEG, a `.c2pa` sidecar for "
    "text) naming this run and the SHA-256 of its weights. Many platforms strip manifests, so a missing manifest "
    "proves nothing; a present one proves which run and key made the file, and that the file is unchanged."
)


def write_card(run_dir: Path) -> Path:
    """Write ``RUN/README.md`` (atomically) from the run's files; returns its path."""
    run_dir = Path(run_dir)
    text = render_card(run_dir)
    path = run_dir / CARD_FILE
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def render_card(run_dir: Path) -> str:
    from genlab import config as cfgmod
    from genlab.runs import CONFIG_TOML

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_TOML).is_file():
        raise GenlabError(f"{run_dir} is not a genlab run (no {CONFIG_TOML}); see `genlab runs`")
    raw = cfgmod.read_toml(run_dir / CONFIG_TOML)
    info = _gather(run_dir, raw)
    parts = [
        _front_matter(info),
        f"# {info['name']}\n\n{_lede(info)}\n\nCommands below write `RUN` for this folder.",
        _model_section(info),
        _data_section(info),
        _training_section(info),
        _evaluation_section(info),
        _energy_section(info),
        _release_section(info),
        _audit_section(info),
        _use_section(info),
        _reproduce_section(info),
    ]
    return "\n\n".join(p.strip() for p in parts) + "\n"


# -- reading the run ------------------------------------------------------------------------------------------------
def _gather(run_dir: Path, raw: dict[str, Any]) -> dict[str, Any]:
    from genlab.models import get_family
    from genlab.models.base import CONFIG_FILE
    from genlab.responsible.energy import read_energy
    from genlab.runs import DATA_DIR, summarize

    family = str(raw.get("family", "?"))
    try:
        modality = get_family(family).modality
    except GenlabError:  # a family this genlab does not have: the card is still written
        modality = "unknown"
    dataset = str(raw.get("dataset", "?"))
    return {
        "run_dir": run_dir,
        "name": run_dir.resolve().name,
        "family": family,
        "modality": modality,
        "dataset": _dataset_name(dataset),
        "raw": raw,
        "model_json": _read_json(run_dir / CONFIG_FILE),
        "summary": _read_json(run_dir / "summary.json"),
        "progress": summarize(run_dir),
        "meta": _read_json(run_dir / DATA_DIR / "meta.json"),
        "eval": _read_json(run_dir / EVAL_FILE),
        "energy": read_energy(run_dir),
        "audit": _read_json(run_dir / AUDIT_FILE),
        "release_file": _read_json(run_dir / "release.json"),
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _dataset_name(dataset: str) -> str:
    """A registry name as it is; a path to the user's files by its last part only (no local paths in a card)."""
    return Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset


# -- front matter ---------------------------------------------------------------------------------------------------
def _front_matter(info: dict[str, Any]) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    metrics = _eval_metrics(info)
    task = PIPELINE_TAGS.get(info["modality"], f"{info['modality']}-generation")
    results = [
        EvalResult(task_type=task, dataset_type=info["dataset"], dataset_name=info["dataset"],
                   dataset_split="validation", metric_type=k, metric_value=v, metric_name=k.replace("_", " "))
        for k, v in metrics.items()
    ]
    extra: dict[str, Any] = {}
    co2 = _co2_block(info)
    if co2:
        extra["co2_eq_emissions"] = co2
    data = ModelCardData(
        library_name="genlab",
        tags=list(dict.fromkeys([info["family"], info["modality"], "genlab"])),
        datasets=[info["dataset"]],
        metrics=list(metrics) or None,
        pipeline_tag=PIPELINE_TAGS.get(info["modality"]),
        model_name=info["name"] if results else None,
        eval_results=results or None,
        **extra,
    )
    return f"---\n{data.to_yaml()}\n---"


def _eval_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The report's measured figures; integers are counts (tokens scored, samples, parameters), not metrics."""
    report = info["eval"] or {}
    return {k: _sig(v, 6) for k, v in report.items() if isinstance(v, float) and math.isfinite(v)}


def _co2_block(info: dict[str, Any]) -> dict[str, Any] | None:
    energy = info["energy"]
    total = (energy or {}).get("total") or {}
    if total.get("emissions_kg_co2eq") is None:
        return None
    last = _last_measured(energy)
    return {
        "emissions": _sig(total["emissions_kg_co2eq"] * 1000),  # grams, as the Hub expects
        "source": "CodeCarbon (offline)",
        "training_type": "pre-training",  # genlab trains every model from scratch
        "geographical_location": last.get("country_name") or last.get("country") or "unknown",
        "hardware_used": _hardware(last),
    }


# -- sections -------------------------------------------------------------------------------------------------------
def _lede(info: dict[str, Any]) -> str:
    n = (info["summary"] or {}).get("n_params")
    size = f"{_count(n)}-parameter " if n else ""
    return (f"A {size}`{info['family']}` model ({info['modality']}) trained from scratch with "
            f"genlab on `{info['dataset']}`.")


def _model_section(info: dict[str, Any]) -> str:
    lines = ["## Model", ""]
    summary = info["summary"] or {}
    model_json = info["model_json"] or {}
    rows = [("family", f"`{info['family']}`"), ("modality", info["modality"])]
    if summary.get("n_params"):
        rows.append(("parameters", f"{summary['n_params']:,}"))
    if model_json.get("genlab_version"):
        rows.append(("genlab version", model_json["genlab_version"]))
    lines += _table(("", ""), rows, header=False)
    arch = model_json.get("architecture")
    if isinstance(arch, dict):
        lines += ["", "Architecture (`config.json`; the weights are `model.safetensors`):", ""]
        lines += _table(("setting", "value"), [(k, _fmt(v)) for k, v in arch.items() if k != "family"])
    else:
        lines += ["", "Architecture: not saved yet (no `config.json`); the run has not finished a checkpoint."]
    return "\n".join(lines)


def _data_section(info: dict[str, Any]) -> str:
    lines = ["## Training data", "", f"Dataset: `{info['dataset']}`."]
    data_cfg = info["raw"].get("data") or {}
    meta = info["meta"]
    if meta:
        rows: list[tuple[str, str]] = []
        for key, value in meta.items():
            if key in ("dtype", "name"):
                continue
            if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
                for split, counts in value.items():  # e.g. {"train": {"tokens": .., "chars": ..}, "val": ..}
                    figures = ", ".join(f"{_fmt(v)} {k}" for k, v in counts.items() if _is_number(v))
                    rows.append((f"{split} split", figures))
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                names = ", ".join(value[:10]) + (" ..." if len(value) > 10 else "")
                rows.append((key.replace("_", " "), f"{len(value)}: {names}"))
            elif _is_number(value) or isinstance(value, (list, str)):
                rows.append((key.replace("_", " "), _fmt(value)))
        if rows:
            lines += ["", *_table(("", ""), rows, header=False)]
    else:
        lines += ["", "Split sizes: not recorded (no `data/meta.json`)."]
    if data_cfg:
        settings = [(k, _fmt(v)) for k, v in data_cfg.items()]
        lines += ["", "Data settings (`[data]`):", "", *_table(("setting", "value"), settings)]
    return "\n".join(lines)


def _training_section(info: dict[str, Any]) -> str:
    summary, progress = info["summary"] or {}, info["progress"]
    steps = summary.get("steps", progress.get("steps"))
    best = summary.get("best_val_loss", progress.get("best_val_loss"))
    wall = summary.get("elapsed_s", progress.get("wall_s"))
    rows = [("steps", f"{_fmt(steps)} of {_fmt(progress.get('max_steps'))}"),
            ("best validation loss", _fmt(best)),
            ("last validation loss", _fmt(summary.get("val_loss"))),
            ("wall time", _duration(wall)),
            ("stopped by", _fmt(summary.get("stopped_by"))),
            ("device, precision", f"{_fmt(summary.get('device'))}, {_fmt(summary.get('precision'))}")]
    lines = ["## Training set-up", ""]
    if not summary:
        lines += ["Training has not finished (no `summary.json`); figures so far come from `metrics.jsonl`.", ""]
    lines += _table(("", ""), rows, header=False)
    train = info["raw"].get("train") or {}
    if train:
        lines += ["", "`[train]` settings (AdamW, linear warm-up then cosine decay; the curves are in `loss.png`):", ""]
        lines += _table(("setting", "value"), [(k, _fmt(v)) for k, v in train.items()])
    return "\n".join(lines)


def _evaluation_section(info: dict[str, Any]) -> str:
    report = info["eval"]
    lines = ["## Evaluation", ""]
    if not report:
        return "\n".join(lines + ["Not measured yet: run `genlab eval RUN`, then `genlab card RUN`."])
    refs = [k for k in ("floor", "ceiling") if isinstance(report.get(k), dict)]
    headers = ("metric", "model", *(f"{r} ({'random weights' if r == 'floor' else 'real data'})" for r in refs))
    rows = [(k, _fmt(v), *(_fmt(report[r].get(k)) for r in refs))
            for k, v in report.items() if k not in ("run", "family", "dataset", *refs) and not isinstance(v, dict)]
    lines += [f"On the held-out split of `{info['dataset']}` (`eval.json`)"
              + (": the floor is the same network with random weights, the ceiling real data scored as samples."
                 if refs else "."), ""]
    return "\n".join(lines + _table(headers, rows))


ENERGY_NOTE = (
    "Energy is CodeCarbon's estimate for this process (CPU, RAM, GPU) and emissions are that energy times the "
    "country's carbon intensity; without RAPL or NVML counters the CPU figure is TDP x CPU load, not a measurement. "
    "FLOPs are PyTorch's `FlopCounterMode` count (matrix products, convolutions, attention) of one forward and "
    "backward per step, times the steps trained; validation is not included, and steps redone after a resume count "
    "again, as they cost energy again."
)


def _energy_section(info: dict[str, Any]) -> str:
    energy = info["energy"]
    lines = ["## Energy and compute", ""]
    if not energy:
        track = (info["raw"].get("release") or {}).get("track_energy", True)
        why = "training ran with `release.track_energy = false`" if track is False else "no `energy.json`"
        return "\n".join(lines + [f"Not recorded ({why}). Train with `--set release.track_energy=true` to measure it."])
    total, last = energy.get("total") or {}, _last_measured(energy)
    sessions = energy.get("sessions") or []
    kwh = total.get("energy_kwh") or {}
    rows = [("training sessions", f"{total.get('sessions')} ({total.get('steps')} steps; a resume adds a session)"),
            ("wall time", _duration(total.get("duration_s")))]
    if kwh:
        parts = ", ".join(f"{k.upper()} {_fmt(kwh.get(k))}" for k in ("cpu", "ram", "gpu") if kwh.get(k))
        grams = _sig((total.get("emissions_kg_co2eq") or 0) * 1000)
        place = last.get("country_name") or last.get("country")
        methods = "; ".join(f"{k.upper()}: {v}" for k, v in (last.get("power_method") or {}).items() if v)
        rows += [("energy", f"{_fmt(kwh.get('total'))} kWh ({parts})"),
                 ("emissions", f"{_fmt(grams)} g CO2eq"),
                 ("carbon intensity", f"{_fmt(last.get('carbon_intensity_g_per_kwh'))} g CO2eq/kWh ({place})"),
                 ("hardware", _hardware(last)),
                 ("power method", methods),
                 ("measured by",
                  f"CodeCarbon {last.get('codecarbon_version')}, offline, {last.get('tracking_mode')} mode")]
    if total.get("unmeasured_sessions"):
        reasons = sorted({s.get("error") for s in sessions if s.get("error")})
        rows.append(("not measured", f"{total['unmeasured_sessions']} session(s): " + "; ".join(reasons)))
    rows += [("FLOPs per step", _fmt(energy.get("flops_per_step"))),
             ("training FLOPs", _fmt(energy.get("train_flops"))),
             ("achieved FLOP/s", _fmt(energy.get("achieved_flops_per_s")))]
    lines += [*_table(("", ""), rows, header=False), "", ENERGY_NOTE]
    if len(sessions) > 1:
        per_session = []
        for i, s in enumerate(sessions):
            kg = s.get("emissions_kg_co2eq")
            per_session.append((str(i + 1), _fmt(s.get("status")), _fmt(s.get("steps")), _duration(s.get("duration_s")),
                                _fmt((s.get("energy_kwh") or {}).get("total")),
                                _fmt(_sig(kg * 1000) if kg is not None else None)))
        lines += ["", *_table(("session", "status", "steps", "wall time", "kWh", "g CO2eq"), per_session)]
    return "\n".join(lines)


def _release_section(info: dict[str, Any]) -> str:
    release = info["raw"].get("release") or {}
    modality = info["modality"]
    lines = ["## Responsible release", ""]
    rows = [(k, _fmt(v)) for k, v in release.items()]
    if info["release_file"] and info["release_file"].get("run_id"):
        rows.insert(0, ("run id", f"`{info['release_file']['run_id']}`"))
    if rows:
        lines += ["`[release]` settings:", "", *_table(("setting", "value"), rows), ""]
    watermark, sign = release.get("watermark", True), release.get("sign", True)
    lines.append("Outputs are watermarked." if watermark else "Watermarking is off for this run.")
    lines += ["", SIGNING_NOTE if sign else "Signing is off for this run.", "", "How to check a file:", "",
              "```sh", "genlab verify FILE              # the C2PA manifest (who made it, from which run and weights)"
                       " and the watermark, together"]
    if modality == "text":
        lines.append("genlab detect FILE --run RUN    # the text watermark alone: z-score, p-value, windows")
    lines.append("```")
    return "\n".join(lines)


def _audit_section(info: dict[str, Any]) -> str:
    audit = info["audit"]
    lines = ["## Audit: memorisation and bias", ""]
    if not audit:
        return "\n".join(lines + ["Not measured yet: run `genlab audit RUN`, then `genlab card RUN`."])
    summary = audit.get("summary")
    if isinstance(summary, list):
        lines += [f"- {s}" for s in summary if isinstance(s, str)] + [""]
    rows: list[tuple[str, str]] = []
    for key, value in audit.items():
        if _is_number(value):
            rows.append((key, _fmt(value)))
        elif isinstance(value, dict):  # one level down: {"memorisation": {"rate": ...}}
            rows += [(f"{key}.{k}", _fmt(v)) for k, v in value.items() if _is_number(v)]
    if rows:
        lines += ["Figures (`audit.json` has them all):", "", *_table(("figure", "value"), rows)]
    for key in ("method", "limits"):
        text = audit.get(key)
        if isinstance(text, str) and text.strip():
            lines += ["", f"**{key.capitalize()}.** {text.strip()}"]
        elif isinstance(text, list):
            lines += ["", f"**{key.capitalize()}.**", *[f"- {t}" for t in text if isinstance(t, str)]]
    if len(lines) == 2:
        lines.append("`audit.json` holds no figures.")
    return "\n".join(lines)


def _use_section(info: dict[str, Any]) -> str:
    paragraphs = INTENDED_USE.get(info["modality"], GENERIC_USE)
    return "\n".join(["## Intended use and limitations", "", *[f"- {p}" for p in paragraphs]])


def _reproduce_section(info: dict[str, Any]) -> str:
    dataset = info["raw"].get("dataset", "")
    own = "/" in dataset or "\\" in dataset
    return "\n".join([
        "## How to reproduce", "",
        ("`config.toml` in this folder holds every setting; the same seed on the same hardware and software gives "
         "the same run (bit-identical in fp32 on a CPU)."
         + (f" `--data` is the path to the same files (`{info['dataset']}`)." if own else "")), "",
        "```sh",
        f"genlab train {info['family']} --data {info['dataset']} --config RUN/config.toml --out NEW_RUN",
        "genlab eval NEW_RUN",
        "```",
    ])


# -- formatting -----------------------------------------------------------------------------------------------------
def _last_measured(energy: dict[str, Any] | None) -> dict[str, Any]:
    sessions = (energy or {}).get("sessions") or []
    return next((s for s in reversed(sessions) if s.get("energy_kwh")), sessions[-1] if sessions else {})


def _hardware(session: dict[str, Any]) -> str:
    cpu = session.get("cpu_model") or "unknown CPU"
    threads = session.get("cpu_count")
    text = f"{cpu} ({threads} threads)" if threads else cpu
    if session.get("gpu_model"):
        text += f", {session['gpu_model']}"
    return text


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]], *, header: bool = True) -> list[str]:
    if not rows:
        return ["(none)"]
    width = len(headers)
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    head = headers if header else tuple("" for _ in range(width))
    return ["| " + " | ".join(head) + " |", "|" + "---|" * width, *("| " + " | ".join(r) + " |" for r in cells)]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sig(x: float, digits: int = 4) -> float:
    if not x or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{_sig(v):g}" if v else "0"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _duration(s: Any) -> str:
    if not _is_number(s) or not math.isfinite(s):
        return "n/a"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"
