"""The table modality: reading, typing and splitting tables, the Gaussian copula, conditions, files, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import genlab
from genlab.data.tables import TableDataConfig, TableSource, prepare_table, read_table
from genlab.errors import GenlabError
from genlab.evaluate.shapes import shape_distance

QUICK = ["release.track_energy=false"]


def patients(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A mixed table: an id, integers, categories, booleans, dates, numbers with missing values, a correlated pair."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    frame = pd.DataFrame({
        "mrn": [f"MRN{100000 + i}" for i in range(n)],
        "age": age,
        "sex": rng.choice(["F", "M"], n),
        "smoker": rng.choice([True, False], n, p=[0.3, 0.7]),
        "visit": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")).strftime("%Y-%m-%d"),
        "sbp": np.round(100 + 0.6 * age + rng.normal(0, 5, n), 1),  # blood pressure rises with age
        "bmi": np.round(rng.normal(26, 4, n), 1),
        "diagnosis": rng.choice(["healthy", "diabetes", "hypertension"], n, p=[0.6, 0.25, 0.15]),
    })
    frame.loc[rng.choice(n, n // 5, replace=False), "bmi"] = np.nan  # 20% missing
    return frame


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "patients.csv"
    patients().to_csv(path, index=False)
    return path


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


# -- reading and typing -------------------------------------------------------------------------------------------
def test_types_are_detected_and_ids_left_out(csv, tmp_path):
    # Setup, Run
    data = prepare_table(TableSource("p", read_table(csv)), TableDataConfig(target="diagnosis"), tmp_path / "d")

    # Assert
    types = {n: c["type"] for n, c in data.meta["columns"].items()}
    assert types == {"mrn": "id", "age": "integer", "sex": "categorical", "smoker": "boolean", "visit": "datetime",
                     "sbp": "numeric", "bmi": "numeric", "diagnosis": "categorical"}
    assert "mrn" not in data.columns and data.rows["train"].shape[1] == 7
    assert data.meta["columns"]["bmi"]["missing"] == pytest.approx(0.2)
    assert len(data.rows["train"]) + len(data.rows["val"]) == 200 and len(data.rows["val"]) == 40


def test_rows_decode_back_exactly(csv, tmp_path):
    # Setup
    data = prepare_table(TableSource("p", read_table(csv)), TableDataConfig(), tmp_path / "d")

    # Run
    again = data.encode(data.frame("train"))

    # Assert: the same numbers, the same missing cells
    assert np.array_equal(np.isnan(again), np.isnan(data.rows["train"]))
    assert np.allclose(np.nan_to_num(again), np.nan_to_num(data.rows["train"]))


def test_metadata_round_trip_and_contradiction(csv, tmp_path):
    # Setup: describe, edit (sex public), pass back
    meta = genlab.describe(str(csv), target="diagnosis")
    meta["columns"]["sex"]["public"] = True
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))

    # Run
    data = prepare_table(TableSource("p", read_table(csv)), TableDataConfig(metadata=str(path)), tmp_path / "d")

    # Assert: the user's metadata is used; a metadata that contradicts the data is refused
    assert data.meta["columns"]["sex"]["public"] and data.meta["metadata_from"] == "file"
    meta["columns"]["sex"]["categories"] = ["F"]
    path.write_text(json.dumps(meta))
    with pytest.raises(GenlabError, match="'sex' holds 'M'.*contradicts"):
        prepare_table(TableSource("p", read_table(csv)), TableDataConfig(metadata=str(path)), tmp_path / "e")


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"a,b\n", "header but no rows"),
    (b"a,b\n1,2\n", "has 1 row"),
    (b"a,b\n" + b"".join(b"%d,\n" % i for i in range(20)), "'b' is entirely missing"),
    (b"a,b\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(19)) + b"7,abc\n", "'b' mixes numbers and text"),
    (b"a,d\n" + b"".join(b"%d,2021-01-%02d\n" % (i, i + 1) for i in range(19)) + b"7,2021-13-45\n",
     "'d' holds dates, but row 21"),
    ("a,b\n" + "".join(f"{i},caf\u00e9\n" for i in range(20)), "not UTF-8"),
])
def test_bad_tables_get_one_line(tmp_path, content, message):
    # Setup
    path = tmp_path / "bad.csv"
    path.write_bytes(content.encode("latin-1") if isinstance(content, str) else content)

    # Run, Assert
    with pytest.raises(GenlabError, match=message) as e:
        prepare_table(TableSource("bad", read_table(path)), TableDataConfig(), tmp_path / "d")
    assert "\n" not in str(e.value)


# -- the copula ---------------------------------------------------------------------------------------------------
@pytest.fixture
def copula_run(csv, tmp_path):
    return genlab.train("copula", str(csv), out=tmp_path / "run",
                        overrides=[*QUICK, "data.target=diagnosis", "model.quantiles=64"])


def test_copula_reproduces_types_missing_rates_and_correlation(copula_run):
    # Run
    synth = copula_run.sample(2000, seed=1)

    # Assert: columns, domains, missing rate, the age -> blood pressure association
    frame = synth.frame
    assert list(frame.columns) == ["age", "sex", "smoker", "visit", "sbp", "bmi", "diagnosis"]
    assert set(frame["sex"]) <= {"F", "M"} and set(frame["diagnosis"]) <= {"healthy", "diabetes", "hypertension"}
    assert frame["age"].between(18, 89).all() and frame["bmi"].isna().mean() == pytest.approx(0.2, abs=0.04)
    assert frame[["age", "sbp"]].corr().iloc[0, 1] > 0.8
    assert synth.rows.shape == (2000, 7) and np.array_equal(synth.rows, copula_run.sample(2000, seed=1).rows, equal_nan=True)


def test_copula_beats_a_shuffled_control(copula_run):
    # Setup: real held-out rows; a control whose columns are shuffled independently (marginals kept, pairs lost)
    data = copula_run.data
    real = data.rows["val"]
    rng = np.random.default_rng(0)
    control = np.stack([rng.permutation(col) for col in data.rows["train"].T], axis=1)

    # Run
    synth = copula_run.sample(len(data.rows["train"]), seed=0).rows

    # Assert: marginals as close as the control's, and the pair the control loses is kept
    assert shape_distance(real, synth, data.categories()) < 0.2
    age, sbp = 0, 4
    corr = lambda x: np.corrcoef(x[:, age], x[:, sbp])[0, 1]  # noqa: E731
    assert abs(corr(synth) - corr(real)) < 0.1 < abs(corr(control) - corr(real))


def test_conditions_and_their_errors(copula_run):
    # Run
    rows = copula_run.sample(50, seed=2, condition=["diagnosis=hypertension", "sex=F"]).frame

    # Assert
    assert len(rows) == 50 and (rows["diagnosis"] == "hypertension").all() and (rows["sex"] == "F").all()
    smokers = copula_run.sample(20, seed=2, condition={"smoker": True}).frame  # the Python API's dict form
    assert smokers["smoker"].astype(bool).all()
    with pytest.raises(GenlabError, match="unknown column 'sexx'"):
        copula_run.sample(5, condition=["sexx=F"])
    with pytest.raises(GenlabError, match="'sex' has no value 'X'"):
        copula_run.sample(5, condition=["sex=X"])
    with pytest.raises(GenlabError, match="'age' is an integer column"):
        copula_run.sample(5, condition=["age=40"])


def test_outputs_are_csv_or_parquet_files_signed(copula_run, tmp_path):
    # Run
    csv_path = copula_run.sample(30, seed=0).save(tmp_path / "synth.csv")
    pq_path = copula_run.sample(30, seed=0).save(tmp_path / "synth.parquet")

    # Assert: both read back with the same values; each has its signed sidecar
    from genlab.responsible.verify import verify

    a, b = pd.read_csv(csv_path), pd.read_parquet(pq_path)
    assert list(a.columns) == list(b.columns) and (a["sex"] == b["sex"]).all()
    assert (a["visit"] == b["visit"].dt.strftime("%Y-%m-%d")).all()
    for path in (csv_path, pq_path):
        assert verify(path, runs=tmp_path).provenance.status == "trusted"
    with pytest.raises(GenlabError, match="already exists"):
        copula_run.sample(3).save(csv_path)


def test_held_out_rows_are_never_trained_on(copula_run):
    # Setup: the split's rows, as sets of row tuples
    data = copula_run.data
    as_set = lambda x: {tuple(np.nan_to_num(r, nan=-1e18)) for r in x}  # noqa: E731

    # Assert: disjoint splits; the copula's quantiles come from training rows only
    assert not as_set(data.rows["train"]) & as_set(data.rows["val"])
    top = float(copula_run.model.model_.quantiles[0, -1])  # the largest training age
    assert top == np.nanmax(data.rows["train"][:, 0])


# -- the command line ----------------------------------------------------------------------------------------------
def test_cli_bad_inputs_exit_2_in_one_line(csv, tmp_path, copula_run):
    # Setup
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    cases = [
        (["train", "copula", "--data", empty, "--out", tmp_path / "r1"], "is empty"),
        (["train", "copula", "--data", csv, "--out", tmp_path / "r2", "--set", "data.target=nope"],
         "target column 'nope'"),
        (["train", "ctgan", "--data", csv, "--out", tmp_path / "r3", "--set", "privacy.epsilon=0"],
         "privacy.epsilon must be in (0, 1000]"),
        (["train", "copula", "--data", csv, "--out", tmp_path / "r4", "--set", "privacy.epsilon=3"],
         "no differentially private training"),
        (["sample", copula_run.path, "--condition", "sex=X", "--out", tmp_path / "s.csv"], "has no value 'X'"),
    ]
    for args, message in cases:
        # Run
        done = cli(*args)

        # Assert: exit 2, one line, nothing left behind
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not any((tmp_path / n).exists() for n in ("r1", "r2", "r3", "r4", "s.csv"))
    assert csv.stat().st_size > 0  # the user's file is untouched


# -- evaluation and audit ------------------------------------------------------------------------------------------
def test_eval_reports_fidelity_utility_privacy_beside_the_copula(csv, tmp_path):
    # Setup: a family other than the baseline
    run = genlab.train("mst", str(csv), out=tmp_path / "mst", overrides=[*QUICK, "data.target=diagnosis",
                                                                          "model.bins=8"])

    # Run
    report = run.evaluate()

    # Assert: the model's headline figures, the copula's and real data's beside them, the page and details written
    for key in ("quality", "column_shapes", "column_pair_trends", "utility_f1_macro", "utility_ratio", "dcr_ratio",
                "exact_copy_share", "mia_auc"):
        assert report[key] is not None and key in report["baseline"], key
    assert report["baseline"]["name"] == "copula" and 0 < report["quality"] <= 1
    assert report["ceiling"]["utility_ratio"] == 1.0 and report["ceiling"]["quality"] > 0.7  # 40 held-out rows: noisy
    page = (run.path / "report.html").read_text(encoding="utf-8")
    assert "<img" in page and "copula" in page and "without a differential-privacy budget" in page
    details = json.loads((run.path / "report.json").read_text())
    assert set(details["quality"]["columns"]) == set(run.data.columns)


def test_audit_flags_erased_groups_and_reports_memorisation(copula_run):
    # Run
    report = copula_run.audit(n=500, save=False)

    # Assert: memorisation figures, group shares, a verdict in the summary
    assert 0 <= report["memorisation"]["mia_auc"] <= 1
    shares = {(g["column"], g["value"]): g for g in report["bias"]["groups"]}
    assert shares[("diagnosis", "hypertension")]["synthetic_share"] == pytest.approx(0.15, abs=0.08)
    assert report["summary"][0] == report["verdict"]
