"""What a new user meets in the first hour, each found by trying genlab as one would: hints that work, Ctrl-C that
says how to go on, output written as it is, help that shows every word, --json listings, settings documented,
partial evaluations kept apart, a model card that says what was used, verify giving each file its verdict."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

import genlab
from genlab import registry
from genlab.usage import commands


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_every_hint_after_training_is_a_command_that_works(trained_run):
    # Setup: what `genlab train` prints after a gpt run, and what it would print for the other families
    hints = commands(type(trained_run.model), trained_run.modality, str(trained_run.path))
    # Run / Assert: each one runs, on this run (gpt: sample with a prompt, eval)
    assert [h.split()[1] for h in hints] == ["sample", "eval"]
    for hint in hints:
        r = cli(*shlex.split(hint)[1:], "--max-tokens" if " eval " in f" {hint} " else "--max-new-tokens", 20)
        assert r.returncode == 0, (hint, r.stderr)
    # a family that does not generate is pointed to its own verbs, a pairs run to the source it needs
    bert, t5 = registry.get_family("bert"), registry.get_family("t5")
    assert commands(bert, registry.get_modality("text"), "RUN")[0].startswith("genlab fill RUN '")
    assert commands(t5, registry.get_modality("pairs"), "RUN")[0].startswith("genlab sample RUN --source")


def test_ctrl_c_checkpoints_and_prints_the_command_that_resumes(tmp_path, corpus_file):
    # Setup: a long training in a real process
    args = ["train", "gpt", "--data", corpus_file, "--out", tmp_path / "r", "--max-steps", "100000",
            "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.block_size=16",
            "--set", "train.checkpoint_every=5", "--set", "release.track_energy=false", "--set", "train.threads=1"]
    proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "r" / "checkpoint.safetensors").exists() and time.time() < deadline:
        time.sleep(0.2)
    # Run: Ctrl-C
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    # Assert: exit 130, and the printed command continues the run
    assert proc.returncode == 130, stderr
    import re

    step = int(re.search(r"a checkpoint at step (\d+) is saved", stderr).group(1))
    line = next(ln.strip() for ln in stderr.splitlines() if ln.strip().startswith("genlab train"))
    assert "--resume" in line and "Traceback" not in stderr
    again = cli(*shlex.split(line)[1:], "--max-steps", step + 5)
    assert again.returncode == 0, again.stderr
    assert genlab.load(tmp_path / "r").summary()["steps"] == step + 5


def test_text_output_is_written_as_generated(trained_run, tmp_path):
    # the terminal (or a pipe) gets exactly the texts the files get, whether one is streamed or several listed
    one = cli("sample", trained_run.path, "--prompt", "HAMLET:", "--max-new-tokens", 200, "--seed", 1)
    many = cli("sample", trained_run.path, "--prompt", "HAMLET:", "--max-new-tokens", 200, "--seed", 1, "--n", 2)
    cli("sample", trained_run.path, "--prompt", "HAMLET:", "--max-new-tokens", 200, "--seed", 1, "--out", tmp_path / "a")
    cli("sample", trained_run.path, "--prompt", "HAMLET:", "--max-new-tokens", 200, "--seed", 1, "--n", 2,
        "--out", tmp_path / "b")
    assert one.returncode == many.returncode == 0
    assert one.stdout == (tmp_path / "a" / "sample-0000.txt").read_text() + "\n"
    for f in sorted((tmp_path / "b").glob("*.txt")):
        assert f.read_text() + "\n" in many.stdout
    as_json = json.loads(cli("sample", trained_run.path, "--n", 2, "--max-new-tokens", 5, "--json").stdout)
    assert [s["title"] for s in as_json] == ["sample 1", "sample 2"]


def test_listings_are_json_and_tables_keep_identifiers_whole(trained_run, tmp_path):
    # Setup: a run whose folder name is longer than a terminal line
    import shutil

    long = tmp_path / ("a-run-with-a-name-longer-than-any-terminal-line-" * 2)
    shutil.copytree(trained_run.path, long)
    # Run
    table = cli("runs", tmp_path)
    listed = json.loads(cli("runs", tmp_path, "--json").stdout)
    data = json.loads(cli("data", "list", "--json").stdout)
    # Assert
    assert str(long) in table.stdout and listed[0]["run"] == str(long)
    assert {d["name"] for d in data} >= {"shakespeare", "mnist", "pycode-docstrings"}


def test_help_version_and_settings():
    # -h shows help words written in brackets; --version answers; config show documents every key
    h = cli("train", "-h")
    version = cli("--version")
    settings = json.loads(cli("config", "show", "gpt", "--json").stdout)
    shipped = cli("config", "list")
    assert h.returncode == 0 and "[model], [data]," in h.stdout and "[train]" in h.stdout
    assert version.returncode == 0 and version.stdout.startswith("genlab ")
    n_embd = next(s for s in settings if s["name"] == "n_embd")
    assert n_embd == {"section": "model", "name": "n_embd", "type": "int", "default": 128,
                      "comment": "width of the residual stream"}
    assert {s["section"] for s in settings} == {"model", "data", "train", "release"}
    assert all(s["comment"] for s in settings) and "shakespeare-char" in shipped.stdout


def test_training_flags_and_shipped_configs(tmp_path, corpus_file):
    r = cli("train", "gpt", "--data", corpus_file, "--out", tmp_path / "r", "--max-steps", 3, "--seed", 7,
            "--precision", "fp32", "--config", "demo", "--set", "model.n_layer=1", "--set", "model.block_size=16",
            "--set", "release.track_energy=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    config = genlab.load(tmp_path / "r").config
    assert (config.train.max_steps, config.train.seed, config.train.precision, config.model.n_embd) == (3, 7, "fp32",
                                                                                                       128)


def test_a_partial_evaluation_never_replaces_the_full_one(trained_run):
    # Run
    full = trained_run.evaluate()
    partial = trained_run.evaluate(max_tokens=300)
    # Assert: eval.json keeps the full figures; the partial ones are kept apart and say so
    assert "partial" not in full and partial["partial"].startswith("the first 300 of")
    assert json.loads((trained_run.path / "eval.json").read_text())["tokens"] == full["tokens"]
    assert json.loads((trained_run.path / "eval.partial.json").read_text())["tokens"] < full["tokens"]
    card = (trained_run.path / "README.md").read_text()
    assert "(`eval.json`)" in card and "vocab_size | 4096 (not used by the char tokenizer" in card
    assert "license: unknown" in card and "## How to use" in card and "## Citation" in card


def test_verify_gives_each_file_its_verdict(trained_run, tmp_path):
    # Setup: a signed text, a truncated copy of it (signature kept), a missing file, and a human text wearing a copied
    # sidecar
    folder = trained_run.sample(1, prompt="HAMLET:", max_new_tokens=80, seed=2).save(tmp_path / "s")
    good = folder / "sample-0000.txt"
    cut = tmp_path / "cut.txt"
    cut.write_text(good.read_text()[:20])
    (tmp_path / "cut.txt.c2pa").write_bytes((folder / "sample-0000.txt.c2pa").read_bytes())
    human = tmp_path / "human.txt"
    human.write_text("There is a willow grows aslant a brook, that shows his hoar leaves in the glassy stream. " * 3)
    (tmp_path / "human.txt.c2pa").write_bytes((folder / "sample-0000.txt.c2pa").read_bytes())
    # Run
    r = cli("verify", good, cut, tmp_path / "missing.txt", human, "--run", trained_run.path, "--json")
    # Assert: four verdicts; only the untouched file is trusted; a mark not found names no run
    verdicts = json.loads(r.stdout)
    assert r.returncode == 1 and [v["signature"] for v in verdicts] == ["trusted", "tampered", "unreadable", "tampered"]
    assert verdicts[3]["watermark"]["found"] is False and verdicts[3]["watermark"]["matches_manifest"] is None


@pytest.mark.parametrize("on", [False, True])
def test_progress_is_drawn_only_when_asked(on, capsys):
    from genlab import progress

    with progress.shown(on), progress.task("counting", total=3) as advance:
        for _ in range(3):
            advance()
    with progress.shown(on), progress.task("one step"):  # a step with no count
        pass
    err = capsys.readouterr().err
    assert ("counting" in err) == on
    if on:  # off a terminal: one line per task, its count when it has one
        assert re.search(r"^counting: 3/3 in \d+\.\d s$", err, re.M)
        assert re.search(r"^one step: in \d+\.\d s$", err, re.M)


def test_tensorboard_events_beside_the_metrics(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run.path))
    events.Reload()
    assert {"loss/train_loss", "loss/val_loss", "train/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/val_loss")] == [100, 200]
