"""MST (models/mst.py): the marginal-based synthesiser, with and without a differential-privacy budget, on
scikit-learn's diabetes table and a small mixed table with missing values built here."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from genlab.config import PrivacyConfig, TrainConfig
from genlab.data.tables import TableDataConfig, TableSource, _diabetes, prepare_table
from genlab.errors import BadArgument, GenlabError
from genlab.evaluate.shapes import shape_distance
from genlab.models.mst import MST, MSTConfig
from genlab.responsible.privacy import zcdp_budget as budget
from genlab.responsible.privacy import epsilon_of, rho_for


def mixed_frame(n=1500, seed=0):
    """x; y = 2x + noise (10% missing); a category that follows x (5% missing); a flag that follows the category;
    a small count, a date and an unrelated number."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, n)
    y = 2 * x + rng.normal(0, 2, n)
    y[rng.random(n) < 0.10] = np.nan
    grp = np.where(rng.random(n) < 1 / (1 + np.exp(-(x - 55) / 3)), "c",
                   np.where(rng.random(n) < 0.5, "a", "b")).astype(object)
    grp[rng.random(n) < 0.05] = None
    flag = rng.random(n) < np.where(grp == "c", 0.8, 0.2)
    when = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 366, n), unit="D")
    return pd.DataFrame({"x": x, "y": y, "grp": grp, "flag": flag, "count": rng.poisson(5, n),
                         "when": when.strftime("%Y-%m-%d"), "other": rng.uniform(0, 1, n)})


@pytest.fixture
def mixed(tmp_path):
    return prepare_table(TableSource("mixed", mixed_frame()), TableDataConfig(), tmp_path / "mixed")


@pytest.fixture
def diabetes(tmp_path):
    return prepare_table(_diabetes(), TableDataConfig(), tmp_path / "diabetes")


def fitted(data, privacy=None, **config):
    model = MST(MSTConfig(**config), privacy=privacy)
    model.build(data, seed=0)
    model.solve(data)
    return model


def uniform_rows(data, n):
    """Rows of an unfitted model: every column independent and uniform over its domain."""
    model = MST(MSTConfig())
    model.build(data, seed=0)
    return model.sample(n, seed=0).rows


def make_public(data):
    for col in data.meta["columns"].values():
        col["public"] = True


def correlation(rows, a, b):
    ok = ~np.isnan(rows[:, a]) & ~np.isnan(rows[:, b])
    return float(np.corrcoef(rows[ok, a], rows[ok, b])[0, 1])


def check_domains(rows, data):
    """Every value inside its column's metadata domain (NaN only where the column can be missing)."""
    assert rows.shape[1] == len(data.columns) and rows.dtype == np.float64
    for j, col in enumerate(data.columns.values()):
        x = rows[:, j]
        assert col["missing"] > 0 or not np.isnan(x).any()
        x = x[~np.isnan(x)]
        if col["type"] in ("categorical", "boolean"):
            assert set(np.unique(x)) <= set(range(len(col["categories"])))
        else:
            lo, hi = ((pd.Timestamp(col[k]).value / 1e9 for k in ("min", "max")) if col["type"] == "datetime"
                      else (col["min"], col["max"]))
            assert lo <= x.min() and x.max() <= hi


# -- without privacy ------------------------------------------------------------------------------------------------
def test_fit_without_privacy_on_diabetes_beats_an_untrained_model(diabetes):
    # Setup: diabetes; Run: the training loop's solve (with validation), then 2000 rows
    model = MST(MSTConfig()).fit(diabetes, TrainConfig(eval_batches=2, threads=1))
    rows = model.sample(2000, seed=0).rows
    # Assert: right columns, values in their domains, marginals far closer to the held-out rows than uniform ones
    check_domains(rows, diabetes)
    assert list(model.sample(5, seed=0).frame.columns) == list(diabetes.columns)
    cats, val = diabetes.categories(), diabetes.rows["val"]
    ours, untrained = shape_distance(val, rows, cats), shape_distance(val, uniform_rows(diabetes, 2000), cats)
    assert ours < 0.7 * untrained, (ours, untrained)
    assert math.isfinite(model.fit_summary_["val_loss"]) and model.fit_summary_["val_loss"] < untrained
    assert len(model.tree()) == len(diabetes.columns) - 1  # a spanning tree
    assert np.array_equal(rows, model.sample(2000, seed=0).rows)  # the same seed, the same rows


