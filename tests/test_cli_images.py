"""The image verbs as a user runs them: files written, bad input is one line and exit code 2."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import genlab

VAE_TINY = ["model.latent_dim=8", "model.width=8", "model.hidden=64", "train.batch_size=32", "train.max_steps=30",
            "train.eval_every=30", "train.eval_batches=2", "train.threads=1"]


def genlab_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def cvae(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "cvae"
    return genlab.train("vae", "digits", out=out, overrides=VAE_TINY + ["model.conditional=true"])


def test_sample_vary_interpolate_write_files(cvae, tmp_path):
    # Setup: a grey 8x8 digit from the validation split, as a PNG
    digit = tmp_path / "digit.png"
    Image.fromarray(((cvae.data.x["val"][0, 0].numpy() + 1) * 127.5).astype(np.uint8)).save(digit)
    # Run
    s = genlab_cli("sample", cvae.path, "--n", "12", "--label", "3", "--seed", "1", "--out", tmp_path / "s")
    v = genlab_cli("vary", cvae.path, digit, "--n", "4", "--strength", "0.5", "--seed", "1", "--out", tmp_path / "v")
    i = genlab_cli("interpolate", cvae.path, "--steps", "6", "--seed", "2", "--out", tmp_path / "i")
    # Assert
    assert s.returncode == v.returncode == i.returncode == 0, s.stderr + v.stderr + i.stderr
    assert len(list((tmp_path / "s").glob("sample-*.png"))) == 12 and (tmp_path / "s" / "grid.png").is_file()
    assert len(list((tmp_path / "v").glob("variation-*.png"))) == 4
    assert Image.open(tmp_path / "i" / "interpolation.gif").n_frames == 10  # 6 forward, 4 back
    assert (tmp_path / "i" / "strip.png").is_file()


def test_image_bad_input(cvae, tmp_path):
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(rgb)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    cases = [
        (["vary", cvae.path, rgb], "this model makes grey (1 channel) images but the image is RGB"),
        (["vary", cvae.path, tmp_path / "broken.png"], "cannot read this image"),
        (["vary", cvae.path, rgb, "--strength", "1.5"], "--strength must be in [0, 1]"),
        (["sample", cvae.path, "--label", "10"], "label"),
        (["sample", cvae.path, "--n", "2", "--out", tmp_path], "already exists"),
        (["interpolate", cvae.path, "--from", rgb], "give both --from and --to"),
        (["train", "vae", "--data", tmp_path / "empty-folder"], "no such file or folder"),
    ]
    for args, message in cases:
        r = genlab_cli(*args, cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
