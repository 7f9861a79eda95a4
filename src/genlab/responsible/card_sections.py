"""The sections of a model card (``card.py`` assembles them): each renders Markdown from what ``card._gather``
read from the run's files, and says which command makes a missing figure."""

from __future__ import annotations

from typing import Any

from genlab.numbers import count as _count
from genlab.numbers import duration as _duration
from genlab.numbers import fmt as _fmt
from genlab.numbers import is_number as _is_number
from genlab.numbers import sig as _sig

GENERIC_USE = (
    ("A small generative model trained from scratch on the user's own data, on one machine: for learning, "
     "exploration and as a baseline. It reproduces its training data's content and biases and may copy from it; "
     "see the audit before sharing outputs or weights."),
)
SIGNING_NOTE = (
    "Files written by `genlab sample` are signed with a C2PA manifest (embedded in PNG/JPEG, a `.c2pa` sidecar for "
    "text) naming this run and the SHA-256 of its weights. Many platforms strip manifests, so a missing manifest "
    "proves nothing; a present one proves which run and key made the file, and that the file is unchanged."
)


def lede(info: dict[str, Any]) -> str:
    n = (info["summary"] or {}).get("n_params")
    size = f"{_count(n)}-parameter " if n else ""
    lineage = info.get("lineage")
    how = (f"{lineage.get('relation', 'made from')} the run `{lineage.get('name', '?')}`" if lineage
           else "trained from scratch")
    return f"A {size}`{info['family']}` model ({info['modality']}) {how} with genlab on `{info['dataset']}`."


def model_section(info: dict[str, Any]) -> str:
    lines = ["## Model", ""]
    summary = info["summary"] or {}
    model_json = info["model_json"] or {}
    rows = [("family", f"`{info['family']}`"), ("modality", info["modality"])]
    if summary.get("n_params"):
        rows.append(("parameters", f"{summary['n_params']:,}"))
    if model_json.get("genlab_version"):
        rows.append(("genlab version", model_json["genlab_version"]))
    lines += table(("", ""), rows, header=False)
    arch = model_json.get("architecture")
    if isinstance(arch, dict):
        lines += ["", "Architecture (`config.json`; the weights are `model.safetensors`):", ""]
        lines += table(("setting", "value"), [(k, _fmt(v)) for k, v in arch.items() if k != "family"])
    else:
        lines += ["", "Architecture: not saved yet (no `config.json`); the run has not finished a checkpoint."]
    return "\n".join(lines)


def data_section(info: dict[str, Any]) -> str:
    dataset = info["dataset_info"]
    licence = (f"Its licence: {dataset.licence}. The weights derive from the data, so that licence (and its "
               "attribution terms) should be taken to cover them and what they generate, unless you know otherwise."
               if dataset is not None else
               "The data is the user's own: its licence is unknown here; say it before sharing the weights.")
    lines = ["## Training data", "", f"Dataset: `{info['dataset']}`. {licence}"]
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
            lines += ["", *table(("", ""), rows, header=False)]
    else:
        lines += ["", "Split sizes: not recorded (no `data/meta.json`)."]
    if data_cfg:
        unused = info["data_unused"]
        settings = [(k, _fmt(v) + (f" ({unused[k]})" if k in unused else "")) for k, v in data_cfg.items()]
        lines += ["", "Data settings (`[data]`):", "", *table(("setting", "value"), settings)]
    return "\n".join(lines)


def training_section(info: dict[str, Any]) -> str:
    summary, progress = info["summary"] or {}, info["progress"]
    steps = summary.get("steps", progress.get("steps"))
    best = summary.get("best_val_loss", progress.get("best_val_loss"))
    wall = summary.get("elapsed_s", progress.get("wall_s"))
    rows = [("steps", f"{_fmt(steps)} of {_fmt(progress.get('max_steps'))}"),
            ("best validation loss", _fmt(best)),
            ("last validation loss", _fmt(summary.get("val_loss"))),
            ("wall time", _duration(wall)),
            ("stopped by", _fmt(summary.get("stopped_by"))),
            ("weights from step", _fmt(summary.get("weights_step", steps))
             + (" (the best validation point: train.keep_best)" if train_keep_best(info) else "")),
            ("device, precision", f"{_fmt(summary.get('device'))}, {_fmt(summary.get('precision'))}")]
    lines = ["## Training set-up", ""]
    if not summary:
        lines += ["Training has not finished (no `summary.json`); figures so far come from `metrics.jsonl`.", ""]
    lines += table(("", ""), rows, header=False)
    train = info["raw"].get("train") or {}
    if summary.get("stopped_by") == "solved":
        lines += ["", "Fitted in one go (closed form, no gradient steps): of `[train]`, only the seed and the "
                  "validation batches (batch_size, eval_batches) apply."]
    elif train:
        lines += ["", "`[train]` settings (AdamW, linear warm-up then cosine decay; the curves are in `loss.png`):", ""]
        lines += table(("setting", "value"), [(k, _fmt(v)) for k, v in train.items()])
    return "\n".join(lines)


