"""The fault harness: real `genlab train` processes killed at random moments, stopped by SIGINT and SIGTERM mid-step,
and racing for one folder. Every resumed run must end bit-identical to one that was never interrupted."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from genlab.responsible.energy_record import KILLED
from genlab.train.checkpoint import checkpoint_step

STEPS = 40
ARGS = ["--set", "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.n_embd=32", "--set",
        "model.block_size=32", "--set", "train.batch_size=8", "--set", "train.warmup_steps=5", "--set",
        "train.precision=fp32", "--set", "train.threads=1", "--set", "train.eval_every=20", "--set",
        "train.eval_batches=1", "--set", "train.log_every=1", "--set", "train.checkpoint_every=4", "--set",
        f"train.max_steps={STEPS}"]


def start(corpus, out, *extra, seed=1):
    cmd = [sys.executable, "-m", "genlab.cli", "train", "gpt", "--data", str(corpus), "--out", str(out), "--seed",
           str(seed), *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def last_step(out):
    """The last step metrics.jsonl shows (0 before training writes it)."""
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return max((json.loads(line).get("step", 0) for line in lines if line.endswith("}")), default=0)
    except (OSError, ValueError):
        return 0


def wait_for_step(proc, out, step, timeout=240):
    t0 = time.monotonic()
    while proc.poll() is None and last_step(out) < step and time.monotonic() - t0 < timeout:
        time.sleep(0.01)


def state(out):
    """Every tensor a run ends with: its weights and its checkpoint (weights, AdamW moments, RNG streams)."""
    return {**{f"model/{k}": v for k, v in load_file(out / "model.safetensors").items()},
            **{f"ckpt/{k}": v for k, v in load_file(out / "checkpoint.safetensors").items()}}


def assert_identical(a, b):
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("faults") / "straight"
    proc = start(corpus_file, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return state(out)


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, corpus_file, reference):
    # Setup: kill targets drawn from a seeded stream: one during start-up, one before the first checkpoint, then
    # anywhere in training (a kill may land mid-checkpoint: checkpoints come every 4 steps)
    rng = random.Random(int(os.environ.get("GENLAB_FAULT_SEED", 2026)))  # other seeds: other moments
    out = tmp_path / "killed"
    targets = [None, rng.randint(1, 3), *sorted(rng.sample(range(5, STEPS - 2), 3))]
    kills = 0
    # Run: kill, then continue the way the CLI says: --resume once the folder holds a run, else train again
    for target in targets:
        proc = start(corpus_file, out, *(["--resume"] if (out / "config.toml").exists() else []))
        if target is None:
            time.sleep(rng.uniform(1.0, 3.0))  # importing, preparing data or building: wherever it is
        else:
            wait_for_step(proc, out, target)
            time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
    proc = start(corpus_file, out, *(["--resume"] if (out / "config.toml").exists() else []))
    _, err = proc.communicate(timeout=300)
    # Assert: it finished, bit-identical to the run never killed; no temporary file is left; every session is on record
    assert proc.returncode == 0, err
    assert kills >= 4
    assert_identical(state(out), reference)
    assert not list(out.rglob(".*.tmp"))
    sessions = json.loads((out / "energy.json").read_text())["sessions"]
    assert sessions[-1]["status"] == "completed" and sessions[-1]["last_step"] == STEPS
    assert len(sessions) >= 3 and all(s["status"] in ("completed", KILLED) for s in sessions)


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "stopped by SIGTERM")])
def test_a_signal_mid_step_checkpoints_exactly_then_resumes_bit_identical(tmp_path, corpus_file, reference, sig,
                                                                         code, said):
    out = tmp_path / "stopped"
    proc = start(corpus_file, out)
    wait_for_step(proc, out, 10)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    step = checkpoint_step(out / "checkpoint.safetensors")
    assert f"{said}: a checkpoint at step {step} is saved; continue with" in err and "mid-step" not in err
    assert "Traceback" not in err
    resumed = start(corpus_file, out, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_identical(state(out), reference)


def test_two_trainers_racing_for_one_folder(tmp_path, corpus_file):
    out = tmp_path / "raced"
    a, b = start(corpus_file, out, seed=1), start(corpus_file, out, seed=2)
    results = [(p.communicate(timeout=300)[1], p.returncode) for p in (a, b)]
    codes = sorted(code for _, code in results)
    assert codes == [0, 2], results
    loser = next(err for err, code in results if code == 2)
    assert loser.count("\n") == 1 and ("is in use: another genlab process is training in it" in loser
                                       or "already exists and is not empty" in loser), loser
    winner_seed = 1 if a.returncode == 0 else 2
    assert f"seed = {winner_seed}\n" in (out / "config.toml").read_text()
    train_lines = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "train_loss" in r]
    assert [r["step"] for r in train_lines] == list(range(1, STEPS + 1))  # one loss series, not two
