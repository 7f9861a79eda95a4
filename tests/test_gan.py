"""The gan family: tiny DCGAN / WGAN-GP models on sklearn's 8x8 digits, seconds each."""

import json
import math

import numpy as np
import pytest
import torch

import genlab
from genlab.data.images import ImageData, to_unit
from genlab.errors import GenlabError
from genlab.models.gan import GAN, GANConfig
from genlab.nets import slerp

TINY = [
    "model.z_dim=16",
    "model.width=8",
    "model.embed_dim=8",
    "train.batch_size=32",
    "train.lr=1e-3",
    "train.min_lr=1e-4",
    "train.eval_batches=2",
    "train.precision=fp32",
    "train.threads=1",
]


@pytest.fixture(scope="session")
def cgan(tmp_path_factory) -> genlab.Run:
    """A conditional DCGAN (bce) trained for 200 steps."""
    out = tmp_path_factory.mktemp("gan") / "cgan"
    return genlab.train("gan", "digits", out=out, overrides=TINY + ["model.conditional=true", "train.max_steps=200",
                                                                    "train.eval_every=100", "train.log_every=5"])


@pytest.fixture(scope="session")
def wgan(tmp_path_factory) -> genlab.Run:
    """An unconditional WGAN-GP trained for 40 steps of 3 critic updates each, without EMA."""
    out = tmp_path_factory.mktemp("gan") / "wgan"
    return genlab.train("gan", "digits", out=out, overrides=TINY + [
        "model.loss=wgan-gp", "model.n_critic=3", "model.ema=0", "train.max_steps=40", "train.log_every=5",
        "train.eval_every=20"])


def _rows(run, key):
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r]


def _mean_image_gap(images: np.ndarray, data: ImageData) -> float:
    """Distance between the mean generated image and the mean real image, in [-1, 1] units per pixel."""
    return float((to_unit(images).mean(0) - data.x["train"].mean(0)).abs().mean())


# -- training -----------------------------------------------------------------------------------------------------
def test_bce_discriminator_learns_and_generator_moves_toward_the_data(cgan):
    # Setup
    fresh = GAN(cgan.model.config)
    fresh.build(cgan.data, seed=0)
    # Run
    d_loss = _rows(cgan, "d_loss")
    gap_trained = _mean_image_gap(cgan.sample(200, seed=0), cgan.data)
    gap_fresh = _mean_image_gap(fresh.sample(200, seed=0), cgan.data)
    # Assert: D starts near chance (2 ln 2) and learns to separate; G's images move toward the real ones
    assert d_loss[0] > 1.0 and min(d_loss[-10:]) < d_loss[0] - 0.3
    assert all(math.isfinite(v) for v in d_loss + _rows(cgan, "g_loss"))
    assert gap_trained < gap_fresh / 3
    assert len(_rows(cgan, "val_loss")) == 2


def test_wgan_gp_critic_learns_a_positive_distance(wgan):
    # Run
    w, gp = _rows(wgan, "wasserstein"), _rows(wgan, "gp")
    # Assert: the critic's estimate grows from ~0 as it learns to separate; the penalty is logged and finite
    assert len(w) == len(gp) == 8
    assert max(w) > abs(w[0]) + 0.1 and w[-1] > 0
    assert all(math.isfinite(v) for v in gp)


def test_phases_discriminator_first_then_generator(wgan, cgan):
    # Run
    wgan_phases = [p.optimizer for p in wgan.model.phases(wgan.data)]
    cgan_phases = [p.optimizer for p in cgan.model.phases(cgan.data)]
    groups = cgan.model.param_groups(0.0)
    # Assert
    assert wgan_phases == ["discriminator"] * 3 + ["generator"]
    assert cgan_phases == ["discriminator", "generator"]
    assert set(groups) == {"discriminator", "generator"}


def test_wgan_gp_critic_has_no_batchnorm(wgan, cgan):
    def has_bn(net):
        return any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())

    assert not has_bn(wgan.model.discriminator_)
    assert has_bn(cgan.model.discriminator_)  # DCGAN keeps it
    assert "generator_ema" not in wgan.model.networks_ and "generator_ema" in cgan.model.networks_


def test_each_phase_computes_gradients_only_for_its_network(cgan):
    # Setup: a fresh model (the phases change BatchNorm statistics, after_step the EMA)
    model, data = GAN(cgan.model.config), cgan.data
    model.build(data, seed=0)
    d_phase, g_phase = model.phases(data)
    batch = data.batch("train", 8, torch.Generator().manual_seed(0))
    # Run: the discriminator phase
    d_phase.loss(batch)[0].backward()
    d_grads = [p.grad is not None for p in model.discriminator_.parameters()]
    g_grads_after_d = [p.grad is not None for p in model.generator_.parameters()]
    model.discriminator_.zero_grad(set_to_none=True)
    # Run: the generator phase, then the step's end
    g_phase.loss(batch)[0].backward()
    d_grads_after_g = [p.grad is not None for p in model.discriminator_.parameters()]
    g_grads = [p.grad is not None for p in model.generator_.parameters()]
    model.after_step(0)
    # Assert
    assert all(d_grads) and not any(g_grads_after_d)
    assert all(g_grads) and not any(d_grads_after_g)
    assert all(p.requires_grad for p in model.discriminator_.parameters())


