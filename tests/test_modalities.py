"""Modalities as plugins: a run's kind of data comes from its dataset and is recorded; option schemas refuse
another modality's options; outputs save themselves, atomically, signed only through a run."""

from __future__ import annotations

import numpy as np
import pytest

import genlab
from genlab import registry
from genlab.api import modality_for
from genlab.config import read_toml
from genlab.errors import BadArgument, GenlabError
from genlab.modalities.image import Images
from genlab.modalities.text import Texts


def test_the_run_modality_comes_from_the_data(tmp_path, corpus_file):
    # Setup: a folder of images, a text file, and each family
    (tmp_path / "pics").mkdir()
    Images(np.zeros((1, 1, 8, 8))).save(tmp_path / "pics" / "one")
    gpt, vae, t5 = (registry.get_family(n) for n in ("gpt", "vae", "t5"))
    # Assert: a registered dataset's own modality, a user path by what it holds, the family's own as fallback
    assert modality_for(gpt, "shakespeare") == "text" and modality_for(vae, "digits") == "image"
    assert modality_for(gpt, str(corpus_file)) == "text" and modality_for(vae, str(tmp_path / "pics")) == "image"
    assert modality_for(t5, str(tmp_path / "missing.jsonl")) == "pairs"
    with pytest.raises(GenlabError, match="dataset 'mnist' is image data; the gpt family learns from tokens"):
        modality_for(gpt, "mnist")


def test_config_records_the_modality_and_older_runs_still_load(trained_run, tmp_path):
    # Setup: a copy of the run whose config.toml predates the modality key
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained_run.path, old)
    text = (old / "config.toml").read_text()
    assert read_toml(trained_run.path / "config.toml")["modality"] == "text"
    (old / "config.toml").write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("modality")))
    # Run / Assert: the family's own modality is assumed
    run = genlab.load(old)
    assert run.config.modality == "text" and run.modality.name == "text"


def test_option_schemas_refuse_another_modality_and_fill_their_defaults():
    text = registry.get_modality("text")
    with pytest.raises(BadArgument, match="^label is not an option of text runs") as e:
        text.check_options("sample", {"label": 3})
    assert e.value.param == "label" and e.value.flag().startswith("--label is not")
    assert text.check_options("sample", {"top_k": 5}) == {"prompt": "", "max_new_tokens": 200, "temperature": 0.8,
                                                          "top_k": 5}
    assert registry.get_modality("image").check_options("evaluate", {}) == {"n": 1000}


def test_outputs_save_atomically_and_sign_only_through_a_run(tmp_path):
    # Setup: outputs made without a run
    texts = Texts(["a", "b"], prompt="> ")
    # Run
    folder = texts.save(tmp_path / "t")
    # Assert: whole documents, no sidecars; an existing folder and signing without a run are refused
    assert sorted(p.name for p in folder.iterdir()) == ["sample-0000.txt", "sample-0001.txt"]
    assert (folder / "sample-0001.txt").read_text() == "> b"
    with pytest.raises(GenlabError, match="already exists"):
        texts.save(folder)
    with pytest.raises(GenlabError, match="no run to sign them for"):
        texts.save(tmp_path / "signed", sign=True)
    assert not (tmp_path / "signed").exists() and not list(tmp_path.glob(".signed*"))


def test_image_outputs_are_arrays_that_become_files(tmp_path):
    images = Images(np.arange(2 * 1 * 8 * 8).reshape(2, 1, 8, 8) % 256)
    assert images.shape == (2, 1, 8, 8) and images.dtype == np.uint8 and images.modality == "image"
    assert type(images.astype(int) - 1) is np.ndarray  # arithmetic gives plain arrays
    assert [name for name, _ in images.files("x")] == ["x-0000.png", "x-0001.png", "grid.png"]


def test_an_empty_output_is_written_unsigned(trained_run, tmp_path):
    # a model may end a text at once: there are no bytes for C2PA to hash, so the file is written without a manifest
    from genlab.responsible.verify import verify

    outputs = trained_run.release.attach(Texts(["", "to be"]), watermark=False)
    folder = outputs.save(tmp_path / "o")
    assert (folder / "sample-0000.txt").read_text() == "" and not (folder / "sample-0000.txt.c2pa").exists()
    assert verify(folder / "sample-0000.txt").provenance.status == "unsigned"
    assert verify(folder / "sample-0001.txt").provenance.status == "trusted"