def train_keep_best(info: dict[str, Any]) -> bool:
    return bool((info["raw"].get("train") or {}).get("keep_best"))


def lineage_section(info: dict[str, Any]) -> str:
    lineage = info["lineage"]
    lines = ["## Lineage", ""]
    if not lineage:
        return "\n".join(lines + ["Trained from scratch (no parent run)."])
    rows = [("made by", _fmt(lineage.get("relation"))), ("parent run", f"`{lineage.get('name', '?')}`"),
            ("parent run id", f"`{lineage.get('run_id', '?')}`"), ("parent family", f"`{lineage.get('family', '?')}`"),
            ("parent dataset", f"`{lineage.get('dataset', '?')}`"),
            ("parent weights (SHA-256)", f"`{lineage.get('weights_sha256', '?')}`")]
    lines += ["This model was made from another genlab run, which is unchanged:", "", *table(("", ""), rows,
                                                                                           header=False)]
    return "\n".join(lines)


def evaluation_section(info: dict[str, Any]) -> str:
    from genlab.evaluate.report import report_rows

    report, lines = info["eval"], ["## Evaluation", ""]
    if not report:
        return "\n".join(lines + ["Not measured yet: run `genlab eval RUN`, then `genlab card RUN`."])
    titles, rows = report_rows(report)
    where = "`eval.json`"
    if report.get("partial"):
        where = (f"`eval.partial.json`: a partial evaluation, on {report['partial']}; run `genlab eval RUN` for the "
                 "whole split")
    floor = report.get("floor")
    floor = f"the floor is {floor['name']}" if isinstance(floor, dict) and "name" in floor else \
        "the floor is the same network with random weights"
    lines += [f"On the held-out split of `{info['dataset']}` ({where})"
              + (f": {floor}, the ceiling real data scored as samples." if "floor" in report else "."), ""]
    return "\n".join(lines + table(tuple(titles), [(r[0], *map(_fmt, r[1:])) for r in rows]))


ENERGY_NOTE = (
    "Energy is CodeCarbon's estimate for this process (CPU, RAM, GPU) and emissions are that energy times the "
    "country's carbon intensity; without RAPL or NVML counters the CPU figure is TDP x CPU load, not a measurement. "
    "FLOPs are PyTorch's `FlopCounterMode` count (matrix products, convolutions, attention) of one forward and "
    "backward per step, times the steps trained; validation is not included, and steps redone after a resume count "
    "again, as they cost energy again."
)


def energy_section(info: dict[str, Any]) -> str:
    energy = info["energy"]
    lines = ["## Energy and compute", ""]
    if not energy:
        track = (info["raw"].get("release") or {}).get("track_energy", True)
        why = "training ran with `release.track_energy = false`" if track is False else "no `energy.json`"
        return "\n".join(lines + [f"Not recorded ({why}). Train with `--set release.track_energy=true` to measure it."])
    total, last = energy.get("total") or {}, last_measured(energy)
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
                 ("hardware", hardware(last)),
                 ("power method", methods),
                 ("measured by",
                  f"CodeCarbon {last.get('codecarbon_version')}, offline, {last.get('tracking_mode')} mode")]
    if total.get("unmeasured_sessions"):
        reasons = sorted({s.get("error") for s in sessions if s.get("error")})
        rows.append(("not measured", f"{total['unmeasured_sessions']} session(s): " + "; ".join(reasons)))
    rows += [("FLOPs per step", _fmt(energy.get("flops_per_step"))),
             ("training FLOPs", _fmt(energy.get("train_flops"))),
             ("achieved FLOP/s", _fmt(energy.get("achieved_flops_per_s")))]
    lines += [*table(("", ""), rows, header=False), "", ENERGY_NOTE]
    if len(sessions) > 1:
        per_session = []
        for i, s in enumerate(sessions):
            kg = s.get("emissions_kg_co2eq")
            per_session.append((str(i + 1), _fmt(s.get("status")), _fmt(s.get("steps")), _duration(s.get("duration_s")),
                                _fmt((s.get("energy_kwh") or {}).get("total")),
                                _fmt(_sig(kg * 1000) if kg is not None else None)))
        lines += ["", *table(("session", "status", "steps", "wall time", "kWh", "g CO2eq"), per_session)]
    return "\n".join(lines)