def test_validation_loss_is_repeatable_and_near_chance_scale(cgan):
    # Setup
    batch = cgan.data.batch("val", 32, torch.Generator().manual_seed(1))
    # Run
    a, b = cgan.model.validation_loss(batch), cgan.model.validation_loss(batch)
    # Assert
    assert a == b and 0 < a < 5


# -- sampling -----------------------------------------------------------------------------------------------------
def test_samples_shape_range_and_seed(cgan):
    # Run
    a, b, c = cgan.sample(12, seed=3), cgan.sample(12, seed=3), cgan.sample(12, seed=4)
    # Assert
    assert a.shape == (12, 1, 8, 8) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() < 60 and a.max() > 150  # dark background, bright strokes: not a grey blur


def test_conditional_labels_cycle_and_select(cgan):
    # Run
    cycled = cgan.sample(10, seed=5)
    threes = cgan.sample(10, label=3, seed=5)
    fours = cgan.sample(10, label=4, seed=5)
    # Assert: without a label, sample i is class i % 10 with the same z as with label=i
    assert np.array_equal(cycled[3], threes[3]) and np.array_equal(cycled[4], fours[4])
    assert not np.array_equal(threes, fours)


@pytest.mark.parametrize("label", [-1, 10, 2.5])
def test_label_out_of_range_is_an_error(cgan, label):
    with pytest.raises(GenlabError, match="out of range"):
        cgan.sample(4, label=label)


def test_label_on_an_unconditional_model_is_an_error(wgan):
    with pytest.raises(GenlabError, match="conditional"):
        wgan.sample(4, label=1)
    with pytest.raises(GenlabError, match="conditional"):
        wgan.model.interpolate(4, seed=0, label=1)


def test_bad_sampling_requests(wgan):
    with pytest.raises(GenlabError, match="at least 1"):
        wgan.sample(0)
    with pytest.raises(GenlabError, match="sampler is not an option of gan sampling"):
        wgan.sample(2, sampler="ddim")


def test_conditional_on_unlabelled_data_is_an_error_and_leaves_nothing(tmp_path):
    # Setup
    out = tmp_path / "r"
    # Run / Assert: lfw faces have no labels
    with pytest.raises(GenlabError, match="needs class labels"):
        genlab.train("gan", "faces", out=out, overrides=TINY + ["model.conditional=true", "train.max_steps=1"])
    assert not out.exists()


@pytest.mark.parametrize("size", [5, 13, 25, 32])
def test_any_image_size(tmp_path, size):
    # Run
    run = genlab.train("gan", "digits", out=tmp_path / "r", overrides=TINY + [
        f"data.size={size}", "model.loss=wgan-gp", "model.n_critic=1", "train.max_steps=2"])
    # Assert
    assert run.sample(3, seed=0).shape == (3, 1, size, size)
    assert math.isfinite(run.summary()["best_val_loss"])


def test_bad_config_is_an_error(tmp_path):
    with pytest.raises(GenlabError, match="n_critic"):
        genlab.train("gan", "digits", out=tmp_path / "r", overrides=["model.n_critic=0"])
    with pytest.raises(GenlabError, match="model.loss"):
        genlab.train("gan", "digits", out=tmp_path / "r", overrides=["model.loss=hinge"])


# -- interpolation and variations ---------------------------------------------------------------------------------
def test_interpolate_shape_and_seed(cgan, wgan):
    # Run
    a, b = cgan.model.interpolate(7, seed=2), cgan.model.interpolate(7, seed=2)
    fixed = cgan.model.interpolate(5, seed=2, label=8)
    plain = wgan.model.interpolate(4, seed=None)
    # Assert
    assert a.shape == (7, 1, 8, 8) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert fixed.shape == (5, 1, 8, 8) and plain.shape == (4, 1, 8, 8)
    assert not np.array_equal(a[0], a[-1])


def test_interpolate_refuses_images_and_too_few_steps(cgan):
    image = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(GenlabError, match="cannot encode"):
        cgan.model.interpolate(5, seed=0, images=[image, image])
    with pytest.raises(GenlabError, match="at least 2"):
        cgan.model.interpolate(1, seed=0)


def test_vary_is_not_offered(cgan):
    with pytest.raises(GenlabError, match="cannot encode an image; use vae or diffusion"):
        cgan.model.vary(np.zeros((1, 8, 8), np.uint8), 4, strength=0.5, seed=0)


def test_slerp_keeps_ends_and_norm():
    # Setup
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 64, generator=g)
    # Run
    path = slerp(a, b, torch.linspace(0, 1, 9))
    # Assert: exact ends; the middle keeps a Gaussian's typical norm (a straight line would shrink it)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert path.norm(dim=1).min() > 0.9 * min(a.norm(), b.norm())


# -- saving -------------------------------------------------------------------------------------------------------
def test_reload_gives_the_same_samples(cgan, wgan):
    for run in (cgan, wgan):
        again = genlab.load(run.path)
        assert np.array_equal(again.sample(16, seed=9), run.sample(16, seed=9))
        assert again.model.architecture() == run.model.architecture()


def test_run_folder_has_previews(cgan):
    names = {p.name for p in (cgan.path / "samples").iterdir()}
    assert names == {"step-100.png", "step-200.png"}


def test_config_defaults_are_valid():
    GANConfig().validate()
    assert GAN.train_defaults["beta1"] == 0.5 and GAN.train_defaults["weight_decay"] == 0.0
