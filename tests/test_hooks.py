"""The training loop's hooks, each used by a small family written here the way a later one would be: events that
callbacks subscribe to, a family's own optimizer and network wrapper, a frozen teacher from a parent run (with the
lineage on the card), keeping the best validation point, and only the main process writing."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, StopAt
from safetensors import safe_open

import genlab
from genlab import config as cfgmod
from genlab import registry
from genlab.models.gpt import GPT
from genlab.runfiles import CHECKPOINT_FILE, LINEAGE_FILE, MODEL_FILE, read_metrics
from genlab.train.hooks import Callback
from genlab.train import loop as train_loop
from genlab.train.loop import Trainer

QUICK = [*TINY, "train.max_steps=12", "train.eval_every=6", "train.checkpoint_every=6", "release.track_energy=false"]


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_start(self, trainer) -> None:
        self.events.append(("start", trainer.start_step))
        self.optimizers = trainer.optimizers

    def on_step_end(self, trainer, step, logs) -> None:
        self.events.append(("step", step))

    def on_validation(self, trainer, step, val_loss) -> None:
        self.events.append(("validation", step))

    def on_checkpoint(self, trainer, step) -> None:
        self.events.append(("checkpoint", step))

    def on_train_end(self, trainer, status, summary) -> None:
        self.events.append(("end", status))


class Wrapper(torch.nn.Module):
    """Stands in for DistributedDataParallel or Opacus' GradSampleModule: the network is its ``module``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


class SGDWrapped(GPT):
    """A gpt trained by its own optimizer (SGD with momentum) through a wrapped network."""

    name = "test-sgd"

    def optimizers(self, train, device):
        return {"model": torch.optim.SGD(self.networks_["model"].parameters(), lr=0.5, momentum=0.9)}

    def wrap(self, name, net):
        return Wrapper(net)


class Student(GPT):
    """A gpt distilled from its parent run's gpt: the teacher is frozen, used and never saved."""

    name = "test-student"
    uses_parent = True
    parent_relation = "distilled from"

    def build(self, data, *, seed):
        super().build(data, seed=seed)
        if self.parent is not None:  # needed to train; a trained student samples without it
            self.frozen_ = {"teacher": self.parent.model.model_}

    def loss(self, batch):
        x, _ = batch  # (B, T)
        student = self.model_(input_ids=x).logits.float().log_softmax(-1)  # (B, T, V)
        with torch.no_grad():
            teacher = self.frozen_["teacher"](input_ids=x).logits.float().log_softmax(-1)
        return F.kl_div(student.flatten(0, 1), teacher.flatten(0, 1), log_target=True, reduction="batchmean")


@pytest.fixture
def families(monkeypatch):
    for cls in (SGDWrapped, Student):
        monkeypatch.setitem(registry.FAMILIES, cls.name, f"{__name__}:{cls.__name__}")


def test_events_in_order_and_the_status_of_each_session(tmp_path, corpus_file, one_thread):
    # Run: 12 steps stopped at 8 as Ctrl-C would, then resumed
    first, second = Recorder(), Recorder()
    with pytest.raises(KeyboardInterrupt):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=QUICK, callbacks=[first, StopAt(8)])
    genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=QUICK, callbacks=[second], resume=True)
    # Assert
    assert first.events[:8] == [("start", 0), ("step", 1), ("step", 2), ("step", 3), ("step", 4), ("step", 5),
                                ("validation", 6), ("checkpoint", 6)]
    assert first.events[-3:] == [("step", 8), ("checkpoint", 8), ("end", "interrupted")]  # Ctrl-C checkpoints
    assert second.events[0] == ("start", 8) and second.events[-4:] == [("validation", 12), ("checkpoint", 12),
                                                                       ("step", 12), ("end", "completed")]


