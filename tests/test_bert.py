"""The bert family: masked-language-model training, fill, embed, evaluation, export and the CLI verbs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import genlab
from genlab.errors import GenlabError
from genlab.models.bert import MASK, batch_generator, mask_tokens

from conftest import TINY, StopAt

BERT_TINY = TINY + ["train.lr=1e-3", "train.min_lr=1e-4"]


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory, corpus_file) -> genlab.Run:
    out = tmp_path_factory.mktemp("runs") / "bert"
    # MLM leaves the unigram plateau later than next-token prediction does: 1000 tiny steps (about 20 s)
    return genlab.train("bert", str(corpus_file), out=out,
                        overrides=BERT_TINY + ["train.max_steps=1000", "train.eval_every=250"])


def test_mlm_loss_falls_below_start_and_unigram_baseline(bert_run):
    rows = [json.loads(line) for line in (bert_run.path / "metrics.jsonl").read_text().splitlines()]
    train = [r["train_loss"] for r in rows if "train_loss" in r]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    report = bert_run.evaluate()
    assert train[-1] < train[0] - 0.5 and val[-1] < val[0]
    assert val[-1] < report["unigram_entropy"]
    assert report["mlm_loss"] < report["unigram_entropy"]
    assert report["masked_accuracy"] > report["unigram_accuracy"]
    assert report["pppl_tokens"] == 512 and 1 < report["pseudo_perplexity"] < bert_run.model.vocab_size_
    assert json.loads((bert_run.path / "eval.json").read_text())["masked_accuracy"] == report["masked_accuracy"]


def test_fill_gives_k_fillers_per_mask(bert_run):
    (one,) = bert_run.model.fill("To be, or not to b[MASK], that", top_k=3)
    assert len(one) == 3 and all(isinstance(t, str) and 0 <= p <= 1 for t, p in one)
    assert sum(p for _, p in one) <= 1 + 1e-6 and [p for _, p in one] == sorted((p for _, p in one), reverse=True)
    two = bert_run.model.fill("Th[MASK] king is d[MASK]d.", top_k=5)
    assert len(two) == 2 and all(len(f) == 5 and sum(p for _, p in f) <= 1 + 1e-6 for f in two)
    assert all(MASK not in t for f in two for t, _ in f)


@pytest.mark.parametrize("text, message", [
    ("no mask here", "has no \\[MASK\\]"),
    ("[MASK] [MASK]", "only \\[MASK\\]s"),
    ("x" * 40 + "[MASK]", "longer than the model's context of 32"),
])
def test_fill_refuses_bad_input(bert_run, text, message):
    with pytest.raises(GenlabError, match=message):
        bert_run.model.fill(text)


def test_embed_shape_and_padding(bert_run):
    vecs = bert_run.model.embed(["Hamlet", "To be, or not to be", "x" * 100])
    assert vecs.shape == (3, 64) and vecs.dtype == np.float32 and np.isfinite(vecs).all()
    alone = bert_run.model.embed(["Hamlet"])
    assert np.allclose(alone[0], vecs[0], atol=1e-5)  # padding beside a longer text does not change it
    with pytest.raises(GenlabError, match="text 2 is empty"):
        bert_run.model.embed(["a", ""])


def test_masking_is_seeded_and_follows_the_rule():
    x = torch.randint(0, 50, (64, 128), generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    kw = dict(mask_id=60, n_regular=50, mask_prob=0.15, mask_frac=0.8, random_frac=0.1)
    a = mask_tokens(x, generator=batch_generator(x, 1), **kw)
    b = mask_tokens(x, generator=batch_generator(x, 1), **kw)
    c = mask_tokens(x, generator=batch_generator(x, 2), **kw)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never touched
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])
    inputs, labels = a
    chosen = labels != -100
    assert 0.13 < chosen.float().mean() < 0.17 and torch.equal(labels[chosen], x[chosen])
    assert torch.equal(inputs[~chosen], x[~chosen])
    masked = (inputs[chosen] == 60).float().mean()
    assert 0.75 < masked < 0.85 and (inputs[chosen] < 50).float().mean() > 0.15  # random or kept: real tokens


def test_sample_is_refused(bert_run):
    with pytest.raises(GenlabError, match="genlab fill"):
        bert_run.sample(1)


def test_save_load_round_trip(bert_run):
    again = genlab.load(bert_run.path)
    assert again.model.vocab_size_ == bert_run.model.vocab_size_
    assert again.model.fill("To be, or not to b[MASK]") == bert_run.model.fill("To be, or not to b[MASK]")
    assert np.array_equal(again.model.embed(["Hamlet"]), bert_run.model.embed(["Hamlet"]))


def test_export_round_trip_gives_equal_logits(bert_run, tmp_path):
    from transformers import AutoModelForMaskedLM, PreTrainedTokenizerFast

    out = bert_run.export(tmp_path / "hf")
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(out)
    assert tok.mask_token == MASK and tok.pad_token == "[PAD]"
    text = "To be, or not to b[MASK], that"
    ids = tok(text, return_tensors="pt")["input_ids"]  # (1, T)
    assert ids[0].tolist() == bert_run.model.tokenizer_.encode(text).ids
    mine = bert_run.model.model_.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, mine(input_ids=ids).logits, atol=1e-5)


def genlab_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_fill_and_embed(bert_run, tmp_path):
    r = genlab_cli("fill", bert_run.path, "Th[MASK] king is d[MASK]d.", "--top-k", "4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("[MASK] 1") == 1 and r.stdout.count("[MASK] 2") == 1
    texts = tmp_path / "texts.txt"
    texts.write_text("Hamlet\nTo be, or not to be\nthe king\n", encoding="utf-8")
    r = genlab_cli("embed", bert_run.path, texts, "--out", tmp_path / "emb.npy")
    assert r.returncode == 0, r.stderr
    vecs = np.load(tmp_path / "emb.npy")
    assert vecs.shape == (3, 64) and np.allclose(vecs, bert_run.model.embed(texts.read_text().splitlines()), atol=1e-5)
    again = genlab_cli("embed", bert_run.path, texts, "--out", tmp_path / "emb.npy")
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["fill", "RUN", "no mask"], "has no [MASK]"),
    (["fill", "RUN", "[MASK]"], "only [MASK]s"),
    (["sample", "RUN"], "genlab fill"),
    (["embed", "RUN", "missing.txt", "--out", "e.npy"], "missing.txt"),
])
def test_cli_bad_input_is_one_line_and_exit_2(bert_run, tmp_path, args, message):
    r = genlab_cli(*[bert_run.path if a == "RUN" else a for a in args], cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1



def test_resume_masks_as_an_uninterrupted_run(tmp_path, corpus_file):
    over = BERT_TINY + ["train.max_steps=16", "train.eval_every=8", "train.log_every=1", "train.checkpoint_every=5",
                        "model.dropout=0.1", "train.threads=1"]  # a fixed thread count: the same rounding in both runs
    full = genlab.train("bert", str(corpus_file), out=tmp_path / "full", overrides=over)
    with pytest.raises(KeyboardInterrupt):
        genlab.train("bert", str(corpus_file), out=tmp_path / "cut", overrides=over, callbacks=[StopAt(9)])
    resumed = genlab.train("bert", str(corpus_file), out=tmp_path / "cut", overrides=over, resume=True)
    for a, b in zip(full.model.model_.parameters(), resumed.model.model_.parameters()):
        assert torch.equal(a, b)
