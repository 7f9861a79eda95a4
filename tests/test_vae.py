"""The vae family on sklearn's 8x8 digits: tiny models, seconds each."""

import json

import numpy as np
import pytest
import torch

import genlab
from genlab.errors import GenlabError
from genlab.models.vae import VAE, VAEConfig, VAENet

TINY = [
    "model.latent_dim=8",
    "model.width=8",
    "model.hidden=64",
    "train.batch_size=32",
    "train.lr=3e-3",
    "train.min_lr=3e-4",
    "train.warmup_steps=10",
    "train.eval_batches=4",
    "train.log_every=5",
    "train.precision=fp32",
    "train.threads=1",  # on a shared 2-core machine, 2 OpenMP threads per process spin and crawl
]


pytestmark = pytest.mark.usefixtures("one_thread")  # from conftest


@pytest.fixture(scope="module")
def cvae(tmp_path_factory) -> genlab.Run:
    """A class-conditional VAE trained for 200 steps."""
    out = tmp_path_factory.mktemp("vae") / "cvae"
    return genlab.train("vae", "digits", out=out, overrides=TINY + ["model.conditional=true", "train.max_steps=200",
                                                                     "train.eval_every=100"])


@pytest.fixture(scope="module")
def plain(cvae) -> VAE:
    """An unconditional VAE on the same data, untrained."""
    model = VAE(VAEConfig(latent_dim=8, width=8, hidden=64))
    model.build(cvae.data, seed=0)
    return model


def test_loss_falls_and_previews_are_written(cvae):
    # Run
    rows = [json.loads(line) for line in (cvae.path / "metrics.jsonl").read_text().splitlines()]
    train = [r["train_loss"] for r in rows if "train_loss" in r]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    # Assert: nats per image fall; the KL term is logged beside the reconstruction
    assert train[0] > train[-1] + 5 and len(val) == 2 and val[0] > val[1]
    assert all(r["train_loss"] == pytest.approx(r["rec"] + r["kl"], rel=1e-4) for r in rows if "rec" in r)
    assert (cvae.path / "samples" / "step-200.png").is_file()


def test_validation_loss_is_the_deterministic_negative_elbo(cvae):
    # Setup
    x, y = cvae.data.x["val"][:32], cvae.data.y["val"][:32]
    # Run
    first, second = cvae.model.validation_loss((x, y)), cvae.model.validation_loss((x, y))
    # Assert
    assert first == second and 5 < first < 60


def test_likelihood_bounds_are_ordered(cvae):
    # Run
    report = cvae.model.likelihood(cvae.data, k=20, seed=0)
    # Assert: the importance-weighted bound is tighter than the ELBO, and no model beats the soft targets' entropy
    assert report["nll_lower_bound"] < report["nll_iwae"] <= report["neg_elbo"] + 1e-3
    assert report["neg_elbo"] == pytest.approx(report["reconstruction"] + report["kl"], rel=1e-4)
    assert report["neg_elbo"] < report["nll_pixel_baseline"]
    assert cvae.model.likelihood(cvae.data, k=20, seed=0) == report


def test_samples_have_the_right_shape_range_and_are_seeded(cvae):
    # Run
    rng = torch.get_rng_state()
    a, b, c = (cvae.model.sample(12, seed=s) for s in (3, 3, 4))
    # Assert
    assert a.shape == (12, 1, 8, 8) and a.dtype == np.uint8 and a.max() > 128 and a.min() < 64
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is untouched
    assert cvae.model.networks_["model"].training is False  # loaded runs stay in eval mode


def test_conditional_labels_and_their_errors(cvae, plain):
    # Run
    threes = cvae.model.sample(20, label=3, seed=0)
    cycled = cvae.model.sample(20, seed=0)
    # Assert: label None cycles 0..9 over the same latent draws
    assert threes.shape == (20, 1, 8, 8)
    assert np.array_equal(cycled[3], threes[3]) and np.array_equal(cycled[13], threes[13])
    assert not np.array_equal(cycled[4], threes[4])
    for bad in (10, -1, 2.0, True):
        with pytest.raises(GenlabError, match="from 0 to 9"):
            cvae.model.sample(2, label=bad)
    with pytest.raises(GenlabError, match="not"):
        plain.sample(2, label=1)
    with pytest.raises(GenlabError, match="at least 1"):
        plain.sample(0)


