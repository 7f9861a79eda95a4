"""The release layer on an image family: samples carry the run's mark, files are signed, verify checks both."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import genlab
from genlab.responsible.marks import ImageMarks

VAE_TINY = ["model.latent_dim=8", "model.width=8", "model.hidden=64", "train.batch_size=16", "train.max_steps=10",
            "train.eval_every=10", "train.eval_batches=1", "train.threads=1", "data.size=32"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> genlab.Run:
    """A (barely trained) VAE on the 100 LFW faces at 32x32: big enough to carry the image watermark."""
    return genlab.train("vae", "faces", out=tmp_path_factory.mktemp("rel") / "faces", overrides=VAE_TINY)


def test_samples_carry_the_run_payload(faces):
    # run
    marked = faces.sample(3, seed=0)
    plain = faces.sample(3, seed=0, watermark=False)
    found = [ImageMarks.detect(img) for img in marked]
    not_found = [ImageMarks.detect(img) for img in plain]
    # assert: same shape and nearly the same pixels, the run's payload in every marked one and in no plain one
    assert marked.shape == plain.shape == (3, 1, 32, 32) and marked.dtype == np.uint8
    assert np.abs(marked.astype(int) - plain.astype(int)).mean() < 4
    assert all(m.found and m.payload == faces.release.identity.payload for m in found)
    assert not any(m.found for m in not_found)


def test_cli_sample_then_verify_then_tamper(faces, tmp_path):
    # setup: signed, marked PNGs from the CLI
    r = cli("sample", faces.path, "--n", "2", "--seed", "1", "--out", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    png = tmp_path / "s" / "sample-0000.png"
    # a copy re-encoded by Pillow with one pixel changed: the manifest is gone, the mark stays
    img = np.asarray(Image.open(png)).copy()
    img[0, 0] ^= 0xFF
    copy = tmp_path / "copy.png"
    Image.fromarray(img).save(copy)
    # run
    good = cli("verify", png, "--json")
    bad = cli("verify", copy, "--json")
    # assert
    assert good.returncode == 0, good.stdout + good.stderr
    g = json.loads(good.stdout)[0]
    assert g["signature"] == "trusted" and g["generation"]["run_id"] == faces.release.identity.run_id
    assert g["generation"]["seed"] == 1 and g["generation"]["watermark"]["scheme"] == "genlab-image-v1"
    assert g["watermark"]["found"] and g["watermark"]["matches_manifest"]
    assert bad.returncode == 1
    b = json.loads(bad.stdout)[0]
    assert b["signature"] == "unsigned" and b["watermark"]["found"]


def test_no_watermark_no_sign_flags(faces, tmp_path):
    r = cli("sample", faces.path, "--n", "1", "--seed", "1", "--no-watermark", "--no-sign", "--out", tmp_path / "s")
    v = cli("verify", tmp_path / "s" / "sample-0000.png", "--json")
    assert r.returncode == 0 and v.returncode == 1
    out = json.loads(v.stdout)[0]
    assert out["signature"] == "unsigned" and not out["watermark"]["found"]


def test_tiny_images_are_signed_but_not_marked(tmp_path):
    run = genlab.train("vae", "digits", out=tmp_path / "d", overrides=[*VAE_TINY[:-1], "train.max_steps=2"])
    r = cli("sample", run.path, "--n", "1", "--seed", "1", "--out", tmp_path / "s")
    v = json.loads(cli("verify", tmp_path / "s" / "sample-0000.png", "--json").stdout)[0]
    assert r.returncode == 0 and "cannot carry the watermark" in r.stderr
    assert v["signature"] == "trusted" and v["generation"]["watermark"]["scheme"] == "none"


def test_card_says_what_the_mark_survives_at_the_run_image_size(faces):
    # run
    card = (faces.path / "README.md").read_text()
    # assert: the 32x32 run is told the figures measured at 28x28, not those of larger images
    from genlab.responsible.image_watermark import robustness_note

    assert robustness_note(32) in card and "Measured on 28x28 images" in card
    assert robustness_note(256) not in card
