"""ctgan and tvae: the mode-specific transformer, training, sampling, conditions, DP-SGD and its refusals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from genlab.config import PrivacyConfig, TrainConfig
from genlab.data.tables import TableData, TableDataConfig, TableSource, prepare_table
from genlab.errors import GenlabError
from genlab.modalities.table import Table
from genlab.models.ctgan import CTGAN, CTGANConfig, draw_conditions
from genlab.models.tabular import ModeTransformer
from genlab.responsible.privacy import PRIVACY_FILE as PRIVACY_JSON
from genlab.models.tvae import TVAE, TVAEConfig
from genlab.train.loop import Trainer

pytestmark = [pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha"),  # Opacus' RDP notices
              pytest.mark.filterwarnings("ignore:Full backward hook is firing")]

SMALL = {CTGAN: CTGANConfig(z_dim=16, g_width=48, g_blocks=1, d_width=48, d_layers=1, pac=4, modes=4),
         TVAE: TVAEConfig(latent_dim=8, width=48, layers=1, modes=4)}
GROUP = ["a", "b", "c"]


def rows_of(table) -> np.ndarray:
    assert isinstance(table, Table)
    return table.rows


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> TableData:
    """400 rows of mixed types with missing values: a bimodal integer, a skewed number with 15% missing,
    a 3-way category (60/30/10, 8% missing), a boolean and a date."""
    rng = np.random.default_rng(0)
    n = 400
    income = rng.lognormal(3, 0.5, n)
    income[rng.random(n) < 0.15] = np.nan
    group = rng.choice(GROUP, n, p=[0.6, 0.3, 0.1]).astype(object)
    group[rng.random(n) < 0.08] = None
    frame = pd.DataFrame({
        "age": np.where(rng.random(n) < 0.5, rng.normal(30, 4, n), rng.normal(65, 5, n)).round().astype(int),
        "income": income, "group": group, "flag": rng.random(n) < 0.3,
        "visit": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")})
    return prepare_table(TableSource("mixed", frame), TableDataConfig(), tmp_path_factory.mktemp("mixed"))


def public(data: TableData) -> TableData:
    for col in data.meta["columns"].values():
        col["public"] = True
    return data


def train(fam, data, tmp_path=None, **cfg) -> dict:
    settings = {**fam.train_defaults, "batch_size": 64, "max_steps": 60, "warmup_steps": 2, "eval_every": 0,
                "eval_batches": 1, "threads": 1, "precision": "fp32", "seed": 0, **cfg}
    return Trainer(fam, data, TrainConfig(**settings), run_dir=tmp_path, progress=False).run()


# -- the transformer --------------------------------------------------------------------------------------------
def test_transformer_inverse_undoes_transform(mixed):
    # Setup: a transformer fitted to the training rows (float64, so dates keep their seconds)
    rows = mixed.rows["train"]
    tf = ModeTransformer(mixed.columns, modes=5)
    tf.fit(rows, seed=0)
    # Run: encode (components sampled from their posteriors) and decode
    x = tf.transform(torch.from_numpy(rows), torch.Generator().manual_seed(0))
    back = tf.inverse(x)
    # Assert: the layout is one-hot where it should be; categories and missingness exact, numbers close
    assert x.shape == (len(rows), tf.dim) and int(tf.fitted) == 1
    np.testing.assert_array_equal(np.isnan(back), np.isnan(rows))
    cont = mixed.continuous()
    span = np.nanmax(rows, 0) - np.nanmin(rows, 0)
    for j in range(rows.shape[1]):
        ok = ~np.isnan(rows[:, j])
        tol = 1e-5 * span[j] if cont[j] else 0
        np.testing.assert_allclose(back[ok, j], rows[ok, j], atol=tol, rtol=0)
    assert bool(tf.missing.tolist() == np.isnan(rows).any(0).tolist())


def test_conditions_follow_log_frequencies(mixed):
    # Setup: the fitted counts of the discrete columns: group (3 + missing) and flag (2 + missing)
    tf = ModeTransformer(mixed.columns, modes=3)
    tf.fit(mixed.rows["train"], seed=0)
    # Run: many conditions
    cols, cats = draw_conditions(tf, 20000, log=True, generator=torch.Generator().manual_seed(1))
    # Assert: columns uniform; within 'group' the shares are log(count + 1) normalised; flag has no missing slot
    assert abs(float((cols == 0).float().mean()) - 0.5) < 0.02
    counts = tf.counts[:4].numpy()
    want = np.log1p(counts) / np.log1p(counts).sum()
    got = np.bincount(cats[cols == 0].numpy(), minlength=4) / int((cols == 0).sum())
    np.testing.assert_allclose(got, want, atol=0.02)
    assert int(cats[cols == 1].max()) <= 1  # 'flag' is never missing, so its missing slot is never asked for


# -- training and sampling --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CTGAN, TVAE])
def test_family_learns_samples_and_conditions(cls, mixed, tmp_path):
    # Setup: the transformer fitted first, so the untrained networks' validation loss can be measured
    fam = cls(SMALL[cls])
    fam.build(mixed, seed=0)
    fam.transformer_.fit(mixed.rows["train"], seed=0)
    cfg = {**fam.train_defaults, "batch_size": 64, "eval_batches": 2, "threads": 1, "precision": "fp32", "seed": 0}
    before = Trainer(fam, mixed, TrainConfig(**cfg), progress=False).validate()
    # Run: a few dozen steps (the fitted flag stops phases from refitting)
    summary = train(fam, mixed, lr=2e-3, min_lr=2e-4, max_steps=60, eval_batches=2)
    sample = rows_of(fam.sample(1500, seed=0))
    # Assert: validation improved; samples have the table's columns, in-domain categories, real missing rates
    assert summary["val_loss"] < before, (summary["val_loss"], before)
    assert sample.shape == (1500, len(mixed.columns))
    real = mixed.rows["train"]
    for j, k in enumerate(mixed.categories()):
        present = sample[~np.isnan(sample[:, j]), j]
        if k:
            assert set(np.unique(present)) <= set(range(k))
        assert abs(np.isnan(sample[:, j]).mean() - np.isnan(real[:, j]).mean()) < 0.1, j
    np.testing.assert_array_equal(rows_of(fam.sample(5, seed=3)), rows_of(fam.sample(5, seed=3)))
    # conditioned samples hold only the category asked for
    only = rows_of(fam.sample(50, seed=1, condition={"group": 2, "flag": 1}))
    assert len(only) == 50 and set(only[:, 2]) == {2.0} and set(only[:, 3]) == {1.0}
    # saved and loaded: the fitted preprocessing comes back with the weights, so samples are the same
    fam.save(tmp_path)
    again = cls(SMALL[cls])
    again.build(mixed, seed=5)
    again.load_weights(tmp_path)
    assert int(again.transformer_.fitted) == 1
    np.testing.assert_array_equal(rows_of(again.sample(20, seed=2)), rows_of(fam.sample(20, seed=2)))


def test_bad_conditions_and_rare_conditions_are_refused(mixed):
    fam = TVAE(SMALL[TVAE])
    fam.build(mixed, seed=0)
    fam.transformer_.fit(mixed.rows["train"], seed=0)
    with pytest.raises(GenlabError, match="continuous"):
        fam.sample(3, condition={"age": 1})
    with pytest.raises(GenlabError, match="category index in"):
        fam.sample(3, condition={"group": 3})
    with pytest.raises(GenlabError, match="not a column"):
        fam.sample(3, condition={"nope": 0})
    fam.transformer_.active.fill_(True)
    fam.transformer_.counts.zero_()
    fam.networks_["model"].decoder[-1].bias.data[fam.transformer_.disc_idx[0]] = -1e3  # 'a' is never produced
    with pytest.raises(GenlabError, match="too rare for this model: 0 of"):
        fam.sample(5, seed=0, condition={"group": 0})


@pytest.mark.parametrize("private", [False, True])
def test_ctgan_without_discrete_columns_trains(private, tmp_path):
    # diabetes as scikit-learn ships it, its one categorical column treated as a number: no conditional vector
    from genlab.data.tables import _diabetes

    src = _diabetes()
    data = prepare_table(TableSource("d", src.frame.assign(sex=src.frame["sex"].astype(float) + 0.5)),
                         TableDataConfig(), tmp_path)
    assert not any(data.categories())
    fam = CTGAN(dataclasses.replace(SMALL[CTGAN], pac=1), privacy=PrivacyConfig(epsilon=3.0)) if private \
        else CTGAN(SMALL[CTGAN])
    fam.build(public(data), seed=0)
    assert train(fam, data, max_steps=5)["steps"] == 5
    assert rows_of(fam.sample(7, seed=0)).shape == (7, len(data.columns))


# -- differential privacy ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CTGAN, TVAE])
def test_private_training_spends_at_most_its_budget(cls, mixed, tmp_path):
    # Setup: every column's domain declared public, epsilon 3
    data = public(TableData(mixed.folder))
    config = dataclasses.replace(SMALL[cls], pac=1) if cls is CTGAN else SMALL[cls]
    fam = cls(config, privacy=PrivacyConfig(epsilon=3.0))
    fam.build(data, seed=0)
    # Run: 30 DP-SGD steps, writing the run folder
    summary = train(fam, data, tmp_path, max_steps=30, checkpoint_every=1000)
    # Assert: Poisson batches, a budget within epsilon, recorded in privacy.json; samples come out
    assert summary["steps"] == 30 and data.poisson_rate == pytest.approx(64 / len(data.rows["train"]))
    assert 0 < fam.plan_.spent(30) <= 3.0 + 1e-6
    record = json.loads((tmp_path / PRIVACY_JSON).read_text())
    assert record["steps"] == 30 and 0 < record["epsilon_spent"] <= 3.0
    assert int(fam.transformer_.fitted) == 1
    assert rows_of(fam.sample(20, seed=0)).shape == (20, len(data.columns))


@pytest.mark.parametrize("cls", [CTGAN, TVAE])
def test_private_training_survives_empty_poisson_batches(cls, mixed):
    data = public(TableData(mixed.folder))
    config = dataclasses.replace(SMALL[cls], pac=1) if cls is CTGAN else SMALL[cls]
    fam = cls(config, privacy=PrivacyConfig(epsilon=3.0))
    fam.build(data, seed=0)
    batch, calls = data.batch, []

    def sometimes_empty(split, size, generator):
        out = batch(split, size, generator)
        calls.append(split)
        return out[:0] if split == "train" and len(calls) % 2 else out

    data.batch = sometimes_empty
    assert train(fam, data, max_steps=6)["steps"] == 6
    assert all(torch.isfinite(p).all() for net in fam.networks_.values() for p in net.parameters())


def test_private_refusals(mixed):
    private = PrivacyConfig(epsilon=3.0)
    with pytest.raises(GenlabError, match="domains read from the private rows"):
        CTGAN(dataclasses.replace(SMALL[CTGAN], pac=1), privacy=private).build(TableData(mixed.folder), seed=0)
    data = public(TableData(mixed.folder))
    with pytest.raises(GenlabError, match="model.pac must be 1"):
        CTGAN(SMALL[CTGAN], privacy=private).build(data, seed=0)
    with pytest.raises(GenlabError, match="wgan-gp cannot be private"):
        CTGAN(dataclasses.replace(SMALL[CTGAN], pac=1, loss="wgan-gp"), privacy=private).build(data, seed=0)
    fam = TVAE(SMALL[TVAE], privacy=private)
    fam.build(data, seed=0)
    with pytest.raises(GenlabError, match="keep_best"):
        train(fam, data, keep_best=True)
    fam = CTGAN(SMALL[CTGAN])
    fam.build(data, seed=0)
    with pytest.raises(GenlabError, match="multiple of model.pac"):
        train(fam, data, batch_size=30)


def test_every_number_has_a_range():
    import typing

    for cls in (CTGANConfig, TVAEConfig):
        hints = typing.get_type_hints(cls)
        numbers = [f.name for f in dataclasses.fields(cls) if hints[f.name] in (int, float)]
        assert set(numbers) <= set(cls.limits), cls
