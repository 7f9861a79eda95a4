import json
import math

import pytest
import torch

import genlab
from genlab.errors import GenlabError
from genlab.train.loop import lr_at
from genlab.config import TrainConfig

from conftest import TINY, StopAt


def test_loss_falls_well_below_unigram_entropy(trained_run):
    # Run
    report = trained_run.evaluate()
    # Assert: the model has learned far more than character frequencies
    assert report["val_loss"] < report["unigram_entropy"] - 0.7
    assert math.isclose(report["bits_per_char"], report["val_loss"] / math.log(2), rel_tol=0.05)
    rows = [json.loads(line) for line in (trained_run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [100, 200]
    assert rows[0]["train_loss"] > rows[-2]["train_loss"] + 0.8


def test_run_folder_is_complete(trained_run):
    names = {p.name for p in trained_run.path.iterdir()}
    assert {"config.toml", "config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl", "loss.png",
            "samples", "checkpoint.safetensors"} <= names
    assert (trained_run.path / "samples" / "step-200.txt").read_text()
    assert not [n for n in names if n.endswith(".tmp")]
    (row,) = genlab.list_runs(trained_run.path.parent)
    assert row["family"] == "gpt" and row["steps"] == 200 and row["best_val_loss"] < 3


def test_reload_gives_the_same_model(trained_run):
    again = genlab.load(trained_run.path)
    assert again.sample(2, max_new_tokens=30, seed=5) == trained_run.sample(2, max_new_tokens=30, seed=5)


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55) and lr_at(110, cfg) == pytest.approx(0.1)



def _losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]


def test_resume_is_bit_identical_in_fp32(tmp_path, corpus_file):
    # Setup: dropout on, so the RNG state must be restored too; log every step
    over = TINY + ["train.max_steps=24", "train.eval_every=8", "train.log_every=1", "train.checkpoint_every=5",
                   "model.dropout=0.1", "train.threads=1"]  # a fixed thread count: the same rounding in both runs
    full = genlab.train("gpt", str(corpus_file), out=tmp_path / "full", overrides=over)
    # Run: interrupted at step 13 (checkpoint at 10 and at the interrupt), then resumed
    with pytest.raises(KeyboardInterrupt):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "cut", overrides=over, callbacks=[StopAt(13)])
    resumed = genlab.train("gpt", str(corpus_file), out=tmp_path / "cut", overrides=over, resume=True)
    # Assert
    assert _losses(full.path) == _losses(resumed.path)
    assert len(_losses(full.path)) == 24
    for a, b in zip(full.model.model_.parameters(), resumed.model.model_.parameters()):
        assert torch.equal(a, b)


def test_existing_run_needs_resume(tmp_path, trained_run, corpus_file):
    with pytest.raises(GenlabError, match="already exists and is not empty; add --resume"):
        genlab.train("gpt", str(corpus_file), out=trained_run.path, overrides=TINY)


def test_resume_refuses_another_architecture(tmp_path, corpus_file):
    over = TINY + ["train.max_steps=4", "train.eval_every=2"]
    genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=over)
    with pytest.raises(GenlabError, match=r"architecture or data settings differ \(model.n_layer\)"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=over + ["model.n_layer=3"], resume=True)
    with pytest.raises(GenlabError, match="not a run to resume"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "nothing", overrides=over, resume=True)


def test_checkpoint_architecture_is_checked(tmp_path, corpus_file):
    # Setup: a checkpoint written by a different architecture, under an unchanged config.toml
    over = TINY + ["train.max_steps=4", "train.eval_every=2"]
    genlab.train("gpt", str(corpus_file), out=tmp_path / "a", overrides=over)
    genlab.train("gpt", str(corpus_file), out=tmp_path / "b", overrides=over + ["model.n_layer=1"])
    (tmp_path / "b" / "checkpoint.safetensors").replace(tmp_path / "a" / "checkpoint.safetensors")
    # Run / Assert
    with pytest.raises(GenlabError, match="architecture differs .*n_layer: checkpoint 1, now 2"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "a", overrides=over, resume=True)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_is_refused(tmp_path, corpus_file, damage):
    over = TINY + ["train.max_steps=4", "train.eval_every=2"]
    genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=over)
    ck = tmp_path / "r" / "checkpoint.safetensors"
    data = bytearray(ck.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-100] ^= 0xFF
    ck.write_bytes(bytes(data))
    with pytest.raises(GenlabError, match="truncated or corrupted|is corrupted"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=over, resume=True)


def test_failed_start_leaves_nothing_behind(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny\n" * 30)
    with pytest.raises(GenlabError, match="shorter than one block"):
        genlab.train("gpt", str(short), out=tmp_path / "run", overrides=TINY)
    assert not (tmp_path / "run").exists()


def test_global_rng_is_untouched(tmp_path, corpus_file):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=TINY + ["train.max_steps=3",
                                                                               "model.dropout=0.1"])
    assert torch.equal(torch.rand(3), expected)


def test_bf16_autocast_trains(tmp_path, corpus_file):
    # bf16 is slow without AMX, so only a few steps: the path must run and learn, whatever the CPU
    run = genlab.train("gpt", str(corpus_file), out=tmp_path / "r",
                       overrides=TINY + ["train.max_steps=30", "train.precision=bf16", "train.eval_every=30"])
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["val_loss"] < 3.6
    assert all(p.dtype == torch.float32 for p in run.model.model_.parameters())  # master weights stay fp32
