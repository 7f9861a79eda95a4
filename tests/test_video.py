"""Video: the Moving MNIST generator, the vdm family's clips and continuations, the watermark in every frame, the
video metrics, and bad input as a user meets it (one line, exit code 2). The family contract (training lowers the
loss, saved weights load back, signed files) is checked for vdm in test_contract.py."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.data.clips import read_clip
from genlab.data.video import CANVAS, DIGIT, moving_clip, trajectories
from genlab.evaluate.video import copy_last, linear, ssim
from genlab.modalities.video import Clips
from genlab.models.vdm import VDM
from genlab.models.video_motion import MotionNet, motion_loss, warp
from genlab.responsible.verify import verify

TINY = [*VDM.example["set"], "train.max_steps=20", "train.eval_every=20", "train.eval_batches=2",
        "release.track_energy=false", "train.threads=1"]


def genlab_cli(*args):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def vrun(tmp_path_factory):
    """A tiny vdm run on moving-digits: 4 frames of 32x32."""
    return genlab.train("vdm", "moving-digits", out=tmp_path_factory.mktemp("video") / "run", overrides=TINY)


def write_gif(path, frames):
    pics = [Image.fromarray(f) for f in frames]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=100, loop=0)
    return path


def test_moving_digits_deterministic_and_inside_the_frame():
    digits = (np.random.default_rng(0).random((10, DIGIT, DIGIT)) * 255).astype(np.uint8)
    # Run
    a, pick_a = moving_clip(digits, np.random.default_rng([1, 2]), 20)
    b, pick_b = moving_clip(digits, np.random.default_rng([1, 2]), 20)
    c, _ = moving_clip(digits, np.random.default_rng([1, 3]), 20)
    corners = np.stack([trajectories(np.random.default_rng(s), 20) for s in range(300)])  # (300, 20, 2, 2)
    # Assert: the same seed gives the same clip; corners keep the whole digit inside; digits move
    assert a.shape == (20, 1, CANVAS, CANVAS) and a.dtype == np.uint8
    assert (a == b).all() and (pick_a == pick_b).all() and not (a == c).all()
    assert corners.min() >= 0 and corners.max() <= CANVAS - DIGIT
    steps = np.abs(np.diff(corners, axis=1))
    assert steps.max() <= 4 and (steps.sum(axis=(1, 3)) > 0).all()  # at most 3.6 pixels a frame, never still


def test_held_out_clips_use_only_held_out_digits(vrun):
    train, val = vrun.data.arrays["train_digits"], vrun.data.arrays["val_digits"]
    seen = {d.tobytes() for d in train}
    assert not any(d.tobytes() in seen for d in val)
    assert (vrun.data.raw("val", [3]) == vrun.data.raw("val", [3])).all()  # made again from its seed, the same
    assert vrun.data.raw("val", [0, 1]).shape == (2, 4, 1, 32, 32)


def test_sample_shape_and_continuation_keeps_the_given_frames(vrun, tmp_path):
    clip = vrun.data.raw("val", [0])[0]  # (4, 1, 32, 32)
    # Run
    clips = vrun.sample(2, seed=1)
    cont = vrun.continue_clip(clip, 5, given=3, n=2, seed=1)
    folder = cont.save(tmp_path / "c")
    # Assert
    assert clips.shape == (2, 4, 1, 32, 32) and clips.dtype == np.uint8
    assert cont.shape == (2, 8, 1, 32, 32) and cont.given == 3
    assert (np.asarray(cont)[:, :3] == clip[:3]).all()  # given frames unchanged, then 5 predicted ones
    assert (read_clip(folder / "continued-0000.gif")[:3] == clip[:3]).all()  # and so in the GIF
    assert (folder / "continued-0000.png").is_file() and (folder / "sheet.png").is_file()


def test_predictor_alone_is_deterministic(vrun):
    clip = vrun.data.raw("val", [1])[0]
    # Run: 0 steps is the motion predictor alone, no noise drawn
    a = vrun.continue_clip(clip, 5, given=2, steps=0, seed=1)
    b = vrun.continue_clip(clip, 5, given=2, steps=0, seed=2)
    # Assert
    assert (np.asarray(a) == np.asarray(b)).all() and (np.asarray(a)[0, :2] == clip[:2]).all()
    with pytest.raises(genlab.GenlabError, match="at least 1"):
        vrun.sample(1, steps=0)  # a clip from nothing needs the diffusion


def test_warp_moves_pixels_along_the_flow():
    frame = torch.full((1, 1, 16, 16), -1.0)
    frame[0, 0, 4:8, 4:8] = 1
    flows = torch.zeros(1, 3, 2, 16, 16)
    flows[0, 0, 0] = 3  # 3 pixels to the right
    flows[0, 1, 1] = -2  # 2 pixels up
    flows[0, 2, 0] = 0.5  # half a pixel: the square's light is shared, none of it lost
    # Run
    out = warp(frame, flows)
    # Assert
    assert torch.equal(out[0, 0, 0], torch.roll(frame[0, 0], 3, dims=1))
    assert torch.equal(out[0, 1, 0], torch.roll(frame[0, 0], -2, dims=0))
    assert torch.isclose(((out[0, 2] + 1) / 2).sum(), torch.tensor(16.0))


def test_motion_predictor_learns_to_move_a_square():
    # Setup: a bright square moving 2 px right a frame; 3 frames read, 2 to predict
    gen = torch.Generator().manual_seed(0)

    def batch(n):
        x = torch.full((n, 5, 1, 32, 32), -1.0)
        y0 = torch.randint(2, 20, (n,), generator=gen)
        x0 = torch.randint(2, 10, (n,), generator=gen)
        for i in range(n):
            for f in range(5):
                x[i, f, 0, y0[i] : y0[i] + 8, x0[i] + 2 * f : x0[i] + 2 * f + 8] = 1
        return x

    torch.manual_seed(0)
    net = MotionNet(channels=1, context=3, horizon=2, widths=(16, 32), groups=8)
    opt = torch.optim.AdamW(net.parameters(), 2e-3)
    real = torch.ones(16, 3, dtype=torch.bool)
    test = batch(16)
    copy = motion_loss(test[:, 2:3].expand(-1, 2, -1, -1, -1), test[:, 3:], torch.ones(16, 2)).mean()
    # Run
    for _ in range(60):
        x = batch(16)
        loss = motion_loss(warp(x[:, 2], net(x[:, :3], real)), x[:, 3:], torch.ones(16, 2)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        after = motion_loss(warp(test[:, 2], net(test[:, :3], real)), test[:, 3:], torch.ones(16, 2)).mean()
    # Assert: the predictor moves the square, well past copying the last frame
    assert after < 0.5 * copy, (float(after), float(copy))


def test_watermark_survives_on_every_frame(vrun, tmp_path):
    # Setup: real clips (digits on black, as a trained model makes them) through the run's release layer
    clips = vrun.release.made(Clips(vrun.data.raw("val", [0, 1])), action="test")
    # Run
    folder = clips.save(tmp_path / "w")
    verdict = verify(folder / "sample-0001.gif", runs=tmp_path)
    # Assert: every frame holds this run's payload, and the GIF's signature names the run
    assert verdict.watermark.found and verdict.watermark.detail["frames_marked"] == 4
    assert verdict.watermark.matches_manifest and verdict.provenance.status == "trusted"


def test_metrics_and_baselines():
    a = torch.rand(3, 1, 32, 32)
    given = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 0.25)])[None]  # (1, 2, 1, 4, 4)
    assert torch.allclose(ssim(a, a), torch.ones(3))
    assert ssim(a, 1 - a).mean() < 0.2
    assert torch.allclose(copy_last(given, 3), given[:, 1:].expand(-1, 3, -1, -1, -1))
    assert torch.allclose(linear(given, 3)[0, :, 0, 0, 0], torch.tensor([0.5, 0.75, 1.0]))  # clipped at 1


def test_eval_scores_clips_and_continuation(vrun):
    report = vrun.evaluate(n=4, given=2, save=False)
    curves = report["per_frame"]
    assert len(curves["fid"]) == 4 and report["given"] == 2 and report["feature_net_task"] == "classes"
    assert report["predictor"]["name"] and isinstance(report["predictor"]["beats_copy_last_1_5"], bool)
    for name in ("model", "copy_last", "linear", "predictor"):
        assert len(curves[f"mse_{name}"]) == len(curves[f"ssim_{name}"]) == 2  # the two frames after the prompt
    assert report["copy_last"]["mse"] == pytest.approx(np.mean(curves["mse_copy_last"]), abs=1e-6)
    assert report["motion"] > 0 and isinstance(report["beats_copy_last_1_5"], bool)


def test_continue_cli_and_bad_input(vrun, tmp_path):
    frames = vrun.data.raw("val", [0])[0][:, 0]  # (4, 32, 32)
    good = write_gif(tmp_path / "clip.gif", frames)
    truncated = tmp_path / "cut.gif"
    truncated.write_bytes(good.read_bytes()[:200])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(frames[0]).save(mixed / "0.png")
    Image.fromarray(frames[1][:16]).save(mixed / "1.png")
    # Run
    ok = genlab_cli("continue", vrun.path, good, "--frames", "3", "--given", "2", "--out", tmp_path / "out")
    held = genlab_cli("continue", vrun.path, "--held-out", "0", "--frames", "2", "--out", tmp_path / "held")
    bad = {
        "truncated": genlab_cli("continue", vrun.path, truncated, "--frames", "2"),
        "short": genlab_cli("continue", vrun.path, good, "--frames", "2", "--given", "9"),
        "mixed": genlab_cli("continue", vrun.path, mixed, "--frames", "2"),
        "zero": genlab_cli("continue", vrun.path, good, "--frames", "0"),
        "huge": genlab_cli("continue", vrun.path, good, "--frames", "1000000000"),  # refused, not run for ever
    }
    # Assert
    assert ok.returncode == 0 and held.returncode == 0, ok.stderr + held.stderr
    assert len(read_clip(tmp_path / "out" / "continued-0000.gif")) == 5
    for name, r in bad.items():
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, name
    assert "truncated" in bad["truncated"].stderr
    assert "4 frame(s)" in bad["short"].stderr
    assert "mixed sizes" in bad["mixed"].stderr
    assert "--frames" in bad["zero"].stderr and "--frames" in bad["huge"].stderr
