"""The pairs modality and the t5 family: mining, pairs files, training, decoding, metrics, export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab
from genlab.data.pairs import (
    PairsDataConfig,
    mine_docstring_pairs,
    name_as_sentence,
    pairs_from_path,
    prepare_pairs,
    read_pairs_file,
)
from genlab.errors import GenlabError
from genlab.evaluate.pairs import text_metrics

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
TINY_T5 = [
    "model.d_model=64", "model.d_ff=128", "model.d_kv=16", "model.n_head=2", "model.n_layer=1",
    "model.n_decoder_layer=1", "data.vocab_size=300", "data.max_source_tokens=16", "data.max_target_tokens=8",
    "train.batch_size=16", "train.precision=fp32", "train.eval_batches=2", "train.warmup_steps=5",
]

SOURCE = '''
import os

@decorated
def add(a, b):
    """Add two numbers.

    Longer explanation.
    """
    return a + b

def undocumented():
    return 1

class Box:
    def size(self):
        """Return the size."""
        def helper():
            """Help out."""
            return 2
        return helper()

    def abstract(self):
        """Only a docstring."""

async def fetch(url):
    \'\'\'Fetch a page.\'\'\'
    return await get(url)
'''


def test_miner_extracts_known_pairs():
    pairs = {t: s for s, t in mine_docstring_pairs(SOURCE)}
    assert set(pairs) == {"Add two numbers.", "Return the size.", "Help out.", "Fetch a page."}
    assert pairs["Add two numbers."] == "def add(a, b):\n    return a + b"  # no decorator, no docstring
    assert pairs["Fetch a page."] == "async def fetch(url):\n    return await get(url)"
    assert pairs["Help out."] == "def helper():\n    return 2"  # nested, dedented
    assert pairs["Return the size."].startswith("def size(self):\n    def helper():")
    assert '"""Return the size."""' not in pairs["Return the size."]
    assert mine_docstring_pairs("def broken(:\n") == []


def test_name_baseline():
    assert name_as_sentence("def get_file_name(self):\n    pass") == "Get file name."
    assert name_as_sentence("async def readLine(x): ...") == "Read line."


def _write_pairs(path: Path, n: int = 200) -> Path:
    rows = [{"source": f"{WORDS[i % 12]} {WORDS[(i * 7) % 12]} {i}", "target": f"{WORDS[(i * 7) % 12]} {WORDS[i % 12]}"}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pairs_file_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": "a", "target": "b"}\n')
    with pytest.raises(GenlabError, match=r"missing column\(s\) source; found: src, target"):
        read_pairs_file(bad)
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("source,target\n" + "".join(f"s{i},t{i}\n" for i in range(12)) + "s,\ns2, \n")
    with pytest.raises(GenlabError, match="2 pair\\(s\\) have an empty target, the first on line 14"):
        read_pairs_file(csv_file)
    with pytest.raises(GenlabError, match="cannot read it"):
        read_pairs_file(tmp_path / "missing.jsonl")
    few = tmp_path / "few.jsonl"
    few.write_text('{"source": "a", "target": "b"}\n')
    with pytest.raises(GenlabError, match="1 pairs, fewer than 10"):
        read_pairs_file(few)
    assert len(read_pairs_file(_write_pairs(tmp_path / "ok.jsonl", 20))) == 20


def test_pairs_files_found_by_fuzzing(tmp_path):
    """What the fuzz harness (tests/fuzz) broke: each is one line naming the file, or read intact."""
    header = tmp_path / "header.csv"
    header.write_text('"def add(a, b):\n    return a + b",target\nx,y\n', encoding="utf-8")
    with pytest.raises(GenlabError, match=r"missing column\(s\) source; found: 'def add\(a, b\):\\n") as e:
        read_pairs_file(header)
    assert len(str(e.value).splitlines()) == 1
    long_field = tmp_path / "long.csv"
    long_field.write_text("source,target\n" + "a" * 200_000 + ",b\n", encoding="utf-8")
    with pytest.raises(GenlabError, match="long.csv, line 2: not valid CSV"):
        read_pairs_file(long_field)
    for name, line in (("digits", '{"source": 1%s, "target": "t"}' % ("1" * 5000)),
                       ("nested", '{"source": %s, "target": "t"}' % ("[" * 100_000))):
        (tmp_path / f"{name}.jsonl").write_text(line + "\n", encoding="utf-8")
        with pytest.raises(GenlabError, match=f"{name}.jsonl, line 1: "):
            read_pairs_file(tmp_path / f"{name}.jsonl")
    surrogate = tmp_path / "surrogate.jsonl"
    surrogate.write_text("".join('{"source": "s%d", "target": "t\\ud800"}\n' % i for i in range(12)), encoding="utf-8")
    with pytest.raises(GenlabError, match=r"surrogate.jsonl, line 1: the target holds \\ud800, half of a UTF-16"):
        read_pairs_file(surrogate)
    # a line break other than \n inside a JSON string or a CSV field is content, not the end of a row
    rows = [{"source": f"s{i}\u2028more\x1c", "target": f"t{i}\u2029"} for i in range(12)]
    jsonl = tmp_path / "breaks.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_pairs_file(jsonl) == [(r["source"], r["target"]) for r in rows]
    table = tmp_path / "breaks.csv"
    table.write_text("source,target\n" + "".join(f"{r['source']},{r['target']}\r\n" for r in rows), encoding="utf-8")
    assert read_pairs_file(table) == [(r["source"], r["target"]) for r in rows]


def test_batches_group_similar_lengths_and_reach_every_pair(tmp_path):
    # setup: 400 distinct pairs whose sources run from 1 to 40 words
    rows = [{"source": f"{i} " + " ".join(WORDS[(i + j) % 12] for j in range(i % 40)), "target": WORDS[i % 12]}
            for i in range(400)]
    path = tmp_path / "varied.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = prepare_pairs(pairs_from_path(path), PairsDataConfig(vocab_size=300, max_source_tokens=64),
                         tmp_path / "data")
    train = np.asarray(data.arrays[("train", "source")])
    index = {tuple(r[r != data.pad_id].tolist()): i for i, r in enumerate(train)}
    lengths = data.source_lengths("train")
    g = torch.Generator().manual_seed(0)
    # run: 2,000 batches of 8
    counts, padded, real = np.zeros(len(train)), 0, 0
    for _ in range(2000):
        x, _ = data.batch("train", 8, g)
        padded, real = padded + x.numel(), real + int((x != data.pad_id).sum())
        for r in x:
            counts[index[tuple(r[r != data.pad_id].tolist())]] += 1
    random_padded = sum(int(lengths[torch.randint(len(train), (8,), generator=g)].max()) * 8 for _ in range(2000))
    x1, y1 = data.batch("train", 8, torch.Generator().manual_seed(1))
    x2, y2 = data.batch("train", 8, torch.Generator().manual_seed(1))
    # assert: little padding (a random batch pads to the longest of 8), every pair drawn about equally often
    # (expected 2000 * 8 / 360 = 44 each), the same generator state gives the same batch
    assert real / padded > 0.85 and padded < 0.7 * random_padded
    assert counts.min() > 15 and counts.std() / counts.mean() < 0.25
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_bleu_of_perfect_prediction_is_100():
    refs = ["Return the size of the box in bytes.", "Add two numbers."]
    assert text_metrics(refs, refs) == {"bleu": 100.0, "chrf": 100.0, "exact_match": 1.0}
    assert text_metrics(["nothing alike"], ["Return the size."])["bleu"] < 10


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory) -> genlab.Run:
    folder = tmp_path_factory.mktemp("t5")
    data = _write_pairs(folder / "pairs.jsonl")
    return genlab.train("t5", str(data), out=folder / "run",
                        overrides=TINY_T5 + ["train.max_steps=60", "train.eval_every=30", "train.lr=3e-3"])


def test_loss_falls(t5_run):
    rows = [json.loads(line) for line in (t5_run.path / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    train = [r["train_loss"] for r in rows if "train_loss" in r]
    assert val[-1] < 0.5 * val[0] and train[-1] < 0.5 * train[0]
    meta = json.loads((t5_run.path / "data" / "meta.json").read_text())
    assert meta["splits"]["train"]["pairs"] + meta["splits"]["val"]["pairs"] == 200


def test_beam_one_equals_greedy(t5_run):
    model, src = t5_run.model, ["alpha beta 3", "mu zeta 9", "iota"]
    greedy = model.sample(1, source=src, max_new_tokens=8)
    assert model.sample(1, source=src, beams=1, temperature=0.0, max_new_tokens=8) == greedy
    for s, out in zip(src, greedy):  # a hand-written argmax loop gives the same text
        ids = model.tokenizer_.encode(s).ids
        dec = [model.pad_id_]
        with torch.no_grad():
            for _ in range(8):
                logits = model.model_(input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([dec])).logits
                dec.append(int(logits[0, -1].argmax()))
                if dec[-1] == model.eos_id_:
                    break
        assert model.tokenizer_.decode(dec[1:]) == out
    assert len(model.sample(3, source="alpha beta 3", beams=4)) == 3
    with pytest.raises(GenlabError, match="at most `beams`"):
        model.sample(2, source="alpha")


def test_no_repeat_ngram_forbids_repeats(t5_run):
    # setup: an untrained-looking source, long outputs (a small model loops on them)
    model, src = t5_run.model, ["zeta zeta zeta 77", "alpha 1"]
    # run
    plain = model.sample(1, source=src, max_new_tokens=16)
    outs = model.sample(1, source=src, max_new_tokens=16, no_repeat_ngram=1) + \
        model.sample(1, source=src, max_new_tokens=16, no_repeat_ngram=1, beams=3)
    # assert: no token occurs twice with n-gram size 1; a negative size is refused
    for out in outs:
        ids = model.tokenizer_.encode(out).ids[:-1]  # the encoder appends the end token
        assert len(ids) == len(set(ids)), (out, plain)
    with pytest.raises(GenlabError, match="no_repeat_ngram must be"):
        model.sample(1, source="alpha", no_repeat_ngram=-1)


def test_sampling_is_seeded_and_leaves_global_rng(t5_run):
    model = t5_run.model
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = model.sample(4, source="alpha beta 3", temperature=1.5, top_k=50, seed=7)
    b = model.sample(4, source="alpha beta 3", temperature=1.5, top_k=50, seed=7)
    assert a == b
    assert torch.equal(torch.get_rng_state(), before)
    c = model.sample(4, source="alpha beta 3", temperature=1.5, top_k=50, seed=8)
    assert c != a


def test_evaluate_reports_model_and_baseline(t5_run):
    report = t5_run.evaluate(n=30, save=False)
    assert report["n_pairs"] <= 30 and report["decoding"] == "greedy"
    for who in ("model", "baseline"):
        assert set(report[who]) >= {"bleu", "chrf", "exact_match"}
    assert report["baseline"]["name"] == "first_line"


def test_evaluate_scores_the_loss_without_dropout(tmp_path):
    # setup: a model trained with heavy dropout, still in training mode (as a family is right after fit)
    data = _write_pairs(tmp_path / "pairs.jsonl")
    run = genlab.train("t5", str(data), out=tmp_path / "run",
                       overrides=TINY_T5 + ["model.dropout=0.3", "train.max_steps=4", "train.eval_every=4"])
    run.model.model_.train()
    # run
    first, second = (run.model.evaluate(run.data, n=40)["val_loss"] for _ in range(2))
    # assert: the same figure each time (dropout would change it), the figure of the model in eval mode
    assert first == second
    n_val = run.data.n_pairs("val")
    assert n_val <= 32  # one batch of evaluate's: its mean is the loss of all held-out pairs at once
    with torch.no_grad():
        run.model.model_.eval()
        expected = float(run.model.loss(run.data.rows("val", list(range(n_val)))))
    assert first == pytest.approx(expected, rel=1e-6)


def test_eval_cli_decodes_with_beams(t5_run):
    # setup: the CLI as a user runs it
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "genlab.cli", "eval", str(t5_run.path), *args],
                              capture_output=True, text=True, timeout=300, check=False)

    # run
    ok = cli("--n", "8", "--beams", "2", "--no-repeat-ngram", "2", "--json")
    bad = cli("--beams", "0")
    # assert
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["decoding"] == "beam search, 2 beams, no repeated 2-grams"
    assert bad.returncode == 2 and "--beams must be at least 1" in bad.stderr


def test_logits_processor_reaches_generate(t5_run):
    model = t5_run.model
    forced = model.tokenizer_.token_to_id("alpha")

    def only_alpha(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # scores (B, V)
        out = torch.full_like(scores, -float("inf"))
        out[:, forced] = 0.0
        return out

    assert model.sample(1, source="mu zeta 9", max_new_tokens=3, logits_processor=only_alpha) == ["alphaalphaalpha"]
    out = t5_run.sample(1, source="alpha beta 3", max_new_tokens=8)  # through the release layer (TextMarks)
    assert isinstance(out[0], str)


def test_export_round_trip(t5_run, tmp_path):
    from transformers import AutoModelForSeq2SeqLM, PreTrainedTokenizerFast

    t5_run.export(tmp_path / "hf")
    hf = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hf").eval()
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path / "hf")
    model = t5_run.model
    enc = tok(["alpha beta 3", "mu"], return_tensors="pt", padding=True)
    assert enc["input_ids"][0].tolist() == model.tokenizer_.encode("alpha beta 3").ids  # ends with the eos
    dec = torch.tensor([[model.pad_id_, 5, 6], [model.pad_id_, 7, 8]])
    with torch.no_grad():
        ours = model.model_.eval()(**enc, decoder_input_ids=dec).logits
        theirs = hf(**enc, decoder_input_ids=dec).logits
    torch.testing.assert_close(ours, theirs)
    generated = hf.generate(**tok(["alpha beta 3"], return_tensors="pt"), max_new_tokens=8)
    assert tok.decode(generated[0], skip_special_tokens=True) == model.sample(1, source="alpha beta 3",
                                                                           max_new_tokens=8)[0]


def test_pairs_audit_finds_copied_targets_and_the_card_points_to_detect(t5_run):
    # Run: the tiny model swaps two words; its data has 12 distinct targets, each in training and held out alike
    report = t5_run.audit(n=20, seed=0)
    # Assert: its outputs are training targets, as natural here as the held-out truths being ones
    copies = report["memorisation"]["exact_copies"]
    assert copies["heldout_share"] == 1.0 and copies["generated_share"] > 0.5
    assert set(report["memorisation"]["by_size"]) == {"4", "8"} and report["memorisation"]["n_sources"] == 20
    assert report["bias"]["skipped"] and len(report["summary"]) == 4 and report["verdict"].startswith("Verdict: ")
    assert json.loads((t5_run.path / "audit.json").read_text())["modality"] == "pairs"
    card = (t5_run.path / "README.md").read_text()
    assert "pipeline_tag: text2text-generation" in card and "genlab detect FILE --run RUN" in card
    assert "Exact copies of a training target" in card
    assert t5_run.detect("beta alpha gamma delta").document.tokens_scored > 0  # the keyed mark can be tested
