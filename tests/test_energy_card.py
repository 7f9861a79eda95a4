"""Energy and compute accounting (RUN/energy.json) and the model card (RUN/README.md)."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from conftest import TINY, StopAt

import genlab
from genlab import config as cfgmod
from genlab.errors import GenlabError
from genlab.models import get_family
from genlab.numbers import fmt
from genlab.responsible import card as cardmod
from genlab.responsible.country import WORLD, _zone_tables, country_code
from genlab.registry import get_modality
from genlab.responsible.energy import EnergyMeter
from genlab.responsible.energy_record import read_energy
from genlab.responsible.flops import flops_per_step

yaml = pytest.importorskip("yaml")  # PyYAML comes with transformers



def test_country_auto_is_a_three_letter_code(monkeypatch):
    code = country_code("auto")
    assert len(code) == 3 and code.isalpha() and code.isupper()
    monkeypatch.setenv("TZ", "Etc/UTC")  # no country: the world average, not some country's mix
    assert country_code("auto") == WORLD
    if _zone_tables()["zones"]:  # the tz database's zone.tab is on this machine (system or the tzdata package)
        monkeypatch.setenv("TZ", "Europe/Paris")
        assert country_code("auto") == "FRA"
        monkeypatch.setenv("TZ", "US/Eastern")  # an alias, resolved through the tz database's links
        assert country_code("auto") == "USA"


@pytest.mark.parametrize("bad", ["XYZ", "FR", "France"])
def test_unknown_country_is_an_error_naming_the_setting(bad):
    pytest.importorskip("codecarbon")
    with pytest.raises(GenlabError, match=f"release.country = '{bad}'"):
        country_code(bad)
    assert country_code("fra") == "FRA"


def test_meter_records_a_short_workload_and_writes_nothing_here(tmp_path, monkeypatch):
    pytest.importorskip("codecarbon")
    monkeypatch.chdir(tmp_path)
    a = torch.randn(256, 256)
    with EnergyMeter("USA") as meter:
        for _ in range(200):
            a = torch.tanh(a @ a)
    r = meter.result
    assert r["error"] is None, r["error"]
    assert r["duration_s"] > 0
    assert r["energy_kwh"]["total"] >= 0 and r["emissions_kg_co2eq"] >= 0
    assert r["country"] == "USA" and r["codecarbon_version"]
    assert r["power_method"]["cpu"]  # "RAPL (measured)" or a TDP estimate, whichever CodeCarbon used
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no .codecarbon.config, no lock file


def test_meter_without_codecarbon_records_why_and_does_not_raise(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # import codecarbon now fails
    with EnergyMeter("USA") as meter:
        pass
    assert meter.result["energy_kwh"] is None and meter.result["duration_s"] >= 0
    assert "not installed" in meter.result["error"]


def _tiny_gpt(tmp_path, corpus_file):
    family_cls = get_family("gpt")
    config = cfgmod.build("gpt", str(corpus_file), family_cls.Config, family_cls.data_config_class(),
                          base={"train": dict(family_cls.train_defaults)}, overrides=TINY)
    data = family_cls.prepare_data(get_modality("text").resolve(str(corpus_file)), config.data, tmp_path / "data")
    model = family_cls(config.model)
    model.build(data, seed=0)
    return model, data, config


def test_flops_per_step_matches_the_6n_estimate_and_changes_nothing(tmp_path, corpus_file):
    model, data, config = _tiny_gpt(tmp_path, corpus_file)
    net = model.model_
    before = [p.detach().clone() for p in net.parameters()]
    rng = torch.get_rng_state()
    flops = flops_per_step(model, data, config.train)
    # 6 N per token for the matrix products (N counts the tied output layer once, position embeddings not at all),
    # plus attention: QK^T and AV, 2 T d multiply-adds each per token and layer, times 3 for the backward
    n_matmul = sum(p.numel() for p in net.parameters() if p.dim() == 2) - net.transformer.wpe.weight.numel()
    c, t = model.config, model.config.block_size
    tokens = config.train.batch_size * t
    estimate = tokens * (6 * n_matmul + 12 * c.n_layer * t * c.n_embd)
    assert abs(flops - estimate) / estimate < 0.1, (flops, estimate)  # measured here: +1.2%
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert all(p.grad is None for p in net.parameters())


def test_tracking_leaves_training_bit_identical(tmp_path):
    # A GAN: batch-norm statistics, a phase that freezes D's requires_grad, an EMA copy, and global-RNG noise
    over = ["model.z_dim=16", "model.width=8", "model.embed_dim=8", "train.batch_size=32", "train.eval_batches=1",
            "train.precision=fp32", "train.max_steps=3", "train.log_every=1", "train.threads=1"]  # fixed rounding
    runs = [genlab.train("gan", "digits", out=tmp_path / track, overrides=over + [f"release.track_energy={track}"])
            for track in ("true", "false")]
    assert (runs[0].path / "energy.json").exists() and not (runs[1].path / "energy.json").exists()
    assert read_energy(runs[0].path)["flops_per_step"] > 0
    for name, net in runs[0].model.networks_.items():
        for a, b in zip(net.state_dict().values(), runs[1].model.networks_[name].state_dict().values()):
            assert torch.equal(a, b), name


def test_each_session_is_recorded_and_a_resume_appends_one(tmp_path, corpus_file):
    over = TINY + ["train.max_steps=20", "train.eval_every=0", "train.eval_batches=1"]
    with pytest.raises(KeyboardInterrupt):
        genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=over, callbacks=[StopAt(8)])
    first = read_energy(tmp_path / "r")
    assert [s["status"] for s in first["sessions"]] == ["interrupted"]  # a Ctrl-C'd session is still recorded
    genlab.train("gpt", str(corpus_file), out=tmp_path / "r", overrides=over, resume=True)
    energy = read_energy(tmp_path / "r")
    a, b = energy["sessions"]
    assert (a["first_step"], a["last_step"], b["first_step"], b["last_step"]) == (0, 8, 8, 20)
    assert b["status"] == "completed"
    assert energy["total"]["sessions"] == 2 and energy["total"]["steps"] == 20
    assert energy["train_flops"] == pytest.approx(20 * energy["flops_per_step"])
    assert energy["achieved_flops_per_s"] > 0
    if all(s["energy_kwh"] for s in (a, b)):
        assert energy["total"]["energy_kwh"]["total"] == pytest.approx(
            a["energy_kwh"]["total"] + b["energy_kwh"]["total"], rel=1e-3)


def test_tracking_off_records_nothing(tmp_path, corpus_file):
    run = genlab.train("gpt", str(corpus_file), out=tmp_path / "r",
                       overrides=TINY + ["train.max_steps=2", "train.eval_batches=1", "release.track_energy=false"])
    assert not (run.path / "energy.json").exists()
    assert "release.track_energy = false" in (run.path / "README.md").read_text()


def _front_matter(text):
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_card_of_a_trained_run_holds_its_measured_figures(trained_run):
    text = cardmod.render_card(trained_run.path)
    meta, body = _front_matter(text)
    summary = json.loads((trained_run.path / "summary.json").read_text())
    energy = read_energy(trained_run.path)
    # front matter: the Hub's keys
    assert meta["library_name"] == "genlab"
    assert {"gpt", "text", "genlab"} <= set(meta["tags"])
    assert meta["datasets"] == ["hamlet.txt"]  # the file's name, never its local path
    if energy["total"]["emissions_kg_co2eq"] is not None:
        co2 = meta["co2_eq_emissions"]
        assert co2["source"] == "CodeCarbon (offline)" and co2["training_type"] == "pre-training"
        assert co2["emissions"] == pytest.approx(energy["total"]["emissions_kg_co2eq"] * 1000, rel=1e-3)
    # body: the figures the run measured
    assert "| steps | 200 of 200 |" in body
    assert fmt(summary["best_val_loss"]) in body
    assert f"{summary['n_params']:,}" in body
    if energy["total"]["energy_kwh"]:
        assert f"{fmt(energy['total']['energy_kwh']['total'])} kWh" in body
    assert fmt(energy["flops_per_step"]) in body and fmt(energy["train_flops"]) in body
    if not (trained_run.path / "eval.json").exists():  # other tests may have run `genlab eval` on this run
        assert "Not measured yet: run `genlab eval RUN`" in body
    else:
        assert "perplexity" in body
    assert "genlab detect FILE --run RUN" in body
    assert str(trained_run.path.parent) not in text  # no local paths in a card meant to be shared


def test_card_shows_evaluation_and_audit_when_present(tmp_path, trained_run):
    run = tmp_path / "copy"
    shutil.copytree(trained_run.path, run)
    (run / "eval.json").write_text(json.dumps({
        "run": str(run), "family": "gpt", "dataset": "hamlet.txt", "val_loss": 1.91234, "bits_per_char": 2.75,
        "floor": {"val_loss": 4.2}, "ceiling": {"val_loss": 0.5}}))
    (run / "audit.json").write_text(json.dumps({  # the shape of genlab audit's report; the card reads it generically
        "n": 16, "copied_ngram_rate": 0.0125, "memorisation": {"longest_copy": 17, "by_size": {"8": {"share": 0.1}}},
        "summary": ["Longest verbatim copy in 16 samples: 17 tokens."], "method": "13-gram overlap",
        "limits": "exact copies only"}))
    path = cardmod.write_card(run)
    meta, body = _front_matter(path.read_text())
    results = meta["model-index"][0]["results"]
    reported = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert reported == {"val_loss": 1.91234, "bits_per_char": 2.75}
    assert "| val_loss | 1.912 | 4.2 | 0.5 |" in body
    assert "| copied_ngram_rate | 0.0125 |" in body and "| memorisation.longest_copy | 17 |" in body
    assert "- Longest verbatim copy in 16 samples: 17 tokens." in body
    assert "13-gram overlap" in body and "exact copies only" in body
    assert "genlab audit RUN" not in body and "genlab eval RUN`, then" not in body
