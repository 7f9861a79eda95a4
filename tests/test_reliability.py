"""Faults and bad input found by probing genlab on purpose, each fixed by a rule and held here by a test:
settings have ranges, sizes are bounded before allocation, run folders are read as untrusted input, a folder is
locked while a process trains in it, and a run stopped before its first checkpoint can always be continued."""

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import struct
import typing
import zlib

import pytest
import torch
from safetensors.torch import load_file, save_file

import genlab
from genlab import config as cfgmod
from genlab import registry
from genlab.errors import GenlabError
from genlab.lock import RunLock
from conftest import TINY

FAST = TINY + ["train.max_steps=6", "train.eval_every=0", "train.eval_batches=1", "train.log_every=1",
               "train.threads=1", "release.track_energy=false"]


def config_classes():
    yield cfgmod.TrainConfig
    yield cfgmod.ReleaseConfig
    for name in registry.FAMILIES:
        yield registry.get_family(name).Config
    for name in registry.MODALITIES:
        yield registry.get_modality(name).DataConfig


def numeric_fields(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if t in (int, float) or (typing.get_origin(t) is tuple and typing.get_args(t)[0] in (int, float)):
            yield f.name, t


# -- settings ---------------------------------------------------------------------------------------------------
def test_every_number_of_every_config_has_a_range():
    # Setup: every config class genlab registers; Run + Assert: each numeric field is in its class's limits
    missing = [f"{cls.__name__}.{name}" for cls in config_classes() for name, _ in numeric_fields(cls)
               if name not in getattr(cls, "limits", {})]
    assert not missing, f"numbers without a range: {missing}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "-1e300"])
def test_no_float_setting_takes_a_non_finite_or_absurd_value(value):
    gpt = registry.get_family("gpt")
    for section, cls in (("train", cfgmod.TrainConfig), ("release", cfgmod.ReleaseConfig), ("model", gpt.Config)):
        for name, t in numeric_fields(cls):
            if t is float:
                with pytest.raises(GenlabError, match=rf"{section}\.{name} must"):
                    cfgmod.build("gpt", "x", gpt.Config, gpt.data_config_class(), overrides=[f"{section}.{name}={value}"])


@pytest.mark.parametrize("override, message", [
    ("train.beta1=1.5", r"^\[train\] train.beta1 must be in \[0, 1\), got 1.5$"),
    ("train.grad_clip=nan", "train.grad_clip must be a finite number"),
    ("model.n_embd=1048576", "model.n_embd must be at most 65536"),
    ("model.dropout=1", r"model.dropout must be in \[0, 1\)"),
])
def test_out_of_range_settings_are_refused_before_anything_is_built(tmp_path, corpus_file, override, message):
    with pytest.raises(GenlabError, match=message):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "run", overrides=[*FAST, override])
    assert not (tmp_path / "run").exists()


def test_a_model_too_large_for_memory_is_refused_with_the_figure(tmp_path, corpus_file):
    # 64 layers of width 65536: about 3.3 trillion parameters, 53 TB to train
    big = [*FAST, "model.n_layer=64", "model.n_embd=65536", "model.n_head=64"]
    with pytest.raises(GenlabError, match=r"training this gpt model \(.* parameters\) needs about [\d.]+ TB"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "run", overrides=big)
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_refused(tmp_path, corpus_file):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GenlabError, match="is a file, not a run folder"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "notes.txt", overrides=FAST)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# -- stranded runs, refused resumes, the lock ------------------------------------------------------------------------
class FailAt:
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step, logs):
        if step == self.step:
            raise RuntimeError("a fault before the first checkpoint")


