"""Ratings: the Mult-VAE paper's protocol, its metrics, EASE's closed form, Mult-VAE's loss, recommendations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import genlab
from genlab.data.ratings import MOVIELENS_100K, RatingsDataConfig, prepare_ratings, read_ratings_csv
from genlab.errors import GenlabError
from genlab.evaluate.recommend import ndcg_at_k, ranking_report, recall_at_k, top_k
from genlab.models.ease import ease_weights

QUICK = ["release.track_energy=false"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genlab", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    return prepare_ratings(MOVIELENS_100K.load(), RatingsDataConfig(), tmp_path_factory.mktemp("ml") / "data")


@pytest.fixture(scope="module")
def ease_run(tmp_path_factory):
    return genlab.train("ease", "movielens-100k", out=tmp_path_factory.mktemp("ease") / "run", overrides=QUICK)


def test_split_never_shares_a_held_out_user_with_training(movielens):
    # Assert: three disjoint sets of users covering all; held-out users' fold-in + targets = their positives
    ids = movielens.ids
    assert not set(ids["train"]) & set(ids["val"]) and not set(ids["train"]) & set(ids["test"])
    assert not set(ids["val"]) & set(ids["test"])
    assert len(ids["train"]) + len(ids["val"]) + len(ids["test"]) == len(movielens.users)
    assert movielens.meta["dropped_users"] > 0 and (movielens.full.sum(1) >= 5).all()
    shown, targets = movielens.heldout("test")
    assert ((shown + targets) == movielens.full[ids["test"]]).all() and (targets.sum(1) >= 1).all()
    assert abs(float(shown.sum() / (shown.sum() + targets.sum())) - 0.8) < 0.03
    assert len(movielens.train_matrix()) == len(ids["train"])


def test_metrics_match_values_worked_out_by_hand():
    # Setup: 6 items; user 0 holds out items 1 and 4, user 1 holds out item 2 only; item 0 was seen by user 0
    scores = np.array([[9.0, 5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1]])
    seen = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    targets = np.array([[0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0]])
    # Run
    ranked = top_k(scores, seen, 5)
    # Assert: user 0 ranks 1,2,3,4,5 (item 0 seen); hits at ranks 1 and 4; user 1 ranks 0..4, hit at rank 3
    assert ranked.tolist() == [[1, 2, 3, 4, 5], [0, 1, 2, 3, 4]]
    assert recall_at_k(ranked, targets, 2).tolist() == [0.5, 0.0]  # 1/min(2,2), 0/min(2,1)
    assert recall_at_k(ranked, targets, 1).tolist() == [1.0, 0.0]  # normalised by min(k, held-out) = 1
    ndcg = ndcg_at_k(ranked, targets, 5)
    assert ndcg[0] == pytest.approx((1 + 1 / np.log2(5)) / (1 + 1 / np.log2(3)))
    assert ndcg[1] == pytest.approx(0.5)  # 1/log2(4) over 1/log2(2)
    report = ranking_report(scores, seen, targets, {"recall": (2,), "ndcg": (5,)})
    assert report["recall@2"] == 0.25 and report["recall@2_se"] == pytest.approx(0.25)  # std 0.3536 / sqrt 2


def test_ease_equals_the_closed_form():
    # Setup: a tiny 0/1 matrix
    x = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 0]], dtype=torch.float64)
    lam = 2.0
    # Run
    b = ease_weights(x, lam)
    # Assert: B = I - P diagMat(1 / diag P) with its diagonal zero, and it solves min ||X - XB||^2 + lam ||B||^2
    p = torch.linalg.inv(x.T @ x + lam * torch.eye(4, dtype=torch.float64))
    expected = torch.eye(4, dtype=torch.float64) - p / torch.diagonal(p)
    expected.fill_diagonal_(0)
    assert torch.allclose(b, expected) and (torch.diagonal(b) == 0).all()
    for j in range(4):  # each column: ridge regression of item j on the other items
        others = [i for i in range(4) if i != j]
        a = x[:, others]
        w = torch.linalg.solve(a.T @ a + lam * torch.eye(3, dtype=torch.float64), a.T @ x[:, j])
        assert torch.allclose(b[others, j], w, atol=1e-10)


def test_a_few_steps_lower_mult_vae_loss(movielens, one_thread):
    from genlab.models.multvae import MultVAE, MultVAEConfig

    for variational in (True, False):
        model = MultVAE(MultVAEConfig(hidden=64, latent_dim=16, variational=variational))
        model.build(movielens, seed=0)
        g = torch.Generator().manual_seed(0)
        val = movielens.batch("val", 94, g)
        before = model.validation_loss(val)
        opt = torch.optim.Adam(model.networks_["model"].parameters(), lr=1e-3)
        for step in range(15):
            loss = model.loss(movielens.batch("train", 100, g))
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.after_step(step + 1)
        assert model.validation_loss(val) < before - 1.0
    assert 0 < model.beta() or not model.config.variational


def test_recommendations_exclude_seen_items_and_explain(ease_run, movielens):
    data = ease_run.data
    user = data.users[int(data.ids["train"][0])]
    recs = ease_run.sample(1, user=user, k=20)
    seen = {data.items[j] for j in torch.nonzero(data.full[data.user_index[user]]).flatten().tolist()}
    assert len(recs) == 20 and not {r["item"] for r in recs} & seen
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
    assert all(r["because"] for r in recs[:5])  # EASE names the history items with the largest weights
    # a new user's history, folded in without retraining; an unknown item warns and the rest are used
    with pytest.warns(UserWarning, match="nonexistent"):
        fresh = ease_run.sample(1, history=["50", "181", "nonexistent"], k=5)
    assert fresh.unknown == ("nonexistent",) and not {"50", "181"} & {r["item"] for r in fresh}
    assert fresh[0]["title"] and "|" in fresh[0]["genres"] or fresh[0]["genres"]
    assert next(fresh.files("s"))[1].decode().startswith("rank,item,title,genres,score,because")


def test_eval_reports_popularity_and_ease_beside_the_family(ease_run):
    report = ease_run.evaluate(save=False)
    assert {"recall@20", "recall@50", "ndcg@100", "recall@20_se"} <= set(report)
    assert report["popularity"]["name"] == "popularity" and "ease" not in report
    assert report["recall@20"] > report["popularity"]["recall@20"]


@pytest.mark.parametrize("content, message", [
    ("user,item,rating\n1,2,5\n1,2,4\n", "repeats user '1' and item '2'"),
    ("user,item,rating\n1,2,five\n", "not a number"),
    ("user,item\n1,\n", "empty user or item"),
    ("a\n", "column"),
])
def test_bad_ratings_files_get_one_line(tmp_path, content, message):
    path = tmp_path / "r.csv"
    path.write_text(content)
    with pytest.raises(GenlabError, match=message):
        read_ratings_csv(path)


def test_a_csv_without_ratings_and_users_with_no_positives(tmp_path):
    rows = [f"{u},{i}" for u in range(12) for i in range(u % 3 + 5)] + ["99,1"]  # user 99: one positive, dropped
    path = tmp_path / "r.csv"
    path.write_text("user,item\n" + "\n".join(rows) + "\n")
    data = prepare_ratings(read_ratings_csv(path), RatingsDataConfig(), tmp_path / "data")
    assert "99" not in data.user_index and "1 user(s) with fewer than 5 positives dropped" in data.summary()
    few = tmp_path / "few.csv"
    few.write_text("user,item,rating\n" + "\n".join(f"{u},{i},1" for u in range(12) for i in range(6)) + "\n")
    with pytest.raises(GenlabError, match="0 user"):
        prepare_ratings(read_ratings_csv(few), RatingsDataConfig(), tmp_path / "data2")


def test_cli_recommend_and_its_bad_inputs_exit_2(ease_run, tmp_path):
    ok = cli("recommend", ease_run.path, "--user", "1", "--k", "3")
    assert ok.returncode == 0 and "because" in ok.stdout
    history = tmp_path / "h.txt"
    history.write_text("50\n181\nnot-an-item\n")
    partly = cli("recommend", ease_run.path, "--history", history, "--k", "3")
    assert partly.returncode == 0 and "not-an-item" in partly.stderr
    (tmp_path / "none.txt").write_text("nope\n")
    for args, message in ((["--user", "nobody"], "nobody"), (["--history", tmp_path / "none.txt"], "names no item"),
                          (["--user", "1", "--k", "0"], "--k")):
        bad = cli("recommend", ease_run.path, *args)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_http_api_recommends_from_the_modality_schema(ease_run):
    """POST /v1/recommendations/generations: the options come from the ratings modality's schema; a signed CSV."""
    import base64

    from fastapi.testclient import TestClient

    from genlab.serve.app import create_app
    from genlab.serve.config import ServeConfig

    with TestClient(create_app(ServeConfig(runs=ease_run.path.parent), jobs=False)) as c:
        props = c.get("/openapi.json").json()["components"]["schemas"]["RecommendationsGenerationRequest"]["properties"]
        assert {"user", "history", "k"} <= set(props)
        r = c.post("/v1/recommendations/generations", json={"model": ease_run.path.name, "user": "1", "k": 5})
        assert r.status_code == 200, r.text
        item = r.json()["data"][0]
        rows = base64.b64decode(item["b64_json"]).decode().strip().splitlines()
        assert item["filename"].endswith(".csv") and len(rows) == 6 and "c2pa_b64" in item  # header + 5, signed
        bad = c.post("/v1/recommendations/generations", json={"model": ease_run.path.name, "user": "no-such-user"})
        assert bad.status_code == 400 and "no-such-user" in bad.json()["error"]["message"]
