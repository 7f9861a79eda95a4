"""A table run's report: fidelity, utility and privacy of its synthetic rows, beside a Gaussian copula's.

Real rows: the held-out split (never trained on), or the user's ``--real`` file (typed with the run's metadata).
Synthetic rows: as many as the training rows (``n``), from a fixed seed. Each figure is computed the same way for a
Gaussian copula fitted on the same training rows (no gradient steps: seconds), so every number has a baseline in
the same run; the HTML page (``RUN/report.html``) plots real, synthetic and baseline columns side by side. A run
trained under a privacy budget adds what it spent (``privacy.json``). The audit (``genlab audit``) is the privacy
part alone, on more rows, with a verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.data.table_meta import check_against
from genlab.data.tables import TableData, kept, read_table
from genlab.errors import GenlabError
from genlab.responsible.privacy import PRIVACY_FILE

BASELINE = "copula"  # the family every table figure is reported beside
MIA_LIMIT = 0.6  # membership-inference AUC above which the audit says the rows leak who was trained on


def evaluate_table(model: Any, data: TableData, *, real: str | None = None, n: int | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """The report of ``genlab eval`` for a table run: headline figures for the model, the copula baseline and real
    data (the ceiling); every detail (per column, per pair, the distances) in ``report.json`` and ``report.html``
    beside the run's data."""
    from genlab.evaluate.table_report import write_report
    from genlab.evaluate.tables import privacy, quality, utility
    from genlab.files import atomic_write_bytes

    columns = kept(data.meta)
    train = data.frame("train")
    holdout = _real_rows(real, data) if real else data.frame("val")
    n = n or len(train)
    synth = model.sample(n, seed=seed).frame
    details: dict[str, Any] = {"rows": {"train": len(train), "real": len(holdout), "synthetic": n},
                               "real_rows": real or "held-out split"}
    details.update(_figures(train, holdout, synth, columns, data.target, seed, quality, utility, privacy))
    baseline_synth = None
    if type(model).name != BASELINE:  # the baseline, fitted now on the same rows
        baseline_synth = copula_rows(data, n, seed)
        details["baseline"] = {"family": BASELINE, **_figures(train, holdout, baseline_synth, columns, data.target,
                                                              seed, quality, utility, privacy)}
    ceiling = {"quality": quality(holdout, train, columns)}  # real rows scored as if they were synthetic
    details["ceiling"] = ceiling
    spent = data.folder.parent / PRIVACY_FILE
    if spent.is_file():
        details["differential_privacy"] = json.loads(spent.read_text(encoding="utf-8"))
    folder = data.folder.parent
    page = write_report(folder / "report.html", details, holdout, synth, columns, baseline=baseline_synth,
                        baseline_name=BASELINE)
    atomic_write_bytes(folder / "report.json", json.dumps(details, indent=1, default=_plain).encode())
    report: dict[str, Any] = {**headline(details), "html": str(page), "details": str(folder / "report.json")}
    if "differential_privacy" in details:
        dp = details["differential_privacy"]
        report.update(epsilon_spent=dp.get("epsilon_spent"), epsilon_target=dp.get("epsilon_target"))
    if "baseline" in details:
        report["baseline"] = {"name": BASELINE, **headline(details["baseline"])}
    utility_real = details.get("utility", {})
    report["ceiling"] = {"quality": ceiling["quality"]["score"], "column_shapes": ceiling["quality"]["column_shapes"],
                         "column_pair_trends": ceiling["quality"]["column_pair_trends"]}
    if utility_real:
        metric = utility_real["headline"]
        report["ceiling"].update({f"utility_{metric}": utility_real["real"][metric], "utility_ratio": 1.0})
    return report


def headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures a table report shows first, flat: quality, utility, privacy."""
    q, p = figures["quality"], figures["privacy"]
    out = {"quality": q["score"], "column_shapes": q["column_shapes"], "column_pair_trends": q["column_pair_trends"]}
    if "utility" in figures:
        u = figures["utility"]
        out.update({f"utility_{u['headline']}": u["synthetic"][u["headline"]], "utility_ratio": u["ratio"]})
    out.update({"dcr_ratio": p["dcr_ratio"], "exact_copy_share": p["exact_copy_share"], "mia_auc": p["mia_auc"]})
    return out


def _plain(value: Any) -> Any:
    """NumPy scalars in JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def _figures(train, real, synth, columns, target, seed, quality, utility, privacy) -> dict[str, Any]:
    figures = {"quality": quality(real, synth, columns), "privacy": privacy(train, real, synth, columns, seed=seed)}
    if target:
        figures["utility"] = utility(train, real, synth, target, columns, seed=seed, threads=1)  # see utility()
    return figures


