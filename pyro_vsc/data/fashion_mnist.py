"""Fashion-MNIST (Xiao et al., 2017) for the DNN-generator experiment (§4.2, Appendix E).

Appendix E: "For FMNIST, we train with all 60,000 training samples and evaluate on all 10,000
validation samples", i.e. the official train and test files. Images are 1x28x28 tensors in
[0, 1] (``ToTensor``), the scale of the decoders' Sigmoid output; targets are the class labels
0-9 (unused by the unsupervised experiment).
"""

from pathlib import Path

from torchvision import transforms
from torchvision.datasets import FashionMNIST
from torchvision.datasets.utils import extract_archive

from pyro_vsc.data.leading_subset import leading_subset
from pyro_vsc.data.required_files import fetch_missing_files

FASHION_MNIST_ARCHIVES = tuple(name for name, _md5 in FashionMNIST.resources)
"""The four gzipped IDX files of the official release, in torchvision's order."""


def fashion_mnist_raw_folder(root) -> Path:
    """The folder where torchvision's ``FashionMNIST(root)`` looks for the IDX files: ``root/FashionMNIST/raw``."""
    return Path(root) / FashionMNIST.__name__ / "raw"


def load_fashion_mnist(root, train_size: int = 60_000, val_size: int = 10_000, download: bool = False):
    """Return ``(train, val)``: the first ``train_size`` / ``val_size`` images of the official splits.

    torchvision reads the *decompressed* IDX files from ``root/FashionMNIST/raw/``; when only
    the ``.gz`` files are there (e.g. copied by hand), they are decompressed in place first.
    That step is local and does not check the files' MD5 sums (torchvision checks those only
    when it downloads).

    :param root: dataset root; the files live in ``root/FashionMNIST/raw/``.
    :param int train_size: leading images of the training file (60,000 in the paper).
    :param int val_size: leading images of the test file, used for validation (10,000 in the paper).
    :param bool download: fetch the files with torchvision when they are missing.
    :raises FileNotFoundError: when files are missing and cannot (or may not) be downloaded;
        the message names the files and the folder.
    :raises ValueError: when a requested size exceeds the images in the files.
    """
    raw_folder = fashion_mnist_raw_folder(root)
    _decompress_local_archives(raw_folder)
    fetch_missing_files(
        raw_folder, lambda: _missing_files(raw_folder), download,
        lambda: FashionMNIST(root, train=True, download=True), dataset="Fashion-MNIST",
        placement=f"Place the four IDX files of the official release in that folder: "
                  f"{', '.join(FASHION_MNIST_ARCHIVES)} (from https://github.com/zalandoresearch/fashion-mnist; "
                  "gzipped as released, or decompressed without '.gz').",
        download_hint="Or call with download=True where the network allows.",
        download_errors=(RuntimeError, OSError))  # network failures: URLError is an OSError

    to_tensor = transforms.ToTensor()
    train = FashionMNIST(root, train=True, transform=to_tensor)
    val = FashionMNIST(root, train=False, transform=to_tensor)
    return (
        leading_subset(train, train_size, f"Fashion-MNIST training file in {raw_folder}"),
        leading_subset(val, val_size, f"Fashion-MNIST test file in {raw_folder}"),
    )


def _decompress_local_archives(raw_folder: Path) -> None:
    for archive in FASHION_MNIST_ARCHIVES:
        archive_path = raw_folder / archive
        if archive_path.is_file() and not (raw_folder / archive_path.stem).is_file():
            extract_archive(str(archive_path))


def _missing_files(raw_folder: Path) -> list[str]:
    """Archives whose decompressed IDX file (what torchvision reads) is absent."""
    return [archive for archive in FASHION_MNIST_ARCHIVES if not (raw_folder / Path(archive).stem).is_file()]