def test_mixed_table_keeps_domains_missing_rates_and_a_correlated_pair(mixed):
    # Setup: the mixed table; Run: fit without privacy, 3000 rows
    model = fitted(mixed)
    rows, train = model.sample(3000, seed=1).rows, mixed.rows["train"]
    # Assert: domains (dates and integers too), missing rates near the real ones, shape close to the held-out rows
    check_domains(rows, mixed)
    assert np.abs(np.isnan(rows).mean(0) - np.isnan(train).mean(0)).max() < 0.03
    cats, val = mixed.categories(), mixed.rows["val"]
    assert shape_distance(val, rows, cats) < 0.5 * shape_distance(val, uniform_rows(mixed, 3000), cats)
    # 2-way structure: the Chow-Liu tree links x and y, and their correlation survives; independent columns lose it
    assert ("x", "y") in model.tree()
    real = correlation(train, 0, 1)
    assert real > 0.95 and abs(correlation(rows, 0, 1) - real) < 0.05
    assert abs(correlation(uniform_rows(mixed, 3000), 0, 1)) < 0.1
    c = mixed.columns["grp"]["categories"].index("c")  # the category follows x
    assert np.nanmean(rows[rows[:, 2] == c, 0]) > np.nanmean(rows[rows[:, 2] != c, 0]) + 5


def test_condition_is_exact_and_checked(mixed):
    # Setup: a fitted model; Run: rows conditioned on a category; Assert: every row has it, and x follows it
    model = fitted(mixed)
    c = mixed.columns["grp"]["categories"].index("c")
    rows = model.sample(500, seed=0, condition={"grp": c}).rows
    assert (rows[:, 2] == c).all()
    assert np.nanmean(rows[:, 0]) > np.nanmean(model.sample(500, seed=0).rows[:, 0]) + 3
    both = model.sample(200, seed=0, condition={"grp": c, "flag": 0}).rows
    assert (both[:, 2] == c).all() and (both[:, 3] == 0).all()
    for bad in ({"x": 0}, {"nope": 0}, {"grp": 3}, {"grp": True}):
        with pytest.raises(BadArgument):
            model.sample(5, condition=bad)
    with pytest.raises(BadArgument):
        model.sample(0)


def test_save_and_load_give_the_same_model(mixed, tmp_path):
    # Setup: a fitted model, saved; Run: a fresh build loads the weights; Assert: the same rows for the same seed
    model = fitted(mixed)
    model.save(tmp_path / "run")
    again = MST(MSTConfig())
    again.build(mixed, seed=5)
    again.load_weights(tmp_path / "run")
    assert np.array_equal(again.sample(300, seed=3).rows, model.sample(300, seed=3).rows, equal_nan=True)
    assert again.tree() == model.tree()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["architecture"]
    assert saved == model.architecture() and "weight_select" not in saved
    assert not (tmp_path / "run" / "privacy.json").exists()  # no budget, no privacy record


def test_validation_loss_is_shape_distance_and_deterministic(mixed):
    model = fitted(mixed)
    batch = torch.from_numpy(mixed.rows["val"]).float()
    assert model.validation_loss(batch) == model.validation_loss(batch)
    assert 0 <= model.validation_loss(batch) < 0.3


