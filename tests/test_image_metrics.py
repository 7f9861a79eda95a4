import numpy as np
import pytest
import torch

from genlab.registry import get_modality
from genlab.data.images import ImageDataConfig, prepare_images
from genlab.evaluate.images import feature_net, fid, kid, prdc, score


def gauss(n, d=16, loc=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(loc, scale, size=(n, d))


def test_fid_and_kid_of_a_set_against_itself_are_zero_and_against_a_shift_large():
    a, b, far = gauss(1000), gauss(1000, seed=1), gauss(1000, loc=2.0, seed=2)
    assert fid(a, a) == pytest.approx(0, abs=1e-6)
    assert fid(a, b) < 0.5  # two samples of one distribution
    assert fid(a, far) == pytest.approx(16 * 4, rel=0.05)  # |mu1 - mu2|^2 = 16 dims * 2^2
    assert abs(kid(a, b)) < 0.01 and kid(a, far) > 10


def test_prdc_on_known_toy_distributions():
    real = gauss(800)
    same = prdc(real, gauss(800, seed=1))
    collapsed = prdc(real, gauss(800, scale=0.1, seed=2))  # every sample near the centre: faithful, not diverse
    disjoint = prdc(real, gauss(800, loc=10.0, seed=3))
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and 0.8 < same["density"] < 1.2 and same["coverage"] > 0.9
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.5
    assert disjoint == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_feature_net_separates_real_digits_from_noise(tmp_path, monkeypatch):
    # Setup: the feature network is trained on digits and cached in a private folder
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    data = prepare_images(get_modality("image").resolve("digits"), ImageDataConfig(), tmp_path / "data")
    # Run
    net, accuracy, task = feature_net(data)
    real = net.features(data.x["val"])
    held_out = score(net, real, data.x["train"][:500])
    noise = score(net, real, torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    # Assert
    assert task == "classes" and accuracy > 0.9
    assert noise["fid"] > 10 * held_out["fid"] and noise["precision"] < 0.5 * held_out["precision"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert feature_net(data)[1] == accuracy  # loaded from the cache
