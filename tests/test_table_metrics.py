"""Synthetic-table metrics (evaluate/tables.py) and their HTML page (evaluate/table_report.py), on small real tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genlab.errors import GenlabError
from genlab.evaluate.table_report import write_report
from genlab.evaluate.tables import privacy, quality, utility

pytest.importorskip("sklearn")


def cancer() -> tuple[pd.DataFrame, dict[str, dict]]:
    """Breast cancer: 569 rows, 10 numeric columns, the diagnosis as a categorical target (object dtype)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:, list(range(10)) + [-1]]
    frame = frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map({0: "malignant", 1: "benign"}).astype(object)
    columns = {c: {"type": "numeric"} for c in frame.columns[:10]} | {"diagnosis": {"type": "categorical"}}
    return frame, columns


def mixed(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, dict]]:
    """A patient table of every type, with missing values: draws from one fixed distribution, by seed."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 12, n).round()
    sex = rng.choice(["F", "M"], n)
    sbp = 100 + 0.6 * age + 8 * (sex == "M") + rng.normal(0, 6, n)
    frame = pd.DataFrame({
        "age": pd.array(age.astype(int), dtype="Int64"),
        "sex": pd.Series(sex, dtype=object),
        "sbp": sbp,
        "smoker": pd.Series(rng.random(n) < 0.3, dtype=object),
        "visit": pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D"),
        "grade": pd.Series(rng.choice(["I", "II", "III"], n), dtype=object),
    })
    frame.loc[rng.random(n) < 0.05, "age"] = pd.NA
    frame.loc[rng.random(n) < 0.1, "sbp"] = np.nan
    frame.loc[rng.random(n) < 0.05, "grade"] = None
    frame.loc[rng.random(n) < 0.05, "visit"] = pd.NaT
    columns = {"age": {"type": "integer"}, "sex": {"type": "categorical"}, "sbp": {"type": "numeric"},
               "smoker": {"type": "boolean"}, "visit": {"type": "datetime"}, "grade": {"type": "categorical"}}
    return frame, columns


def shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each column permuted independently: the same marginals, no relation between columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


def test_quality_of_a_table_against_itself_and_against_broken_copies():
    # setup
    frame, columns = cancer()
    rng = np.random.default_rng(0)
    numeric = list(frame.columns[:10])
    near, noise = frame.copy(), frame.copy()
    for c in numeric:
        near[c] = frame[c] + rng.normal(0, 0.05 * frame[c].std(), len(frame))
        noise[c] = rng.uniform(frame[c].min(), frame[c].max(), len(frame))
    # run
    same = quality(frame, frame, columns)
    mixed_up = quality(frame, shuffled(frame, 1), columns)
    close, far = quality(frame, near, columns), quality(frame, noise, columns)
    every_pair = quality(frame, shuffled(frame, 1), columns, correlation_threshold=0, association_threshold=0)
    # assert
    assert same["score"] == pytest.approx(1) and same["column_pair_trends"] == pytest.approx(1)
    assert mixed_up["column_shapes"] == pytest.approx(1)  # the marginals are untouched
    assert mixed_up["column_pair_trends"] < 0.8
    assert close["score"] > 0.95 > far["score"] + 0.15
    assert len(same["pairs"]) == 11 * 10 // 2 and set(same["columns"]) == set(columns)
    assert same["columns"]["diagnosis"]["metric"] == "TVComplement"
    assert same["pairs"]["mean radius / diagnosis"]["metric"] == "ContingencySimilarity"
    assert every_pair["column_pair_trends"] > mixed_up["column_pair_trends"]  # uncorrelated pairs count too


def test_quality_handles_every_type_and_missing_values():
    # setup
    real, columns = mixed(600, 0)
    other, _ = mixed(500, 1)
    # run
    same, fresh = quality(real, real, columns), quality(real, other, columns)
    # assert
    assert same["score"] == pytest.approx(1)
    assert 0.85 < fresh["score"] < 1
    assert {s["metric"] for s in fresh["columns"].values()} == {"KSComplement", "TVComplement"}
    assert fresh["pairs"]["age / sbp"]["metric"] == "CorrelationSimilarity"


def test_utility_trstr_close_to_trtr_for_a_copy_and_low_for_shuffled_labels():
    # setup
    frame, columns = cancer()
    train, test = frame.iloc[::2].reset_index(drop=True), frame.iloc[1::2].reset_index(drop=True)
    bad = train.copy()
    bad["diagnosis"] = np.random.default_rng(0).permutation(bad["diagnosis"].to_numpy())
    # run
    copy = utility(train, test, train, "diagnosis", columns, seed=0, threads=1)
    noise = utility(train, test, bad, "diagnosis", columns, seed=0, threads=1)
    # assert
    assert copy["task"] == "classification" and copy["headline"] == "f1_macro"
    assert copy["positive_class"] == "malignant"
    assert copy["real"]["f1_macro"] > 0.85 and copy["ratio"] == pytest.approx(1)
    assert copy["synthetic"]["auc"] > 0.9
    assert noise["synthetic"]["auc"] < 0.75 and noise["ratio"] < 0.85


def test_utility_regression_drops_rows_without_a_target():
    # setup
    real, columns = mixed(800, 0)
    fresh, _ = mixed(800, 2)
    train, test = real.iloc[:500].reset_index(drop=True), real.iloc[500:].reset_index(drop=True)
    # run
    out = utility(train, test, fresh, "sbp", columns, threads=1)
    # assert
    assert out["task"] == "regression" and out["headline"] == "r2"
    assert out["dropped_missing_target"]["train"] == int(train["sbp"].isna().sum()) > 0
    assert out["real"]["r2"] > 0.3 and out["ratio"] > 0.8


def test_privacy_flags_a_copy_and_not_a_fresh_draw():
    # setup
    train, columns = mixed(700, 0)
    holdout, _ = mixed(700, 1)
    fresh, _ = mixed(700, 2)
    # run
    copy = privacy(train, holdout, train, columns, seed=0)
    safe = privacy(train, holdout, fresh, columns, seed=0)
    # assert
    assert copy["exact_copy_share"] == 1 and copy["exact_copies"] == 700
    assert copy["dcr_ratio"] == pytest.approx(0) and copy["mia_auc"] > 0.9
    assert copy["closer_than_holdout_p5"] == 1
    assert safe["exact_copy_share"] == 0 and abs(safe["mia_auc"] - 0.5) < 0.07
    assert 0.8 < safe["dcr_ratio"] < 1.25
    assert sum(safe["dcr_histogram"]["synthetic"]) == 700


def test_privacy_subsamples_with_its_seed():
    # setup
    train, columns = mixed(400, 0)
    holdout, _ = mixed(300, 1)
    fresh, _ = mixed(400, 2)
    # run
    a = privacy(train, holdout, fresh, columns, seed=3, max_rows=100)
    b = privacy(train, holdout, fresh, columns, seed=3, max_rows=100)
    # assert
    assert a == b and a["mia_rows"] == 100


def test_write_report_makes_one_self_contained_page(tmp_path):
    # setup
    train, columns = mixed(400, 0)
    holdout, _ = mixed(300, 1)
    synth, base = mixed(400, 2)[0], shuffled(train, 3)
    columns = {"<b>age</b>" if c == "age" else c: m for c, m in columns.items()}
    train, holdout, synth, base = (f.rename(columns={"age": "<b>age</b>"}) for f in (train, holdout, synth, base))
    report = {name: {"quality": quality(train, s, columns), "utility": utility(train, holdout, s, "sex", columns,
                                                                                threads=1),
                     "privacy": privacy(train, holdout, s, columns)} for name, s in (("model", synth), ("base", base))}
    report = report["model"] | {"baseline": report["base"]}
    # run
    path = write_report(tmp_path / "out" / "report.html", report, train, synth, columns, baseline=base,
                        baseline_name="copula")
    # assert
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<img") >= 8
    assert f"{report['quality']['score']:.4f}" in page and "baseline (copula)" in page
    assert "&lt;b&gt;age&lt;/b&gt;" in page and "<b>age" not in page
    assert "<script" not in page and "<link" not in page and 'src="http' not in page  # nothing to fetch


def test_bad_inputs_are_refused():
    # setup
    frame, columns = cancer()
    one_class = frame.assign(diagnosis="benign")
    # run / assert
    with pytest.raises(GenlabError, match="target 'nope'"):
        utility(frame, frame, frame, "nope", columns)
    with pytest.raises(GenlabError, match="single class"):
        utility(frame, frame, one_class, "diagnosis", columns)
    with pytest.raises(GenlabError, match="lacks column 'mean radius'"):
        quality(frame, frame.drop(columns="mean radius"), columns)
    with pytest.raises(GenlabError, match="declared numeric"):
        quality(frame, frame.assign(**{"mean radius": "big"}), columns)
    with pytest.raises(GenlabError, match="no rows"):
        privacy(frame, frame.iloc[:0], frame, columns)
