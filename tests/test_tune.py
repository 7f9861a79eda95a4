"""Tuning a gpt run to a person's writing (the ``lora`` family, ``genlab tune``): real tiny tunings of the shared
Hamlet run on English prose it never saw (the Python reference manual's topics, from the standard library)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import genlab
from genlab import registry
from conftest import torch_threads

TUNE = ["train.max_steps=60", "train.batch_size=16", "train.lr=1e-2", "train.min_lr=1e-3", "train.warmup_steps=5",
        "train.eval_every=0", "train.eval_batches=4", "train.precision=fp32", "train.threads=1",
        "release.track_energy=false"]


def genlab_cli(*args):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prose(tmp_path_factory, trained_run) -> Path:
    """About 40,000 characters of English prose, in characters the Hamlet run's tokenizer knows."""
    from pydoc_data.topics import topics

    tok = trained_run.model.tokenizer_
    text = "\n\n".join(topics[k] for k in sorted(topics))[:40_000]
    path = tmp_path_factory.mktemp("person") / "my-writing.txt"
    path.write_text("".join(c for c in text if tok.token_to_id(c) is not None), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, trained_run, prose):
    """The Hamlet run tuned for 30 steps, and the base run's file hashes before and after."""
    before = hashes(trained_run.path)
    with torch_threads(1):
        child = genlab.train("lora", str(prose), out=tmp_path_factory.mktemp("tuned") / "me", overrides=TUNE,
                             parent=trained_run.path)
    return child, before, hashes(trained_run.path)


def test_tuning_lowers_the_persons_perplexity_and_leaves_the_base_alone(tuned, trained_run):
    # Setup
    child, before, after = tuned

    # Run
    report = child.evaluate(save=False)

    # Assert: a clear drop on the person's held-out text; the base run's files are byte-identical
    assert report["person_ppl_after"] < 0.9 * report["person_ppl_before"], report
    assert report["base_ppl_before"] == pytest.approx(trained_run.evaluate(save=False)["perplexity"])
    assert report["base_ppl_after"] > 0 and report["adapter_params"] < report["base_params"] / 5
    assert before == after


def test_the_child_stores_only_the_adapter_and_names_its_parent(tuned, trained_run):
    child, _, _ = tuned
    with safe_open(str(child.path / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and all("lora_" in n for n in names)
    size, parent_size = (r.path.joinpath("model.safetensors").stat().st_size for r in (child, trained_run))
    assert size < parent_size / 5
    assert (child.path / "tokenizer.json").read_bytes() == (trained_run.path / "tokenizer.json").read_bytes()
    assert child.lineage["relation"] == "tuned from" and child.lineage["path"] == str(trained_run.path.resolve())


def test_the_child_loads_and_samples_like_any_run(tuned):
    # Setup
    child, _, _ = tuned

    # Run
    again = genlab.load(child.path)
    pieces = []
    streamed = again.sample(1, seed=5, prompt="The ", max_new_tokens=30, on_text=pieces.append)

    # Assert: the same weights, the same seeded text, streamed as generated
    ids = torch.tensor([[3, 5, 8, 13, 21, 2]])
    assert torch.equal(again.model.model_(input_ids=ids).logits, child.model.model_(input_ids=ids).logits)
    assert list(streamed) == list(child.sample(1, seed=5, prompt="The ", max_new_tokens=30))
    assert "".join(pieces) == streamed[0] and len(streamed[0]) > 0


def test_the_merged_export_gives_the_childs_logits(tuned, tmp_path):
    from transformers import AutoModelForCausalLM

    # Setup
    child, _, _ = tuned
    ids = torch.randint(0, child.model.vocab_size_, (2, 24), generator=torch.Generator().manual_seed(0))

    # Run
    folder = child.export(tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(folder).eval()

    # Assert: plain transformers gives the adapted network's logits (not the base's)
    with torch.no_grad():
        want = child.model.model_(input_ids=ids).logits
        base = child.model.parent.model.model_(input_ids=ids).logits
        got = plain(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, base, atol=1e-3)


def test_the_server_completes_from_the_tuned_weights(tuned):
    """The continuous batch decodes the merged network: a seeded completion is the child's own sample."""
    from fastapi.testclient import TestClient

    from genlab.serve.app import create_app
    from genlab.serve.config import ServeConfig

    child = tuned[0]
    with TestClient(create_app(ServeConfig(runs=child.path.parent), jobs=False)) as c:
        r = c.post("/v1/completions", json={"model": child.path.name, "prompt": "The", "max_tokens": 12, "seed": 4})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == child.sample(1, prompt="The", max_new_tokens=12, seed=4,
                                                          temperature=1.0)[0]


def test_full_fine_tuning_through_the_cli(trained_run, prose, tmp_path):
    # Run
    done = genlab_cli("tune", trained_run.path, "--data", prose, "--out", tmp_path / "full", "--full", "--steps", 10,
                      *(a for s in TUNE if "max_steps" not in s and "lr" not in s for a in ("--set", s)))

    # Assert: every weight saved, and the figures printed
    assert done.returncode == 0, done.stderr
    assert "the person's" in done.stdout and "weights (full fine-tuning)" in done.stderr
    with safe_open(str(tmp_path / "full" / "model.safetensors"), "pt") as f:
        assert not any("lora_" in n for n in f.keys())
    assert genlab.load(tmp_path / "full").sample(1, seed=1, max_new_tokens=10)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    data = registry.get_modality("table").example(folder / "data")
    copula = registry.get_family("copula")
    return genlab.train("copula", data, out=folder / "run", overrides=[*copula.example.get("set", ()),
                        "release.track_energy=false"]).path


def test_bad_input_is_one_line_and_exit_code_2(trained_run, prose, table_run, tmp_path):
    # Setup: a non-gpt run, text in characters the base never saw, an empty file
    strange = tmp_path / "strange.txt"
    strange.write_text(prose.read_text(encoding="utf-8") + " naïve café ☃\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    before = hashes(trained_run.path)

    # Run / Assert
    cases = [((table_run, "--data", prose, "--out", tmp_path / "a"), "only gpt runs"),
             ((trained_run.path, "--data", strange, "--out", tmp_path / "b"), "never saw"),
             ((trained_run.path, "--data", empty, "--out", tmp_path / "c"), "empty"),
             ((trained_run.path, "--data", prose, "--out", trained_run.path), "is the base run")]
    for args, said in cases:
        done = genlab_cli("tune", *args)
        last = done.stderr.strip().splitlines()[-1]  # above it: progress lines only
        assert done.returncode == 2 and last.startswith("error:") and said in last, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1
    assert not any((tmp_path / n).exists() for n in "abc")
    with pytest.raises(genlab.GenlabError, match="only gpt runs"):
        genlab.train("lora", str(prose), out=tmp_path / "d", parent=table_run, overrides=TUNE)
    with pytest.raises(genlab.GenlabError, match="'é' 'ï' '☃'"):
        genlab.train("lora", str(strange), out=tmp_path / "e", parent=trained_run.path, overrides=TUNE)
    assert hashes(trained_run.path) == before