def test_a_run_that_failed_before_its_first_checkpoint_resumes_from_step_0(tmp_path, corpus_file):
    # Setup: a straight run, and one that fails at step 2 (checkpoints every 100 steps: none written)
    straight = genlab.train("gpt", str(corpus_file), out=tmp_path / "straight", overrides=FAST)
    out = tmp_path / "stranded"
    with pytest.raises(RuntimeError):
        genlab.train("gpt", str(corpus_file), out=out, overrides=[*FAST, "train.checkpoint_every=100"],
                     callbacks=[FailAt(2)])
    # Run: --out says what to do; --resume trains it from step 0
    with pytest.raises(GenlabError, match="has no checkpoint: add --resume to train it from step 0"):
        genlab.train("gpt", str(corpus_file), out=out, overrides=FAST)
    resumed = genlab.train("gpt", str(corpus_file), out=out, overrides=FAST, resume=True)
    # Assert: the same weights as the straight run, bit for bit
    a, b = load_file(straight.path / "model.safetensors"), load_file(resumed.path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_refused_resume_writes_nothing(tmp_path, corpus_file):
    out = tmp_path / "run"
    genlab.train("gpt", str(corpus_file), out=out, overrides=[*FAST, "release.track_energy=true"])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    ckpt = out / "checkpoint.safetensors"
    header = ckpt.read_bytes()
    ckpt.write_bytes(header[:8] + b"{not json" + header[17:])  # a damaged header
    with pytest.raises(GenlabError, match="truncated or corrupted"):
        genlab.train("gpt", str(corpus_file), out=out, overrides=[*FAST, "train.max_steps=8"], resume=True)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "checkpoint.safetensors"}
    assert after == {k: v for k, v in before.items() if k != "checkpoint.safetensors"}


def test_a_locked_folder_is_refused_and_a_stale_lock_is_taken_over(tmp_path, corpus_file):
    out = tmp_path / "run"
    with RunLock(out):  # another process training here (the lock is per open file, as between processes)
        with pytest.raises(GenlabError, match=rf"is in use: another genlab process is training in it \(pid {os.getpid()}"):
            genlab.train("gpt", str(corpus_file), out=out, overrides=FAST)
    # a lock file left by a killed process holds no lock: the next run takes it over
    (out / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": "yesterday"}))
    (out / ".checkpoint.safetensors.x1y2.tmp").write_bytes(b"half a checkpoint")
    run = genlab.train("gpt", str(corpus_file), out=out, overrides=FAST)
    assert run.summary()["steps"] == 6
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()


# -- run folders are untrusted input --------------------------------------------------------------------------------
@pytest.fixture
def copied_run(tmp_path, trained_run):
    path = tmp_path / "copy"
    shutil.copytree(trained_run.path, path)
    return path


def _edit_tensors(path, edit):
    tensors = load_file(path / "model.safetensors")
    edit(tensors)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.pop(next(iter(t))), "lacks 1 tensor"),
    (lambda t: t.update({k: torch.zeros(3, 3) for k in [next(iter(t))]}), "has shape"),
    (lambda t: [v.fill_(math.nan) for v in t.values()], "hold NaN or infinite values"),
])
def test_damaged_weights_are_refused(copied_run, damage, message):
    _edit_tensors(copied_run, damage)
    with pytest.raises(GenlabError, match=message):
        genlab.load(copied_run)


def test_edited_vocabulary_and_tokenizer_are_refused(copied_run):
    meta = json.loads((copied_run / "data" / "meta.json").read_text())
    (copied_run / "data" / "meta.json").write_text(json.dumps({**meta, "vocab_size": 50_000_000}))
    with pytest.raises(GenlabError, match="differs from the tokenizer's"):
        genlab.load(copied_run)


def test_token_ids_outside_the_vocabulary_are_refused(copied_run):
    import numpy as np

    val = copied_run / "data" / "val.bin"
    ids = np.fromfile(val, dtype=np.uint16)
    ids[5] = 60000  # an edited token file
    ids.tofile(val)
    with pytest.raises(GenlabError, match="val.bin holds token 60000, outside the vocabulary"):
        genlab.load(copied_run).evaluate(save=False)


def test_wrong_types_in_run_files_are_named(copied_run):
    text = (copied_run / "config.toml").read_text().replace('family = "gpt"', "family = 3")
    (copied_run / "config.toml").write_text(text)
    with pytest.raises(GenlabError, match=r"config.toml: family = 3 is not a string"):
        genlab.load(copied_run)
    (copied_run / "config.toml").write_text(text.replace("family = 3", 'family = "gpt"').replace(
        "max_steps = 200", 'max_steps = "many"'))
    with pytest.raises(GenlabError, match="train.max_steps = 'many' is not an integer"):
        genlab.load(copied_run)
    assert genlab.list_runs(copied_run)[0]["max_steps"] is None  # `genlab runs` lists it all the same