def release_section(info: dict[str, Any]) -> str:
    release = info["raw"].get("release") or {}
    lines = ["## Responsible release", ""]
    rows = [(k, _fmt(v)) for k, v in release.items()]
    if info["release_file"] and info["release_file"].get("run_id"):
        rows.insert(0, ("run id", f"`{info['release_file']['run_id']}`"))
    if rows:
        lines += ["`[release]` settings:", "", *table(("setting", "value"), rows), ""]
    watermark, sign = release.get("watermark", True), release.get("sign", True)
    lines.append("Outputs are watermarked." if watermark else "Watermarking is off for this run.")
    lines += ["", SIGNING_NOTE if sign else "Signing is off for this run.", "", "How to check a file:", "",
              "```sh", "genlab verify FILE              # the C2PA manifest (who made it, from which run and weights)"
                       " and the watermark, together"]
    if info["keyed_mark"]:
        lines.append("genlab detect FILE --run RUN    # the keyed watermark alone: z-score, p-value, windows")
    lines.append("```")
    return "\n".join(lines)


def audit_section(info: dict[str, Any]) -> str:
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
        lines += ["Figures (`audit.json` has them all):", "", *table(("figure", "value"), rows)]
    for key in ("method", "limits"):
        text = audit.get(key)
        if isinstance(text, str) and text.strip():
            lines += ["", f"**{key.capitalize()}.** {text.strip()}"]
        elif isinstance(text, list):
            lines += ["", f"**{key.capitalize()}.**", *[f"- {t}" for t in text if isinstance(t, str)]]
    if len(lines) == 2:
        lines.append("`audit.json` holds no figures.")
    return "\n".join(lines)


def use_section(info: dict[str, Any]) -> str:
    paragraphs = [*(info["intended_use"] or GENERIC_USE),
                  *(info["plugin"].card_notes(info["meta"] or {}) if info["plugin"] is not None else [])]
    return "\n".join(["## Intended use and limitations", "", *[f"- {p}" for p in paragraphs]])


def how_to_use_section(info: dict[str, Any]) -> str:
    from genlab import usage

    family, plugin = info["family_cls"], info["plugin"]
    if family is None or plugin is None:
        return "## How to use\n\nThis genlab does not know the family or the kind of data of this run."
    lines = ["## How to use", "", "With genlab installed, from the folder that holds this run (`RUN`):", "", "```sh",
             *usage.commands(family, plugin, "RUN"), "```", "", "```python", usage.python(family, plugin, "RUN"), "```"]
    if family.export_hint:
        lines += ["", "Without genlab: `genlab export RUN OUT` writes a folder that loads with "
                  f"`{family.export_hint.format(path='OUT')}`."]
    return "\n".join(lines)


def citation_section(info: dict[str, Any]) -> str:
    from datetime import date

    version = (info["model_json"] or {}).get("genlab_version", "?")
    family = info["family_cls"]
    key = "".join(c for c in info["name"] if c.isalnum()) or "genlabrun"
    lines = ["## Citation", "", "```bibtex", f"@misc{{{key},", f"  title = {{{info['name']}: a {info['family']} "
             f"model trained on {info['dataset']}}},", f"  note = {{Trained with genlab {version}}},",
             f"  year = {{{date.today().year}}}", "}", "```"]
    if family is not None and family.cites:
        lines += ["", f"The architecture and objective: {family.cites}."]
    dataset = info["dataset_info"]
    if dataset is not None:
        lines += [f"The training data: `{dataset.name}` ({dataset.description}; licence {dataset.licence})."]
    return "\n".join(lines)


def reproduce_section(info: dict[str, Any]) -> str:
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


# -- helpers --------------------------------------------------------------------------------------------------
def last_measured(energy: dict[str, Any] | None) -> dict[str, Any]:
    sessions = (energy or {}).get("sessions") or []
    return next((s for s in reversed(sessions) if s.get("energy_kwh")), sessions[-1] if sessions else {})


def hardware(session: dict[str, Any]) -> str:
    cpu = session.get("cpu_model") or "unknown CPU"
    threads = session.get("cpu_count")
    text = f"{cpu} ({threads} threads)" if threads else cpu
    if session.get("gpu_model"):
        text += f", {session['gpu_model']}"
    return text


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]], *, header: bool = True) -> list[str]:
    if not rows:
        return ["(none)"]
    width = len(headers)
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    head = headers if header else tuple("" for _ in range(width))
    return ["| " + " | ".join(head) + " |", "|" + "---|" * width, *("| " + " | ".join(r) + " |" for r in cells)]