def test_own_optimizer_and_wrapper_keep_the_saved_names(tmp_path, corpus_file, families, one_thread):
    # Run
    seen = Recorder()
    run = genlab.train("test-sgd", str(corpus_file), out=tmp_path / "sgd", overrides=QUICK, callbacks=[seen])
    plain = genlab.train("gpt", str(corpus_file), out=tmp_path / "gpt", overrides=QUICK)
    # Assert: SGD stepped it, the loss fell, and the files name the inner network exactly as a plain run's do
    assert isinstance(seen.optimizers["model"], torch.optim.SGD)
    rows = read_metrics(run.path / "metrics.jsonl")
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert vals[-1] < vals[0]
    with safe_open(str(run.path / MODEL_FILE), "pt") as a, safe_open(str(plain.path / MODEL_FILE), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
    assert not isinstance(run.model.networks_["model"], Wrapper)  # unwrapped again after training
    assert genlab.load(run.path).sample(1, max_new_tokens=5, seed=1) == run.sample(1, max_new_tokens=5, seed=1)


def test_frozen_teacher_from_a_parent_run(tmp_path, trained_run, corpus_file, families, one_thread):
    # Setup: the parent's files, byte for byte
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in trained_run.path.iterdir() if p.is_file()}
    over = [*QUICK, "model.n_layer=1", "model.n_embd=32", "train.lr=1e-2"]
    # Run
    run = genlab.train("test-student", str(corpus_file), out=tmp_path / "s", overrides=over, parent=trained_run.path)
    resumed = genlab.train("test-student", str(corpus_file), out=tmp_path / "s", resume=True,
                           overrides=[*over, "train.max_steps=18"])
    # Assert: it learned from the teacher; the teacher is in neither the weights nor the checkpoint
    rows = read_metrics(run.path / "metrics.jsonl")
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert vals[-1] < vals[0]
    for name in (MODEL_FILE, CHECKPOINT_FILE):
        with safe_open(str(run.path / name), "pt") as f:
            assert not [k for k in f.keys() if "teacher" in k]
    # the lineage is recorded and shown, the parent is untouched, and a resume finds the parent again
    lineage = genlab.load(run.path).lineage
    assert lineage["run_id"] == trained_run.release.identity.run_id and lineage["relation"] == "distilled from"
    card = (run.path / "README.md").read_text()
    assert "## Lineage" in card and trained_run.release.identity.run_id in card and "base_model" in card
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in trained_run.path.iterdir()
                      if p.is_file()}
    assert resumed.summary()["steps"] == 18 and (run.path / LINEAGE_FILE).is_file()


def test_a_parent_is_refused_where_it_means_nothing(tmp_path, trained_run, corpus_file, families):
    with pytest.raises(genlab.GenlabError, match="trains from scratch; it takes no parent"):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "a", overrides=QUICK, parent=trained_run.path)
    with pytest.raises(genlab.GenlabError, match="builds on a parent run"):
        genlab.train("test-student", str(corpus_file), out=tmp_path / "b", overrides=QUICK)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


class Spoil(Callback):
    """Wrecks the weights after step ``at``, so later validations are worse than the one before it."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer, step, logs) -> None:
        if step == self.at:
            with torch.no_grad():
                for p in trainer.family.networks_["model"].parameters():
                    p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.5)


def test_keep_best_keeps_the_best_validation_point(tmp_path, corpus_file, one_thread):
    # Run: validation every 6 steps; the weights are spoiled after step 12
    over = [*QUICK, "train.max_steps=24", "train.keep_best=true"]
    run = genlab.train("gpt", str(corpus_file), out=tmp_path / "b", overrides=over, callbacks=[Spoil(12)])
    # Assert: the run's weights (in memory and on disk) are step 12's; the checkpoint keeps step 24 for resume
    vals = {r["step"]: r["val_loss"] for r in read_metrics(run.path / "metrics.jsonl") if "val_loss" in r}
    assert min(vals, key=vals.get) == 12 and vals[24] > vals[12]
    assert run.summary()["steps"] == 24
    loaded = genlab.load(run.path)
    for model in (run.model, loaded.model):
        assert Trainer(model, loaded.data, loaded.config.train, progress=False).validate() == pytest.approx(vals[12],
                                                                                                          abs=1e-5)
    with safe_open(str(run.path / CHECKPOINT_FILE), "pt") as f:
        assert f.metadata()["step"] == "24"
    assert "12 (the best validation point" in (run.path / "README.md").read_text()


def test_only_the_main_process_writes(tmp_path, corpus_file, monkeypatch, one_thread):
    # Setup: a fresh tiny gpt, and this process made a non-main rank
    family = registry.get_family("gpt")
    config = cfgmod.build("gpt", str(corpus_file), family.Config, family.data_config_class(),
                          overrides=QUICK)
    data = family.prepare_data(registry.get_modality("text").resolve(str(corpus_file)), config.data, tmp_path / "d")
    model = family(config.model)
    model.build(data, seed=0)
    monkeypatch.setattr(train_loop, "is_main", lambda: False)
    (tmp_path / "run").mkdir()
    # Run
    summary = Trainer(model, data, config.train, run_dir=tmp_path / "run", progress=False).run()
    # Assert: it trained, and wrote nothing
    assert summary["steps"] == 12 and list((tmp_path / "run").iterdir()) == []