# -- with privacy ---------------------------------------------------------------------------------------------------
def test_private_fit_spends_its_budget_and_records_it(mixed, tmp_path):
    # Setup: public domains, epsilon 1; Run: fit and save
    make_public(mixed)
    model = fitted(mixed, PrivacyConfig(epsilon=1.0, delta=1e-5))
    model.save(tmp_path / "run")
    spent = json.loads((tmp_path / "run" / "privacy.json").read_text())
    # Assert: spent within the budget (and close to it: the conversion is tight), recorded as zCDP with its noise
    assert 0.99 <= spent["epsilon_spent"] <= 1.0 and spent["epsilon_target"] == 1.0 and spent["delta"] == 1e-5
    assert spent["accountant"] == "zcdp" and spent["mechanism"].startswith("MST") and "public" in spent["domains"]
    rho = spent["rho"]
    assert epsilon_of(delta=1e-5, rho=rho) <= 1.0 and rho >= rho_for(1.0, 1e-5)
    d = len(mixed.columns)
    assert spent["noise_std"]["one_way"] == pytest.approx(math.sqrt(d / (2 * rho / 3)))
    assert spent["noise_std"]["two_way"] == pytest.approx(math.sqrt((d - 1) / (2 * rho / 3)))
    check_domains(model.sample(500, seed=0).rows, mixed)


@pytest.mark.filterwarnings("ignore:Optimal order")  # Opacus, at epsilon 0.1 (the plain bound wins)
def test_budget_conversion_is_valid():
    for eps in (0.1, 1.0, 10.0):
        rho, spent = budget(eps, 1e-6)
        assert spent <= eps and rho >= rho_for(eps, 1e-6) * (1 - 1e-6)
        assert min(epsilon_of(delta=1e-6, rho=rho), rho + 2 * math.sqrt(rho * math.log(1e6))) <= eps


def test_private_fidelity_grows_with_epsilon(mixed):
    # Setup: public domains; Run: three fits at epsilon 1 and at 10 (noise differs each time)
    make_public(mixed)
    cats, val = mixed.categories(), mixed.rows["val"]
    runs = {eps: [fitted(mixed, PrivacyConfig(epsilon=eps)).sample(2000, seed=0).rows for _ in range(3)]
            for eps in (1.0, 10.0)}
    shape = {eps: np.mean([shape_distance(val, r, cats) for r in rs]) for eps, rs in runs.items()}
    corr = {eps: np.mean([correlation(r, 0, 1) for r in rs]) for eps, rs in runs.items()}
    # Assert: both sane (marginals far better than uniform); the x-y correlation better kept with more budget
    untrained = shape_distance(val, uniform_rows(mixed, 2000), cats)
    assert shape[10.0] < shape[1.0] + 0.01 and shape[1.0] < 0.6 * untrained, (shape, untrained)
    assert corr[10.0] > corr[1.0] + 0.15 and corr[10.0] > 0.3, corr


def test_private_noise_does_not_come_from_the_seed(mixed):
    # Setup: the same config and seed twice; Assert: different fitted tables (the noise is from the OS)
    make_public(mixed)
    a, b = (fitted(mixed, PrivacyConfig(epsilon=1.0)) for _ in range(2))
    assert not torch.equal(a.model_.table_0, b.model_.table_0)


def test_private_fit_refuses_private_domains_and_a_large_delta(mixed):
    with pytest.raises(GenlabError, match="public"):
        fitted(mixed, PrivacyConfig(epsilon=1.0))
    make_public(mixed)
    n = len(mixed.rows["train"])
    with pytest.raises(GenlabError, match="delta"):
        fitted(mixed, PrivacyConfig(epsilon=1.0, delta=1.0 / n))


# -- settings -------------------------------------------------------------------------------------------------------
def test_config_has_limits_and_a_check():
    numbers = [f.name for f in dataclasses.fields(MSTConfig) if f.type in ("int", "float", int, float)]
    assert numbers and set(numbers) <= set(MSTConfig.limits)
    with pytest.raises(GenlabError, match="max_cells"):
        MSTConfig(bins=64, max_cells=100).validate()


def test_no_pair_fits_gives_independent_columns_and_still_runs_privately(mixed):
    # Setup: max_cells so small that no two binned columns pair; Run: fit privately
    make_public(mixed)
    model = fitted(mixed, PrivacyConfig(epsilon=1.0), bins=8, max_cells=16)
    # Assert: every edge has the category or the flag at one end, and the rows are in their domains
    assert model.tree() and all({"grp", "flag"} & set(edge) for edge in model.tree())
    check_domains(model.sample(300, seed=0).rows, mixed)
