"""The CPU thread governor (``genlab.train.threads``): fewer threads while other processes keep the cores busy,
back up when they are idle, with hysteresis; the count restored at the end; an explicit ``train.threads`` wins."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY, torch_threads

import genlab
from genlab.train.threads import ThreadGovernor, usable_cpus


def trainer(threads: int = 0, device: str = "cpu", iterative: bool = True) -> SimpleNamespace:
    """What the governor reads of a Trainer."""
    return SimpleNamespace(config=SimpleNamespace(threads=threads), device=torch.device(device), callbacks=[],
                           family=SimpleNamespace(iterative=iterative), step=0)


class Meter:
    """Cores other processes kept busy, one reading per look (the first call only starts the interval; the next is
    the probe at train_start)."""

    def __init__(self, *readings: float) -> None:
        self.readings = [0.0, *readings]

    def __call__(self) -> float:
        return self.readings.pop(0)


@pytest.fixture
def two_threads():
    """PyTorch's default on a 2-core machine, whatever this one has; put back after."""
    with torch_threads(2):
        yield


def test_follows_the_free_cores_with_hysteresis_and_restores(two_threads):
    gov = ThreadGovernor(probe_s=0, every_s=0, meter=Meter(1.2, 0.05, 0.4, 1.2, 0.4, 0.1), cpus=2)
    t = trainer()
    gov.on_train_start(t)
    assert gov.active and torch.get_num_threads() == 1  # a core taken when training starts: one thread
    seen = []
    for step in range(1, 6):
        gov.on_step_end(t, step, {})
        seen.append(torch.get_num_threads())
    # idle -> 2; a little load keeps 2; a core taken -> 1; a little load keeps 1; idle again -> 2
    assert seen == [2, 2, 1, 1, 2]
    assert [h[3] for h in gov.history] == [1, *seen]
    torch.set_num_threads(1)
    gov.on_train_end(t, "completed", {})
    assert torch.get_num_threads() == 2


def test_all_threads_from_the_first_step_when_idle_never_above_nor_below_one(two_threads):
    gov = ThreadGovernor(probe_s=0, every_s=0, meter=Meter(0.0, 15.9), cpus=16)  # 16 cores, 2 threads to start
    gov.on_train_start(trainer())
    assert torch.get_num_threads() == 2 and gov.history == [(0, 0.0, 16.0, 2)]
    assert gov.look() == 1


def test_lowers_when_other_processes_keep_the_cores_busy(two_threads):
    cpus = usable_cpus() or []
    if len(cpus) < 2:
        pytest.skip("needs at least 2 CPUs")
    gov = ThreadGovernor(probe_s=0.1, every_s=0)  # the real meter: this machine's CPU times
    t = trainer()
    gov.on_train_start(t)
    assert gov.active
    torch.set_num_threads(gov.max)  # as if an idle machine had let it up to all its threads
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(gov.cpus)]
    try:
        time.sleep(0.5)  # the children are running
        gov.meter()  # a fresh interval, only while they run
        time.sleep(1.5)
        gov.on_step_end(t, 1, {})
    finally:
        for p in busy:
            p.kill()
        for p in busy:
            p.wait()
    step, others, free, threads = gov.history[-1]
    assert others > 0.5 * gov.cpus, gov.history
    assert threads == 1 and torch.get_num_threads() == 1
    gov.on_train_end(t, "completed", {})
    assert torch.get_num_threads() == 2


def test_explicit_threads_win(two_threads):
    for fixed in (1, 3):
        gov = ThreadGovernor(probe_s=0, every_s=0, meter=Meter(*[0.0] * 5), cpus=2)
        t = trainer(threads=fixed)
        gov.on_train_start(t)
        for step in range(1, 4):
            gov.on_step_end(t, step, {})
            assert torch.get_num_threads() == fixed
        assert not gov.active and gov.history == []
        gov.on_train_end(t, "completed", {})
        assert torch.get_num_threads() == 2


def test_stays_out_on_one_thread_on_a_gpu_for_a_solved_family_and_when_doubled(two_threads):
    torch.set_num_threads(1)  # the caller chose one thread (as tests' one_thread fixture does): nothing to lower
    gov = ThreadGovernor(meter=Meter(), cpus=2)
    gov.on_train_start(trainer())
    assert not gov.active and torch.get_num_threads() == 1
    torch.set_num_threads(2)
    gov = ThreadGovernor(meter=Meter(), cpus=2)
    gov.on_train_start(trainer(device="cuda"))
    assert not gov.active and torch.get_num_threads() == 2
    gov = ThreadGovernor(meter=Meter(), cpus=2)
    gov.on_train_start(trainer(iterative=False))  # fitted at once (Family.solve): PyTorch's default throughout
    assert not gov.active and torch.get_num_threads() == 2
    first, second = (ThreadGovernor(probe_s=0, meter=Meter(0.0), cpus=2) for _ in range(2))
    t = trainer()
    t.callbacks = [first, second]
    first.on_train_start(t)
    second.on_train_start(t)
    assert first.active and not second.active
    torch.set_num_threads(1)
    first.on_train_end(t, "completed", {})
    second.on_train_end(t, "completed", {})
    assert torch.get_num_threads() == 2  # the count before training, whichever governor ends last


def test_train_threads_wins_in_the_training_loop(tmp_path, corpus_file, two_threads):
    seen = []
    genlab.train("gpt", str(corpus_file), out=tmp_path / "run",
                 overrides=[*TINY, "train.max_steps=4", "train.eval_batches=1", "train.threads=1",
                            "release.track_energy=false"],
                 callbacks=[ThreadGovernor(probe_s=0, every_s=0, meter=Meter(*[0.0] * 10), cpus=2),
                            lambda trainer, step, logs: seen.append(torch.get_num_threads())])
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2  # put back after training