def test_conditional_on_an_unlabelled_dataset_is_refused(tmp_path):
    # Run / Assert: faces have no labels; nothing is left behind
    with pytest.raises(GenlabError, match="needs class labels"):
        genlab.train("vae", "faces", out=tmp_path / "r", overrides=TINY + ["model.conditional=true"])
    assert not (tmp_path / "r").exists()


def test_bad_config_is_a_one_line_error(tmp_path):
    with pytest.raises(GenlabError, match="model.beta"):
        genlab.train("vae", "digits", out=tmp_path / "r", overrides=["model.beta=-1"])
    with pytest.raises(GenlabError, match="model.latent_dim"):
        genlab.train("vae", "digits", out=tmp_path / "r", overrides=["model.latent_dim=0"])


@pytest.mark.parametrize("size", [8, 25, 28, 32])
def test_networks_fit_any_image_size(size):
    # Setup
    net = VAENet((3, size, size), latent_dim=4, width=4, hidden=16, num_classes=2)
    x, cond = torch.zeros(2, 3, size, size), torch.eye(2)
    # Run
    mu, logvar = net.encode(x, cond)
    logits = net.decode(mu, cond)
    # Assert
    assert mu.shape == logvar.shape == (2, 4) and logits.shape == (2, 3, size, size)


def test_vary_perturbs_the_encoding(cvae):
    # Setup
    image = (cvae.data.x["val"][0].add(1).mul(127.5)).round().to(torch.uint8).numpy()  # (1, 8, 8)
    model = cvae.model
    # Run
    same = model.vary(image, 4, strength=0.0, seed=0)
    varied, again = model.vary(image, 4, strength=1.0, seed=0), model.vary(image, 4, strength=1.0, seed=0)
    bigger = model.vary(image.repeat(2, axis=1).repeat(2, axis=2), 3, strength=0.5, seed=0)  # 16x16: resized
    # Assert
    assert same.shape == (4, 1, 8, 8) and same.dtype == np.uint8 and (same == same[0]).all()
    assert np.array_equal(varied, again) and not (varied == varied[0]).all()
    assert bigger.shape == (3, 1, 8, 8)
    assert model.vary(image, 2, strength=0.0, label=7).shape == (2, 1, 8, 8)


def test_vary_errors(cvae, plain):
    image = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(GenlabError, match=r"\[0, 1\]"):
        cvae.model.vary(image, 2, strength=1.5)
    with pytest.raises(GenlabError, match=r"\[0, 1\]"):
        cvae.model.vary(image, 2, strength=float("nan"))
    with pytest.raises(GenlabError, match="grey .* RGB"):
        cvae.model.vary(np.zeros((3, 8, 8), np.uint8), 2, strength=0.5)
    with pytest.raises(GenlabError, match="not"):
        plain.vary(image, 2, strength=0.5, label=1)


def test_interpolate_walks_between_samples_or_images(cvae, plain):
    # Setup
    ends = [(cvae.data.x["val"][i].add(1).mul(127.5)).round().to(torch.uint8).numpy() for i in (0, 1)]
    # Run
    walk, again = cvae.model.interpolate(6, seed=1), cvae.model.interpolate(6, seed=1)
    between = cvae.model.interpolate(5, seed=0, images=ends)
    unconditional = plain.interpolate(3, seed=0)
    # Assert
    assert walk.shape == (6, 1, 8, 8) and walk.dtype == np.uint8 and np.array_equal(walk, again)
    assert between.shape == (5, 1, 8, 8) and unconditional.shape == (3, 1, 8, 8)
    assert np.array_equal(between[0], cvae.model.vary(ends[0], 1, strength=0.0)[0])  # starts at the encoding
    assert np.array_equal(between[-1], cvae.model.vary(ends[1], 1, strength=0.0)[0])
    with pytest.raises(GenlabError, match="at least 2"):
        cvae.model.interpolate(1, seed=0)
    with pytest.raises(GenlabError, match="two images"):
        cvae.model.interpolate(3, seed=0, images=ends[:1])


def test_save_and_load_give_the_same_samples(cvae):
    # Run
    again = genlab.load(cvae.path)
    # Assert
    assert again.model.architecture() == cvae.model.architecture()
    assert again.model.architecture()["num_classes"] == 10 and again.model.architecture()["shape"] == [1, 8, 8]
    assert np.array_equal(again.sample(16, seed=2), cvae.sample(16, seed=2))
    assert np.array_equal(again.model.vary(again.sample(1, seed=0)[0], 3, strength=0.5, seed=1),
                          cvae.model.vary(cvae.sample(1, seed=0)[0], 3, strength=0.5, seed=1))
