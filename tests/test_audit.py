"""Memorisation and bias audits: the maths on constructed arrays and strings, then one small run of each modality."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import genlab
from genlab.data.tokenizers import train_tokenizer
from genlab.errors import GenlabError
from genlab.responsible import bias as B
from genlab.responsible import memorise as M
from genlab.modalities.base import Modality
from genlab.modalities.text_audit import prompt_problem
from genlab.responsible.audit import audit_run


pytestmark = pytest.mark.usefixtures("one_thread")  # from conftest


def chars(text: str) -> np.ndarray:
    return np.array([ord(c) for c in text], dtype=np.int64)


def unchars(ids) -> str:
    return "".join(map(chr, ids))


def brute_found(train: np.ndarray, seq: np.ndarray, n: int) -> np.ndarray:
    grams = {tuple(train[i : i + n]) for i in range(len(train) - n + 1)}
    return np.array([tuple(seq[i : i + n]) in grams for i in range(len(seq) - n + 1)], dtype=bool)


def brute_informative(seq: np.ndarray, n: int) -> np.ndarray:
    return np.array([n < 4 or 2 * np.bincount(seq[i : i + n]).max() <= n for i in range(len(seq) - n + 1)], dtype=bool)


# -- hashing and matching -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 13, 16, 32, 33])
def test_rolling_hash_equals_the_direct_formula(n):
    tokens = np.random.default_rng(n).integers(0, 70_000, 120)
    fast = M.ngram_hashes(tokens, n)
    assert fast.dtype == np.uint64 and len(fast) == 120 - n + 1
    assert [int(h) for h in fast] == [M.ngram_hash_slow(tokens[i : i + n].tolist()) for i in range(120 - n + 1)]
    assert len(M.ngram_hashes(tokens[:5], 6)) == 0


@pytest.mark.parametrize("n", [2, 4, 8])
def test_matches_equal_brute_force_and_point_at_real_copies(n):
    # Setup: a 3-letter alphabet, so short n-grams recur and long ones mostly do not
    rng = np.random.default_rng(n)
    train = rng.integers(0, 3, 400).astype(np.uint16)
    seqs = [rng.integers(0, 3, 50), np.r_[rng.integers(0, 3, 10), train[200:230]], rng.integers(0, 3, 3)]
    # Run
    m = M.match_ngrams(train, seqs, n)
    # Assert
    want = np.concatenate([brute_found(train, s, n) if len(s) >= n else np.zeros(0, bool) for s in seqs])
    info = np.concatenate([brute_informative(s, n) if len(s) >= n else np.zeros(0, bool) for s in seqs])
    assert np.array_equal(m.found_any, want) and np.array_equal(m.informative, info)
    assert np.array_equal(m.found, want & info)
    for k, i, p in zip(m.owner[m.found], m.start[m.found], m.train_pos[m.found]):
        assert np.array_equal(train[p : p + n], seqs[k][i : i + n])


def test_hash_collisions_are_rejected_by_the_exact_check(monkeypatch):
    # Setup: every token hashes to 0, so every n-gram collides with every other
    monkeypatch.setattr(M, "_mix", lambda t: np.zeros(len(t), dtype=np.uint64))
    rng = np.random.default_rng(0)
    train, seq = rng.integers(0, 4, 300), rng.integers(0, 4, 60)
    # Run
    m = M.match_ngrams(train, [seq], 5)
    # Assert: no false copy survives (with one training offset checked per hash, a real copy may be missed here;
    # with real 64-bit hashes that needs a collision, about one in 2^64 per lookup)
    truth = brute_found(train, seq, 5)
    ok = m.found_any
    assert truth.any() and not (ok & ~truth).any()
    assert all(np.array_equal(train[p : p + 5], seq[i : i + 5]) for i, p in zip(m.start[ok], m.train_pos[ok]))


def test_longest_copy_is_exact():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 4, 3000)
    seqs = [np.r_[rng.integers(0, 4, 30), train[500:511], rng.integers(0, 4, 30)] for _ in range(3)]
    brute = max((L for L in range(1, 31) if any((brute_found(train, s, L) & brute_informative(s, L)).any()
                                                 for s in seqs)), default=0)
    length, where = M.longest_copy(train, seqs)
    k, i, p = where
    assert length == brute >= 11 and np.array_equal(seqs[k][i : i + length], train[p : p + length])


def test_a_planted_training_passage_is_flagged(corpus_file):
    # Setup: character "tokens"; a 64-character passage of the training text inside random letters
    text = corpus_file.read_text(encoding="utf-8")
    train = chars(text)
    passage = text[50_000:50_064]
    rng = np.random.default_rng(0)
    noise = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), 200)) for _ in range(3)]
    planted = [chars(noise[0][:100] + passage + noise[0][100:]), chars(noise[1])]
    heldout = [chars(noise[2])]
    # Run
    report = M.text_memorisation(train, planted, heldout, unchars)
    random_only = M.text_memorisation(train, [chars(noise[1])], heldout, unchars)
    # Assert
    gen = report["generated"]
    assert all(report["by_size"][str(n)]["generated_share"] > 0 for n in (8, 16, 32))
    assert gen["longest_copy_tokens"] >= 64 and gen["longest_copy_chars"] >= 64 and passage in gen["longest_copy_text"]
    assert passage in gen["examples"][0]["text"] and gen["examples"][0]["sample"] == 0
    assert all(random_only["by_size"][str(n)]["generated_share"] == 0 for n in (8, 16, 32))
    assert random_only["generated"]["longest_copy_tokens"] < 8 and random_only["generated"]["examples"] == []
    assert report["by_size"]["8"]["heldout_share"] == 0 and report["heldout"]["longest_copy_tokens"] < 8
    json.dumps(report, allow_nan=False)


def test_runs_of_one_token_do_not_count_as_copies():
    # Setup: the training text and the sample both hold a long run of spaces
    train = chars("To be, or not to be:" + " " * 60 + "that is the question.")
    sample = [chars("xq" + " " * 50 + "zk")]
    # Run
    report = M.text_memorisation(train, sample, [], unchars)
    # Assert: found verbatim, but not informative
    assert report["by_size"]["32"]["generated_uninformative"] > 0.5
    assert report["by_size"]["32"]["generated_share"] is None  # no informative 32-gram to count
    assert report["generated"]["longest_copy_tokens"] < 8
    assert M.informative(chars("ab  cd  "), 8).all() and not M.informative(chars("a     bc"), 8).any()


# -- text bias ----------------------------------------------------------------------------------------------------
def test_word_lists_ship_with_the_package():
    female, male, occupations = (set(B.wordlist(w)) for w in ("female", "male", "occupations"))
    assert {"she", "her", "woman", "queen"} <= female and {"he", "his", "man", "king"} <= male
    assert not female & male and not (female | male) & occupations and len(occupations) >= 20


def test_gender_counts_and_shares_are_exact():
    # Setup
    lists = B.GenderWords.shipped()
    completions = {"The nurse said that": ["She told him her plan.", "he's the KING, and she is queen"],
                   "The pilot said that": ["nothing gendered here"]}
    occupation_of = {"The nurse said that": "nurse", "The pilot said that": "pilot"}
    corpus_text = "the nurse saw her. " + "x " * 50 + "he and his men and the nurses met a woman"
    # Run
    corpus = B.corpus_gender(corpus_text, ["nurse", "pilot"], lists, window=3)
    report = B.text_bias_report(completions, occupation_of, corpus, {"The X said that": "why"}, lists)
    # Assert: completions: she, her, she, queen (4 female) vs him, he, king (3 male)
    assert B.gender_counts(completions["The nurse said that"], lists) == (4, 3)
    assert corpus["female"] == 2 and corpus["male"] == 3 and corpus["occupations"]["pilot"]["mentions"] == 0
    # within 3 words of "nurse": "her" (first mention); "men" and "woman" around "nurses"
    assert corpus["occupations"]["nurse"] == {"mentions": 2, "female": 2, "male": 1}
    nurse, pilot = report["prompts"]
    assert nurse["female_share"] == pytest.approx(4 / 7) and nurse["train_near_female_share"] == pytest.approx(2 / 3)
    assert nurse["gap_to_train_overall"] == pytest.approx(4 / 7 - 2 / 5)
    assert pilot["female_share"] is None and pilot["interval95"] is None
    agg = report["aggregate"]
    assert agg["prompts_with_gendered_words"] == 1 and agg["spread_min"] == agg["spread_max"] == pytest.approx(4 / 7)
    assert report["skipped"] == {"The X said that": "why"}
    lo, hi = B.wilson(4, 7)
    assert lo < 4 / 7 < hi


def test_prompts_the_tokenizer_cannot_write_are_skipped():
    tok = train_tokenizer("char", ["the nurse said that"], vocab_size=300)
    assert prompt_problem(tok, "the nurse said that", 64) is None
    assert "never saw" in prompt_problem(tok, "The nurse said that", 64)  # no capital T in training
    assert "longer than" in prompt_problem(tok, "the nurse said that", 8)


# -- images -------------------------------------------------------------------------------------------------------
def test_nearest_distances_and_a_copied_image_is_flagged():
    # Setup: "images" as rows; sample 0 is a training image, the others lie farther out than held-out ones
    rng = np.random.default_rng(0)
    train, heldout = rng.normal(size=(300, 64)), rng.normal(size=(200, 64))
    samples = np.r_[train[17:18], 1.5 * rng.normal(size=(9, 64))]
    # Run
    near = M.nearest_distances(samples, train, chunk=4)
    report, score = M.copy_report(near, M.nearest_distances(heldout, train))
    # Assert
    brute = np.sort(np.linalg.norm(samples[:, None] - train[None], axis=2), axis=1)
    assert np.allclose(near.dist, brute[:, 0]) and np.allclose(near.second, brute[:, 1])
    assert near.dist[0] == pytest.approx(0, abs=1e-6) and near.index[0] == 17 and near.relative[0] < 1e-6
    assert report["possible_copies"] == 1 and report["possible_copy_share"] == pytest.approx(0.1)
    assert score[0] <= 1 < score[1:].min() and report["baseline_share"] <= 0.01


def test_a_blurry_average_is_not_a_copy():
    # Setup: in many dimensions the mean image is nearer to every training image than held-out images are to
    # their nearest one, as a blurry sample is; but it is near all of them alike
    rng = np.random.default_rng(1)
    train, heldout = rng.normal(size=(200, 64)), rng.normal(size=(200, 64))
    blur = np.zeros((1, 64))
    # Run
    report, _ = M.copy_report(M.nearest_distances(blur, train), M.nearest_distances(heldout, train))
    # Assert
    assert report["nearer_than_threshold_share"] == 1 and report["possible_copies"] == 0


def test_label_distributions():
    # Setup: 3 classes, 4 samples each; class 2 always comes out as class 0
    requested = np.repeat([0, 1, 2], 4)
    produced = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    # Run
    conf = B.confusion(requested, produced, 3)
    report = B.conditional_label_report(conf, ["a", "b", "c"], np.ones(3))
    plain = B.unconditional_label_report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2, -1]), ["a", "b", "c"],
                                         np.array([0, 1, 1, 2]))
    # Assert
    assert conf.tolist() == [[3, 1, 0], [0, 4, 0], [4, 0, 0]]
    assert report["per_class_agreement"] == [0.75, 1.0, 0.0] and report["worst_class"] == "c"
    assert report["agreement"] == pytest.approx(7 / 12) and report["tv_distance"] == pytest.approx(1 / 3)
    assert plain["tv_distance"] == pytest.approx(0.25) and plain["heldout_tv_distance"] == pytest.approx(0)


# -- whole runs ---------------------------------------------------------------------------------------------------
def test_a_modality_without_an_audit_says_so():
    class Music(Modality):
        name = "music"

    run = SimpleNamespace(modality=Music())
    with pytest.raises(GenlabError, match="no audit for music"):
        audit_run(run, n=4)


def test_text_run_audit(trained_run):
    # Run
    report = audit_run(trained_run, n=4, seed=0)
    # Assert
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text)["modality"] == "text" and report["method"] and report["limits"]
    memo, bias = report["memorisation"], report["bias"]
    assert memo["generated"]["sequences"] == 4 and memo["heldout"]["sequences"] >= 1
    assert all(0 <= memo["by_size"][n]["generated_share"] <= 1 for n in ("8", "16", "32"))
    assert len(bias["prompts"]) + len(bias["skipped"]) == len(B.wordlist("occupations"))
    assert len(report["summary"]) >= 3 and bias["train"]["words"] > 10_000
    assert report["summary"][0] == report["verdict"] and report["verdict"].startswith("Verdict: ")


def test_image_run_audit(tmp_path, monkeypatch):
    # Setup: a conditional VAE on 8x8 digits, barely trained; the feature network cached in a private folder
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    run = genlab.train("vae", "digits", out=tmp_path / "r", overrides=[
        "model.latent_dim=8", "model.width=8", "model.hidden=64", "model.conditional=true", "train.max_steps=20",
        "train.eval_every=20", "train.batch_size=32", "train.precision=fp32", "train.threads=1"])
    # Run
    report = audit_run(run, n=40, seed=0, out=tmp_path / "audit")
    # Assert
    json.dumps(report, allow_nan=False)
    memo, bias = report["memorisation"], report["bias"]
    assert 0 <= memo["pixels"]["possible_copy_share"] <= 1 and memo["n_samples"] == 40
    assert (tmp_path / "audit" / "closest-pairs.png").is_file()
    assert np.array(bias["confusion"]).shape == (10, 10) and np.array(bias["confusion"]).sum() == 100
    assert 0 <= bias["tv_distance"] <= 1 and len(report["summary"]) == 4
    # barely trained: the samples are blurs, not copies; the classes are far from the ones asked for
    assert report["verdict"].startswith("Verdict: no sign of copying") and "further from the data" in report["verdict"]


def test_verdicts_follow_their_rules():
    from genlab.modalities.text_audit import text_verdict

    def memo(generated, heldout, longest=10):
        return {"by_size": {"16": {"generated_share": generated, "heldout_share": heldout}},
                "generated": {"longest_copy_tokens": longest}, "heldout": {"longest_copy_tokens": 12}}

    bias = {"aggregate": {"prompts_with_gendered_words": 5, "female_share_all_completions": 0.30,
                          "train_female_share": 0.35}}
    assert "no sign of memorisation" in text_verdict(memo(0.02, 0.015), bias)
    assert "possible memorisation" in text_verdict(memo(0.20, 0.015), bias)
    assert "possible memorisation" in text_verdict(memo(0.01, 0.015, longest=200), bias)
    assert "follow the training text" in text_verdict(memo(0.01, 0.01), bias)
    bias["aggregate"]["female_share_all_completions"] = 0.60
    assert "drift from the training text" in text_verdict(memo(0.01, 0.01), bias) and "more female" in \
        text_verdict(memo(0.01, 0.01), bias)