@pytest.mark.parametrize("record, text", [
    ("summary.json", '{"steps": "a", "elapsed_s": "b", "val_loss": "c", "best_val_loss": [1], "n_params": "q"}'),
    ("energy.json", '{"sessions": [{"status": 3, "steps": "x"}], "total": "z"}'),
])
def test_a_damaged_record_is_named_when_the_card_is_made(copied_run, record, text):
    from genlab.responsible.card import render_card

    (copied_run / record).write_text(text)
    with pytest.raises(GenlabError, match=f"{record} does not hold what genlab writes"):
        render_card(copied_run)


@pytest.mark.parametrize("entry", ["samples", "model.safetensors"])
def test_links_out_of_the_run_folder_are_not_followed(copied_run, tmp_path, entry):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = copied_run / entry
    if target.is_dir():
        shutil.rmtree(target)
    else:
        shutil.copy(target, outside / entry)
        target.unlink()
    target.symlink_to(outside / entry if entry.endswith(".safetensors") else outside)
    with pytest.raises(GenlabError, match=f"{entry} is a link to .*outside the run folder"):
        genlab.load(copied_run)


def test_sampling_sizes_are_bounded_before_allocation(trained_run):
    with pytest.raises(GenlabError, match=r"generating 5000 x 10000000 tokens needs about 400.2 GB"):
        trained_run.sample(5000, max_new_tokens=10_000_000, watermark=False)


def _png_declaring(width, height):
    """A valid, tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_an_image_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    from genlab.data.images import images_from_folder
    from genlab.sample.images import load_image

    bomb = tmp_path / "imgs" / "bomb.png"
    bomb.parent.mkdir()
    bomb.write_bytes(_png_declaring(30000, 30000))
    assert len(bomb.read_bytes()) < 200
    for read in (load_image, images_from_folder):  # one image; a folder to train on
        with pytest.raises(GenlabError, match=r"declares .*900000000 pixels.*up to 64 M pixels"):
            read(bomb if read is load_image else bomb.parent)
    big = tmp_path / "big.png"
    big.write_bytes(_png_declaring(9000, 9000))  # over genlab's bound, under Pillow's
    with pytest.raises(GenlabError, match="declares 9000 x 9000 pixels"):
        load_image(big)


# -- messages are plain text ----------------------------------------------------------------------------------------
def test_messages_keep_brackets(tmp_path):
    odd = tmp_path / "my[bold]run"
    r = subprocess.run([sys.executable, "-m", "genlab.cli", "sample", str(odd)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {odd} is not a genlab run (no config.toml); see " \
                                                       "`genlab runs`"
    r = subprocess.run([sys.executable, "-m", "genlab.cli", "train", "gpt", "--data", "shakespeare", "--out",
                        str(odd), "--set", "train.beta1=1.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: [train] train.beta1 must be in [0, 1), got 1.5"


# -- secrets --------------------------------------------------------------------------------------------------------
def test_no_secret_leaves_its_file(trained_run, tmp_path):
    # Setup: the signing key and the run's watermark key; signed outputs, an export and a card
    from genlab.responsible.keys import KEY_FILE, ensure_identity

    identity, _ = ensure_identity()
    pem = (identity.folder / KEY_FILE).read_text()
    key_body = "".join(line for line in pem.splitlines() if "PRIVATE KEY" not in line)
    text_key = str(json.loads((trained_run.path / "release.json").read_text())["text_key"])
    trained_run.sample(2, seed=1, max_new_tokens=20).save(tmp_path / "texts", sign=True)
    trained_run.export(tmp_path / "export")
    trained_run.write_card()
    # Run: scan every file made, except the one the watermark key lives in
    scanned = [p for root in (tmp_path / "texts", tmp_path / "export", trained_run.path) for p in root.rglob("*")
               if p.is_file() and p.name != "release.json"]
    leaks = [p for p in scanned if key_body[:40].encode() in p.read_bytes() or
             (p.suffix in (".md", ".json", ".jsonl", ".txt", ".toml") and
              re.search(rf"\b{text_key}\b", p.read_text(errors="replace")))]
    # Assert: neither key is in any of them
    assert len(scanned) > 20 and not leaks, leaks
