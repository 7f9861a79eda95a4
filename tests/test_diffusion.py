"""The diffusion family on sklearn's 8x8 digits: tiny UNets trained for a few dozen steps, seconds each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genlab
from genlab.errors import GenlabError

TINY = [
    "model.channels=[16, 32]",  # 8x8 -> 4x4
    "model.norm_groups=8",
    "train.batch_size=32",
    "train.lr=2e-3",
    "train.warmup_steps=10",
    "train.eval_every=0",
    "train.eval_batches=2",
    "train.log_every=5",
    "train.sample_every=100000",  # no preview grids: they would take longer than the training
    "train.precision=fp32",
]
FAST = {"steps": 5}  # DDIM steps for the sampling tests


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory) -> genlab.Run:
    out = tmp_path_factory.mktemp("diffusion") / "cond"
    return genlab.train("diffusion", "digits", out=out, overrides=TINY + ["model.conditional=true",
                                                                         "train.max_steps=40"])


@pytest.fixture(scope="module")
def uncond_run(tmp_path_factory) -> genlab.Run:
    out = tmp_path_factory.mktemp("diffusion") / "uncond"
    return genlab.train("diffusion", "digits", out=out, overrides=TINY + ["train.max_steps=10"])


def _digit(run: genlab.Run, i: int = 0) -> np.ndarray:
    return ((run.data.x["val"][i] + 1) * 127.5).round().to(torch.uint8).numpy()  # (1, 8, 8)


# -- training ---------------------------------------------------------------------------------------------------
def test_loss_goes_down(cond_run):
    # Setup
    rows = [json.loads(line) for line in (cond_run.path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in rows if "train_loss" in r]

    # Assert: noise-prediction MSE starts near 1 (predicting zero) and falls
    assert losses[0] > 0.5
    assert losses[-1] < 0.6 * losses[0]
    assert np.isfinite([r["val_loss"] for r in rows if "val_loss" in r]).all()


def test_ema_update_and_optimized_parameters(uncond_run):
    # Setup
    model = uncond_run.model
    unet, ema = model.networks_["unet"], model.networks_["ema"]
    before = [p.detach().clone() for p in ema.parameters()]

    # Run: at step 0 the warm-up decay is 1/10, so EMA moves 90% of the way to the UNet
    model.after_step(0)

    # Assert
    for b, e, p in zip(before, ema.parameters(), unet.parameters()):
        torch.testing.assert_close(e, 0.1 * b + 0.9 * p)
    optimized = {id(p) for g in model.param_groups(0.0)["model"] for p in g["params"]}
    assert optimized == {id(p) for p in unet.parameters()}
    model.load_weights(uncond_run.path)  # undo the extra update for the other tests


def test_validation_loss_is_deterministic(cond_run):
    # Setup
    batch = (cond_run.data.x["val"][:32], cond_run.data.y["val"][:32])

    # Run
    a, b = cond_run.model.validation_loss(batch), cond_run.model.validation_loss(batch)

    # Assert
    assert a == b and 0 < a < 2


# -- sampling ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sample_shape_range_and_seed(cond_run, sampler):
    # Run
    a = cond_run.sample(6, seed=3, sampler=sampler, **FAST)
    b = cond_run.sample(6, seed=3, sampler=sampler, **FAST)
    c = cond_run.sample(6, seed=4, sampler=sampler, **FAST)

    # Assert
    assert a.shape == (6, 1, 8, 8) and a.dtype == np.uint8
    assert a.min() >= 0 and a.max() <= 255 and a.std() > 0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_labels_and_guidance(cond_run):
    # Run
    one_class = cond_run.sample(4, label=3, seed=0, **FAST)
    guided = cond_run.sample(4, label=3, seed=0, guidance=3.0, **FAST)  # the default is 1 (unguided)

    # Assert
    assert one_class.shape == (4, 1, 8, 8)
    assert not np.array_equal(one_class, guided)
    with pytest.raises(GenlabError, match="out of range"):
        cond_run.sample(2, label=10, **FAST)
    with pytest.raises(GenlabError, match="out of range"):
        cond_run.sample(2, label=-1, **FAST)
    with pytest.raises(GenlabError, match="guidance must be"):
        cond_run.sample(2, guidance=-1.0, **FAST)


def test_unconditional_refuses_labels(uncond_run):
    with pytest.raises(GenlabError, match="class-conditional"):
        uncond_run.sample(2, label=0, **FAST)
    with pytest.raises(GenlabError, match="class-conditional"):
        uncond_run.sample(2, guidance=3.0, **FAST)


@pytest.mark.parametrize(("options", "message"), [
    ({"sampler": "euler"}, "ddim or ddpm"),
    ({"steps": 0}, "between 1 and 1000"),
    ({"steps": 1001}, "between 1 and 1000"),
])
def test_bad_sampling_options(uncond_run, options, message):
    with pytest.raises(GenlabError, match=message):
        uncond_run.sample(2, **options)
    with pytest.raises(GenlabError, match="at least 1"):
        uncond_run.sample(0)


def test_save_load_gives_the_same_samples(cond_run):
    # Run
    reloaded = genlab.load(cond_run.path)

    # Assert
    np.testing.assert_array_equal(reloaded.sample(5, seed=7, **FAST), cond_run.sample(5, seed=7, **FAST))


# -- variations and interpolation -------------------------------------------------------------------------------
def test_vary(cond_run):
    # Setup
    image = _digit(cond_run)

    # Run
    a = cond_run.model.vary(image, 4, strength=0.5, seed=1, steps=10)
    b = cond_run.model.vary(image, 4, strength=0.5, seed=1, steps=10)
    same = cond_run.model.vary(image, 3, strength=0.0, seed=1)
    labelled = cond_run.model.vary(image, 2, strength=0.3, seed=1, label=4, steps=10)

    # Assert
    assert a.shape == (4, 1, 8, 8) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert len({v.tobytes() for v in a}) == 4  # each variation has its own noise
    np.testing.assert_array_equal(same, np.repeat(image[None], 3, axis=0))
    assert labelled.shape == (2, 1, 8, 8)


def test_vary_resizes_other_sizes(uncond_run):
    # Setup: a 16x12 grey image (not square, not 8x8)
    image = np.random.default_rng(0).integers(0, 256, (1, 16, 12), dtype=np.uint8)

    # Run
    out = uncond_run.model.vary(image, 2, strength=0.4, seed=0, steps=10)

    # Assert
    assert out.shape == (2, 1, 8, 8)


def test_vary_bad_input(uncond_run):
    image = _digit(uncond_run)
    with pytest.raises(GenlabError, match="strength"):
        uncond_run.model.vary(image, 2, strength=1.5)
    with pytest.raises(GenlabError, match="strength"):
        uncond_run.model.vary(image, 2, strength=-0.1)
    with pytest.raises(GenlabError, match="grey .* RGB"):
        uncond_run.model.vary(np.zeros((3, 8, 8), np.uint8), 2, strength=0.5)
    with pytest.raises(GenlabError, match="class-conditional"):
        uncond_run.model.vary(image, 2, strength=0.5, label=1)


def test_interpolate_random_ends(cond_run):
    # Run
    a = cond_run.model.interpolate(5, seed=2, ddim_steps=5)
    b = cond_run.model.interpolate(5, seed=2, ddim_steps=5)

    # Assert
    assert a.shape == (5, 1, 8, 8) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[-1])


def test_interpolate_between_images(uncond_run):
    # Setup
    ends = [_digit(uncond_run, 0), _digit(uncond_run, 1)]

    # Run
    frames = uncond_run.model.interpolate(4, seed=0, images=ends, ddim_steps=50)

    # Assert: DDIM inversion (unclipped) brings the end images back
    assert frames.shape == (4, 1, 8, 8) and frames.dtype == np.uint8

    def dist(a, b):
        return np.abs(a.astype(int) - b).mean()

    assert dist(frames[0], ends[0]) < 0.5 * dist(frames[0], ends[1])
    assert dist(frames[-1], ends[1]) < 0.5 * dist(frames[-1], ends[0])
    with pytest.raises(GenlabError, match="two images"):
        uncond_run.model.interpolate(4, images=ends[:1])
    with pytest.raises(GenlabError, match="at least 2"):
        uncond_run.model.interpolate(1)
    with pytest.raises(GenlabError, match="RGB"):
        uncond_run.model.interpolate(3, images=[np.zeros((3, 8, 8), np.uint8)] * 2)


def test_slerp_keeps_the_ends_and_the_norm():
    from genlab.nets import slerp as _slerp

    # Setup
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn((2, 1, 8, 8), generator=g)

    # Run
    path = _slerp(a, b, torch.linspace(0, 1, 7))

    # Assert: the ends are the inputs; the middle keeps a Gaussian's norm (a lerp would shrink it by ~1/sqrt(2))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    assert path[3].norm() > 0.9 * min(a.norm(), b.norm())


# -- bad configurations -----------------------------------------------------------------------------------------
def test_size_must_divide_by_the_downsampling(tmp_path):
    # Run / Assert: three levels halve twice, so the side must divide by 4
    with pytest.raises(GenlabError, match=r"divisible by 4; 10 is not: add --set data.size=8"):
        genlab.train("diffusion", "digits", out=tmp_path / "r", overrides=["data.size=10", "train.max_steps=1"])
    assert not (tmp_path / "r").exists()  # nothing half-made is left


def test_conditional_needs_labels(tmp_path):
    # Setup: a folder of unlabelled images
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(folder / f"{i}.png")

    # Run / Assert
    with pytest.raises(GenlabError, match="needs class labels"):
        genlab.train("diffusion", str(folder), out=tmp_path / "r",
                     overrides=TINY + ["data.size=8", "model.conditional=true", "train.max_steps=1"])


def test_config_validation(tmp_path):
    with pytest.raises(GenlabError, match="must divide by model.norm_groups"):
        genlab.train("diffusion", "digits", out=tmp_path / "a", overrides=["model.channels=[12, 24]"])
    with pytest.raises(GenlabError, match="ema_decay"):
        genlab.train("diffusion", "digits", out=tmp_path / "b", overrides=["model.ema_decay=1.0"])


def test_resume_continues_exactly(tmp_path):
    # Setup: 6 steps straight, and the same run interrupted after step 4 (checkpointed there), then resumed
    over = TINY + ["model.conditional=true", "train.max_steps=6", "train.threads=1"]  # a fixed thread count
    straight = genlab.train("diffusion", "digits", out=tmp_path / "a", overrides=over)

    def stop(trainer, step, logs):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        genlab.train("diffusion", "digits", out=tmp_path / "b", overrides=over, callbacks=[stop])

    # Run
    resumed = genlab.train("diffusion", "digits", out=tmp_path / "b", resume=True, overrides=over)

    # Assert: the UNet and its EMA copy are bit-identical
    for name in ("unet", "ema"):
        for a, b in zip(straight.model.networks_[name].parameters(), resumed.model.networks_[name].parameters()):
            assert torch.equal(a, b)
