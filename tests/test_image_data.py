import numpy as np
import pytest
from PIL import Image

from genlab.registry import get_modality
from genlab.data.images import ImageDataConfig, _fashion_installed, from_unit, prepare_images, to_unit
from genlab.errors import GenlabError
from genlab.sample.images import grid, load_image, save_gif, save_samples


def _png(path, mode="L", size=(20, 30), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_builtin_image_datasets_scale_once_to_minus_one_one(tmp_path):
    data = prepare_images(get_modality("image").resolve("mnist"), ImageDataConfig(), tmp_path / "m")
    assert data.shape == (1, 28, 28) and data.meta["n_train"] == 4500 and data.meta["n_val"] == 500
    assert data.x["train"].min() == -1 and data.x["train"].max() == 1
    assert sorted(np.bincount(data.y["val"].numpy())) == [50] * 10  # stratified: sorted-by-class data is shuffled
    x = (np.arange(256, dtype=np.uint8)).reshape(1, 1, 16, 16)
    assert (from_unit(to_unit(x)) == x).all()


def test_user_folder_with_labels_resized_and_cropped(tmp_path):
    for label in ("cats", "dogs"):
        for i in range(6):
            _png(tmp_path / "pics" / label / f"{i}.png", size=(40 + i, 30))
    data = prepare_images(get_modality("image").resolve(str(tmp_path / "pics")), ImageDataConfig(size=16), tmp_path / "d")
    assert data.shape == (1, 16, 16) and data.meta["class_names"] == ["cats", "dogs"]
    assert data.meta["n_train"] + data.meta["n_val"] == 12


def test_mixed_modes_need_a_choice(tmp_path):
    _png(tmp_path / "a.png", "L")
    _png(tmp_path / "b.png", "RGB")
    with pytest.raises(GenlabError, match="mixes grey .* and colour .* set data.channels"):
        prepare_images(get_modality("image").resolve(str(tmp_path)), ImageDataConfig(), tmp_path / "d")
    for i in range(8):
        _png(tmp_path / f"c{i}.png", "L")
    data = prepare_images(get_modality("image").resolve(str(tmp_path)), ImageDataConfig(channels=3, size=8), tmp_path / "d")
    assert data.shape == (3, 8, 8)


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"])
def test_unreadable_or_truncated_images_are_named(tmp_path, content):
    _png(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(GenlabError, match=r"bad.png: cannot read this image"):
        prepare_images(get_modality("image").resolve(str(tmp_path)), ImageDataConfig(), tmp_path / "d")


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(GenlabError, match="holds no PNG or JPEG images"):
        get_modality("image").resolve(str(tmp_path))


def test_writers(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 1, 8, 8), dtype=np.uint8)
    paths = save_samples(images, tmp_path / "s")
    assert len(paths) == 5 and (tmp_path / "s" / "grid.png").is_file()
    assert (load_image(paths[2]) == images[2]).all()  # PNG round trip is exact
    assert grid(images, nrow=5, pad=1).shape == (1, 10, 46)
    save_gif(images, tmp_path / "a.gif")
    assert Image.open(tmp_path / "a.gif").n_frames == 8  # forward, then back


@pytest.mark.skipif(not _fashion_installed(), reason="optional Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_reads_the_idx_files(tmp_path):
    data = prepare_images(get_modality("image").resolve("fashion-mnist"), ImageDataConfig(), tmp_path / "f")
    assert data.meta["n_train"] == 60000 and data.meta["n_val"] == 10000 and data.shape == (1, 28, 28)
    assert data.meta["class_names"][9] == "Ankle boot" and int(data.y["val"].max()) == 9
