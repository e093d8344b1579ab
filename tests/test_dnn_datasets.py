"""Fashion-MNIST and CelebA loaders of Appendix E, read from tiny files in the real on-disk formats."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from pyro_vsc.data.celeba import CELEBA_ANNOTATION_FILES, celeba_transform, load_celeba
from pyro_vsc.data.fashion_mnist import FASHION_MNIST_ARCHIVES, load_fashion_mnist
from pyro_vsc.data.required_files import fetch_missing_files
from tests.image_data import CELEBA_HEIGHT as HEIGHT
from tests.image_data import CELEBA_WIDTH as WIDTH
from tests.image_data import write_celeba, write_fashion_mnist

# ---------------------------------------------------------------- Fashion-MNIST (IDX files)


@pytest.fixture
def fashion_mnist_root(tmp_path):
    """5 training and 3 test images with known pixels and labels in root/FashionMNIST/raw/."""
    return tmp_path, write_fashion_mnist(tmp_path, train_count=5, test_count=3)


def test_fashion_mnist_reads_idx_files_as_unit_interval_tensors(fashion_mnist_root):
    root, arrays = fashion_mnist_root
    train, val = load_fashion_mnist(root, train_size=4, val_size=3)
    assert (len(train), len(val)) == (4, 3)
    for dataset, (images, labels) in ((train, arrays["train"]), (val, arrays["t10k"])):
        for index in range(len(dataset)):
            image, label = dataset[index]
            assert image.shape == (1, 28, 28) and image.dtype == torch.float32
            torch.testing.assert_close(image[0], torch.from_numpy(images[index]).float() / 255)
            assert label == labels[index]
    # torchvision reads the decompressed files, which the loader wrote next to the archives.
    raw = root / "FashionMNIST" / "raw"
    assert all((raw / archive.removesuffix(".gz")).is_file() for archive in FASHION_MNIST_ARCHIVES)


def test_fashion_mnist_sizes_beyond_the_files_are_rejected(fashion_mnist_root):
    root, _ = fashion_mnist_root
    with pytest.raises(ValueError, match=r"asked for 60000 samples of the Fashion-MNIST training file.*holds 5"):
        load_fashion_mnist(root)  # the paper's 60,000 / 10,000
    with pytest.raises(ValueError, match=r"asked for 4 samples of the Fashion-MNIST test file.*holds 3"):
        load_fashion_mnist(root, train_size=5, val_size=4)
    with pytest.raises(ValueError, match="between 1 and 5"):
        load_fashion_mnist(root, train_size=0, val_size=3)


def test_fashion_mnist_missing_files_error_names_files_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_fashion_mnist(tmp_path, train_size=1, val_size=1)
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert all(archive in message for archive in FASHION_MNIST_ARCHIVES)
    assert "download=True" in message


def test_fashion_mnist_names_the_one_missing_file(fashion_mnist_root):
    root, _ = fashion_mnist_root
    (root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing: t10k-labels-idx1-ubyte\.gz\)"):
        load_fashion_mnist(root, train_size=1, val_size=1)


# ---------------------------------------------------------------- CelebA (aligned JPEGs + text files)

# Images 000001-000004 train, 000005-000006 valid, 000007-000008 test. (Each partition needs two
# or more images: torchvision 0.29 fails on a partition of one, squeezing its index list to 0-d.)
CELEBA_PARTITIONS = [0, 0, 0, 0, 1, 1, 2, 2]
CROP = 140
CROP_LEFT, CROP_TOP = (WIDTH - CROP) // 2, (HEIGHT - CROP) // 2


def _red_level(image_number):
    """Each image's red level codes its number, so a loaded sample tells which file it came from."""
    return 255 - 25 * image_number