def copula_rows(data: TableData, n: int, seed: int) -> Any:
    """``n`` rows of a Gaussian copula fitted on ``data``'s training rows (the family named in the registry: a
    modality sits below the families and imports none)."""
    from genlab import registry

    family = registry.get_family(BASELINE)
    copula = family(family.Config())
    copula.build(data, seed=seed)
    copula.solve(data)
    return copula.sample(n, seed=seed).frame


def _real_rows(path: str, data: TableData) -> Any:
    """The user's real rows, checked against the run's metadata and typed as the run's rows are."""
    frame = read_table(Path(path).expanduser())
    frame.columns = [str(c) for c in frame.columns]
    meta = {**data.meta, "columns": {k: v for k, v in data.meta["columns"].items() if k in frame.columns}}
    missing = [c for c in kept(data.meta) if c not in frame.columns]
    if missing:
        raise GenlabError(f"{path} lacks column '{missing[0]}' of the run's table")
    extra = [c for c in frame.columns if c not in data.meta["columns"]]
    if extra:
        raise GenlabError(f"{path} has column '{extra[0]}', which the run's table does not")
    check_against(meta, frame, str(path))
    return data.decode(data.encode(frame))


def audit_table(run: Any, *, n: int, seed: int, out: Path | None) -> dict[str, Any]:
    """Memorisation (distance to the closest record, exact copies, membership inference) and representation (does
    every group of every categorical column keep its share?) of ``n`` synthetic rows, with a verdict."""
    from genlab.evaluate.tables import privacy

    data = run.data
    synth = run.model.sample(n, seed=seed).frame
    train, columns = data.frame("train"), kept(data.meta)
    memo = {**privacy(train, data.frame("val"), synth, columns, seed=seed),
            "method": "Distances from synthetic rows to their closest training row against held-out rows' distances; "
                      "exact copies; a distance-based membership-inference attack (training against held-out rows).",
            "limits": "A distance attack is one attacker among many; a low AUC is evidence, not a guarantee. Only a "
                      "differential-privacy budget gives a guarantee."}
    bias = representation(train, synth, columns)
    flags = []
    auc = memo.get("mia_auc")
    if auc is not None and auc > MIA_LIMIT:
        flags.append(f"a membership attack tells training rows from held-out ones (AUC {auc:.2f} > {MIA_LIMIT})")
    if memo.get("exact_copies"):
        flags.append(f"{memo['exact_copies']} synthetic row(s) copy a training row exactly")
    if bias["under_represented"]:
        g = bias["under_represented"][0]
        flags.append(f"{len(bias['under_represented'])} group(s) lose more than half their share (first: "
                     f"{g['column']}={g['value']}: {g['real_share']:.1%} real, {g['synthetic_share']:.1%} synthetic)")
    verdict = ("review: " + "; ".join(flags)) if flags else "pass: no sign of copied training rows or erased groups"
    summary = [verdict, f"membership-inference AUC {auc:.3f} (0.5 = chance)" if auc is not None else "",
               f"exact copies of training rows: {memo.get('exact_copies', 0)} of {n}"]
    return {"memorisation": memo, "bias": bias, "verdict": verdict, "summary": [s for s in summary if s]}


def representation(real: Any, synth: Any, columns: dict[str, Any], *, least: float = 0.01) -> dict[str, Any]:
    """Per categorical value holding at least ``least`` of the real rows: its share in real and synthetic rows;
    the values whose synthetic share is below half the real one are listed (a synthesiser can erase minorities)."""
    rows, under = [], []
    for name, col in columns.items():
        if col["type"] not in ("categorical", "boolean"):
            continue
        real_share = real[name].astype(str).value_counts(normalize=True)
        synth_share = synth[name].astype(str).value_counts(normalize=True)
        for value, share in real_share.items():
            if share < least or value in ("None", "nan", "<NA>"):
                continue
            entry = {"column": name, "value": value, "real_share": float(share),
                     "synthetic_share": float(synth_share.get(value, 0.0))}
            rows.append(entry)
            if entry["synthetic_share"] < 0.5 * share:
                under.append(entry)
    return {"groups": rows, "under_represented": under,
            "method": "Share of each categorical value (at least 1% of real rows) in synthetic against real rows.",
            "limits": "Marginal shares only: a group can keep its share and still be described wrongly (its "
                      "combinations with other columns); the fidelity report's pair trends cover those."}
