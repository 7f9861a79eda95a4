"""The family contract, checked over every registered family: a new family that breaks it fails here, with no new
test written. Each family trains on its modality's smallest real dataset (``Modality.example``) with its own
smallest settings (``Family.example``)."""

from __future__ import annotations

import pytest

import genlab
from genlab import registry
from genlab.modalities.base import Outputs
from genlab.responsible.verify import verify
from genlab.train.loop import Trainer

BUDGET = ["train.max_steps=40", "train.eval_every=40", "train.eval_batches=4", "train.checkpoint_every=40",
          "release.track_energy=false", "train.precision=fp32"]


def example_options(modality) -> dict:
    """The sampling options that always work (a prompt, a source), from the modality's own schema."""
    return {o.name: [o.example] if o.type is list else o.example for o in modality.sample_options if o.example}


def untrained_loss(run: genlab.Run) -> float:
    """The validation loss of the same network freshly built (same seed, no training), on the loop's batches."""
    fresh = type(run.model)(run.config.model, parent=run.model.parent)  # a tuned family starts from its parent
    fresh.build(run.data, seed=run.config.train.seed)
    return Trainer(fresh, run.data, run.config.train, progress=False).validate()


@pytest.mark.parametrize("name", sorted(registry.FAMILIES))
def test_family_contract(name, tmp_path, one_thread):
    # Setup: the family on its modality's example data, with its smallest settings
    family_cls = registry.get_family(name)
    modality = registry.get_modality(family_cls.modality)
    data = modality.example(tmp_path / "data")

    parent = None
    if family_cls.uses_parent:  # a family that builds on a run (lora tunes a gpt): the smallest gpt run first
        gpt = registry.get_family("gpt")
        parent = genlab.train("gpt", data, out=tmp_path / "parent", overrides=[*gpt.example["set"], *BUDGET]).path

    # Run
    run = genlab.train(name, data, out=tmp_path / "run", overrides=[*family_cls.example.get("set", ()), *BUDGET],
                       parent=parent)
    again = genlab.load(run.path)

    # Assert 1: training lowered the validation loss (a family without gradient steps: a finite loss)
    trained = Trainer(run.model, run.data, run.config.train, progress=False).validate()
    assert trained < float("inf")
    if family_cls.iterative:
        assert trained < untrained_loss(run), f"{name}: {run.config.train.max_steps} steps did not lower the loss"
    # Assert 2: the saved weights load back exactly
    assert Trainer(again.model, again.data, again.config.train, progress=False).validate() == trained
    if not family_cls.generates:
        with pytest.raises(genlab.GenlabError):
            run.sample(1)
        return
    # Assert 3: sampling returns the declared modality's outputs, the same from the loaded run for the same seed
    options = example_options(modality)
    outputs = run.sample(1, seed=3, **options)
    assert isinstance(outputs, Outputs) and outputs.modality == family_cls.modality
    assert list(outputs.files("s")) == list(again.sample(1, seed=3, **options).files("s"))
    # Assert 4: saved outputs are files that `genlab verify` trusts, naming this run
    folder = outputs.save(tmp_path / "out")
    files = sorted(p for p in folder.iterdir() if p.suffix != ".c2pa")
    assert files
    for f in files:
        verdict = verify(f, runs=tmp_path)
        if not f.stat().st_size:  # an empty output (the model ended at once) has nothing C2PA can sign
            assert verdict.provenance.status == "unsigned"
            continue
        assert verdict.provenance.status == "trusted", (f, verdict.provenance.failures)
        assert verdict.provenance.generation["run_id"] == run.release.identity.run_id