def _celeba_pixels(image_number):
    """Blue outside the central 140x140 crop; inside it, left half red (level codes the image), right half green."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[..., 2] = 255
    crop = pixels[CROP_TOP : CROP_TOP + CROP, CROP_LEFT : CROP_LEFT + CROP]
    crop[...] = 0
    crop[:, : CROP // 2, 0] = _red_level(image_number)
    crop[:, CROP // 2 :, 1] = 255
    return pixels


@pytest.fixture
def celeba_root(tmp_path):
    """Eight images with the five annotation files, in the layout and text formats of the release."""
    attributes = np.random.default_rng(1).choice([-1, 1], size=(len(CELEBA_PARTITIONS), 40))
    write_celeba(tmp_path, CELEBA_PARTITIONS, attributes, _celeba_pixels)
    return tmp_path, attributes


def _load_fixture(root, **kwargs):
    return load_celeba(root, **{"train_size": 4, "val_size": 2, "verify_checksums": False, **kwargs})


def _assert_unflipped_crop_of(image, image_number):
    """The 64x64 output shows only the central crop: red left half at the image's level, green right half, no blue.

    Tolerance 0.05: JPEG (quality 95, no chroma subsampling) and the antialiased 140 -> 64
    resize blur the colour edges by about a pixel; the margins below stay clear of the edges.
    A crop of 150 instead of 140 would bring a ~2-pixel blue frame into the output.
    """
    assert image.shape == (3, 64, 64)
    left, right = image[:, :, :28], image[:, :, 36:]
    assert abs(left[0].mean().item() - _red_level(image_number) / 255) < 0.05
    assert left[1].max() < 0.05 and right[0].max() < 0.05 and right[1].min() > 0.95
    assert image[2].max() < 0.05


def test_celeba_val_images_are_cropped_resized_and_deterministic(celeba_root):
    root, _ = celeba_root
    _, val = _load_fixture(root)
    first, again = val[0][0], val[0][0]
    assert torch.equal(first, again)
    _assert_unflipped_crop_of(first, image_number=7)  # the 'test' partition starts at 000007.jpg
    _assert_unflipped_crop_of(val[1][0], image_number=8)


def test_celeba_train_images_are_flipped_at_random(celeba_root):
    root, _ = celeba_root
    train, _ = _load_fixture(root)
    unflipped = celeba_transform(train=False)(Image.open(root / "celeba" / "img_align_celeba" / "000001.jpg"))
    _assert_unflipped_crop_of(unflipped, image_number=1)
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(16)]
    flipped = [torch.equal(draw, unflipped.flip(-1)) for draw in draws]
    assert all(f or torch.equal(draw, unflipped) for f, draw in zip(flipped, draws))
    # Fair coin: both outcomes fail to appear in 16 draws with probability 2 * 2**-16 (fixed seed here).
    assert any(flipped) and not all(flipped)
    assert not any(isinstance(t, transforms.RandomHorizontalFlip) for t in celeba_transform(train=False).transforms)


def test_celeba_flip_last_equals_the_published_flip_first_order():
    """Flipping before the centre crop and resize (published code) or after them (here) gives the same tensor."""
    pixels = np.random.default_rng(2).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    flip_first = transforms.Compose(
        [transforms.RandomHorizontalFlip(p=1.0), transforms.CenterCrop(140), transforms.Resize(64), transforms.ToTensor()]
    )
    torch.testing.assert_close(flip_first(image), celeba_transform(train=False)(image).flip(-1), atol=0, rtol=0)


def test_celeba_attributes_are_binary_targets_in_file_order(celeba_root):
    root, attributes = celeba_root
    train, val = _load_fixture(root, train_size=3, val_size=1)
    assert (len(train), len(val)) == (3, 1)
    expected = torch.from_numpy((attributes + 1) // 2)
    for index in range(3):
        assert torch.equal(train[index][1], expected[index])
    assert torch.equal(val[0][1], expected[6])
    assert set(torch.stack([train[i][1] for i in range(3)]).unique().tolist()) == {0, 1}


def test_celeba_official_validation_partition_on_request(celeba_root):
    root, attributes = celeba_root
    _, val = _load_fixture(root, val_size=1, val_partition="valid")
    _assert_unflipped_crop_of(val[0][0], image_number=5)
    with pytest.raises(ValueError, match="val_partition must be 'test'"):
        _load_fixture(root, val_partition="validation")


def test_celeba_sizes_beyond_the_partitions_are_rejected(celeba_root):
    root, _ = celeba_root
    with pytest.raises(ValueError, match=r"asked for 150000 samples of the CelebA 'train' partition.*holds 4"):
        load_celeba(root, verify_checksums=False)  # the paper's 150,000 / 19,000
    with pytest.raises(ValueError, match=r"asked for 3 samples of the CelebA 'test' partition.*holds 2"):
        _load_fixture(root, val_size=3)


def test_celeba_missing_files_error_names_files_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        _load_fixture(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "celeba") in message
    assert "img_align_celeba/" in message and "download=True" in message
    assert set(CELEBA_ANNOTATION_FILES) == {
        "list_attr_celeba.txt",
        "identity_CelebA.txt",
        "list_bbox_celeba.txt",
        "list_landmarks_align_celeba.txt",
        "list_eval_partition.txt",
    }
    assert all(filename in message for filename in CELEBA_ANNOTATION_FILES)


def test_celeba_names_the_one_missing_file(celeba_root):
    root, _ = celeba_root
    (root / "celeba" / "list_bbox_celeba.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing: list_bbox_celeba\.txt\)"):
        _load_fixture(root)


def test_celeba_checksums_of_the_release_are_enforced_by_default(celeba_root):
    root, _ = celeba_root
    with pytest.raises(RuntimeError) as error:
        _load_fixture(root, verify_checksums=True)
    message = str(error.value)
    assert all(filename in message for filename in CELEBA_ANNOTATION_FILES)
    assert "verify_checksums=False" in message


# ---------------------------------------------------------------- what a loader does about missing files

@pytest.mark.parametrize("download,outcome", [(False, "not asked"), (True, "fails"), (True, "succeeds")])
def test_missing_files_are_fetched_if_asked_else_named(tmp_path, download, outcome):
    """Both loaders' rule (fetch_missing_files): download only when asked and files are missing;
    files still missing afterwards stop with one error naming them, the folder and what the
    download did (its error chained)."""
    present = set()
    failure = OSError("no network")

    def fetch():
        if outcome == "fails":
            raise failure
        present.update({"a.txt", "b.txt"})

    def check():
        fetch_missing_files(tmp_path, lambda: [f for f in ("a.txt", "b.txt") if f not in present],
                            download, fetch, dataset="Toy", placement="Put them there.",
                            download_hint="Or call with download=True.", download_errors=(OSError,))

    if outcome == "succeeds":
        check()
        assert present == {"a.txt", "b.txt"}
        return
    with pytest.raises(FileNotFoundError) as error:
        check()
    last = "Downloading them failed: no network" if download else "Or call with download=True."
    assert str(error.value) == f"Toy files not found in {tmp_path} (missing: a.txt, b.txt).\nPut them there.\n{last}"
    assert error.value.__cause__ is (failure if download else None)
