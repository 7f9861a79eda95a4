import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from genlab.errors import GenlabError
from genlab.responsible.image_watermark import DEFAULT_KEY, ImageMark, detect, embed

PAYLOAD = 0xC0FFEE42


def digit() -> np.ndarray:  # (1, 28, 28): an MNIST-like digit, a white stroke ring on flat black
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot(yy - 14, (xx - 14) * 1.4)
    return np.where((r > 6) & (r < 9.5), 255, 0).astype(np.uint8)[None]


def texture(c: int, size: int, seed: int = 0) -> np.ndarray:  # (c, size, size): smooth random "natural" texture
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=(c, size, size)), sigma=(0, size / 16, size / 16))
    fine = ndimage.gaussian_filter(rng.normal(size=(c, size, size)), sigma=(0, 1, 1))
    return np.clip(128 + 50 * smooth / smooth.std() + 4 * fine / fine.std(), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:  # (C, H, W) through a JPEG file
    buf = io.BytesIO()
    Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)).save(buf, "JPEG", quality=quality)
    a = np.asarray(Image.open(buf))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def half(x: np.ndarray) -> np.ndarray:  # (C, H, W) resized to 50%, bicubic
    im = Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0))
    a = np.asarray(im.resize((x.shape[2] // 2, x.shape[1] // 2), Image.Resampling.BICUBIC))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def assert_found(mark: ImageMark, payload: int = PAYLOAD) -> None:
    assert mark.found and mark.payload == payload, mark
    assert mark.p_value <= 1e-6 and mark.score > 9 and 0.5 < mark.bit_confidence <= 1


@pytest.mark.parametrize("image", [digit(), texture(1, 64), texture(3, 128)], ids=["mnist28", "grey64", "rgb128"])
def test_round_trip_keeps_shape_dtype_and_payload(image):
    marked = embed(image, PAYLOAD)
    assert marked.shape == image.shape and marked.dtype == np.uint8
    assert psnr(image, marked) > 35
    assert_found(detect(marked))


def test_mnist_digit_survives_crop_brightness_and_upscaling():
    marked = embed(digit(), PAYLOAD)
    assert_found(detect(marked[:, 1:-1, 1:-1].copy()))  # 1 px off each side
    assert_found(detect(np.clip(marked * 1.2, 0, 255).astype(np.uint8)))
    up = np.asarray(Image.fromarray(marked[0]).resize((112, 112), Image.Resampling.BICUBIC))[None]
    assert_found(detect(up))


def test_batch_is_marked_image_by_image():
    batch = np.stack([texture(3, 64, seed=s) for s in range(3)])  # (3, 3, 64, 64)
    marked = embed(batch, 7)
    assert marked.shape == batch.shape and marked.dtype == np.uint8
    assert [detect(m).payload for m in marked] == [7, 7, 7]


def test_survives_jpeg_and_half_size_on_128px_image():
    marked = embed(texture(3, 128, seed=1), PAYLOAD)
    assert_found(detect(jpeg(marked, 70)))
    assert_found(detect(half(marked)))


@pytest.mark.parametrize("image", [
    np.zeros((1, 64, 64), np.uint8), np.full((3, 50, 70), 128, np.uint8),
    np.random.default_rng(3).integers(0, 256, (3, 96, 96), dtype=np.uint8), texture(3, 128, seed=4), digit(),
], ids=["black", "grey", "noise", "texture", "digit"])
def test_unmarked_images_are_not_found(image):
    mark = detect(image)
    assert not mark.found and mark.payload is None and mark.score < 9 and mark.p_value > 1e-6


def test_wrong_key_does_not_find_the_mark():
    marked = embed(texture(3, 96, seed=5), PAYLOAD, key=1234)
    assert_found(detect(marked, key=1234))
    assert not detect(marked).found and not detect(marked, key=1235).found


def test_too_small_image_is_reported_not_searched():
    mark = detect(np.zeros((1, 16, 16), np.uint8))
    assert not mark.found and "too small" in mark.reason


@pytest.mark.parametrize("images, payload, match", [
    (np.zeros((1, 32, 32), np.float32), 1, "uint8"),
    (np.zeros((2, 32, 32), np.uint8), 1, "C = 1 or 3"),
    (np.zeros((32, 32), np.uint8), 1, "shape"),
    (np.zeros((1, 32, 32), np.uint8), 2**32, "payload"),
    (np.zeros((1, 32, 32), np.uint8), -1, "payload"),
    (np.zeros((1, 16, 16), np.uint8), 1, "too small"),
])
def test_bad_input_is_a_genlab_error(images, payload, match):
    with pytest.raises(GenlabError, match=match):
        embed(images, payload)


def test_detect_rejects_bad_images_and_keys():
    with pytest.raises(GenlabError, match="uint8"):
        detect(np.zeros((1, 32, 32)))
    with pytest.raises(GenlabError, match=r"\(C, H, W\)"):
        detect(np.zeros((2, 1, 32, 32), np.uint8))
    with pytest.raises(GenlabError, match="key"):
        detect(np.zeros((1, 32, 32), np.uint8), key=-1)
    assert isinstance(DEFAULT_KEY, int)


def test_robustness_note_states_what_was_measured_at_the_nearest_smaller_side():
    from genlab.responsible.image_watermark import MEASURED_SURVIVAL, MIN_SIZE, SURVIVAL_ATTACKS, robustness_note

    # the table: every measured side has a rate in [0, 1] for every attack; rotations and flips are not survived
    assert sorted(MEASURED_SURVIVAL) == [28, 64, 256]
    for rates in MEASURED_SURVIVAL.values():
        assert list(rates) == list(SURVIVAL_ATTACKS) and all(0.0 <= r <= 1.0 for r in rates.values())
        assert max(rates["rotate90"], rates["flip"]) <= 0.1
    # the note: the nearest measured side at or below, survived and lost attacks apart
    n28 = robustness_note(28)
    kept, lost = n28.split("It was not found after")
    assert n28.startswith("Measured on 28x28 images:") and "lossless copies" in kept
    assert "JPEG 75" in lost and "a 50% resize and back" in lost and "mirroring" in lost
    assert robustness_note(32) == n28 and "not 25x25" in robustness_note(25)
    assert robustness_note(100).startswith("Measured on 64x64") and robustness_note(1024).startswith("Measured on 256")
    assert "JPEG 50" in robustness_note(256).split("It was not found")[0]
    assert "cannot carry" in robustness_note(MIN_SIZE - 1)


def test_the_bench_measures_the_attacks_and_sides_the_table_holds():
    import importlib.util
    from pathlib import Path

    from genlab.responsible.image_watermark import MEASURED_SURVIVAL, SURVIVAL_ATTACKS

    path = Path(__file__).resolve().parents[1] / "bench" / "watermark_images.py"
    spec = importlib.util.spec_from_file_location("bench_watermark_images", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert list(bench.SURVIVAL_ATTACKS) == list(SURVIVAL_ATTACKS) and bench.SIDES == tuple(MEASURED_SURVIVAL)
    for attack in bench.SURVIVAL_ATTACKS.values():  # each keeps (H, W, C) uint8
        out = attack(np.zeros((64, 64, 3), np.uint8))
        assert out.dtype == np.uint8 and out.ndim == 3
