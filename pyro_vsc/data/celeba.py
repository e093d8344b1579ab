"""CelebA (Liu et al., 2015) for the DNN-generator experiment (§4.2, Appendix E).

Appendix E: "we use 150,000 training samples and 19,000 validation samples. All samples are
center cropped to 140 x 140 pixels and then resized to 64 x 64. We also apply a random
horizontal flip to training samples only."

Which images: the authors' published ``utils/data_loader.py`` takes the first 150,000 images
of torchvision's ``split='train'`` partition (162,770 images) and the first 19,000 of
``split='test'`` (19,962 images) as the validation set; the official 'valid' partition
(19,867 images) is not used. :func:`load_celeba` does the same by default (first items in file
order, not a random draw); ``val_partition="valid"`` selects the official validation partition.

Targets are the 40 binary attributes as a ``(40,)`` integer tensor in {0, 1} (the file's -1/1
mapped by torchvision), used for the point-biserial correlations of Fig. 8.

Checksums: torchvision's ``CelebA`` verifies the MD5 sums of the five annotation files of the
official release every time it is constructed (only the image folder is checked for existence
alone), so any other copy, including a tiny test fixture, is rejected. ``verify_checksums=False``
uses :class:`CelebAWithoutChecksums`, which reads the very same files with torchvision's own
code but checks them for existence only.
"""

from pathlib import Path

from torchvision import transforms
from torchvision.datasets import CelebA
from torchvision.datasets.utils import check_integrity

from pyro_vsc.data.leading_subset import leading_subset
from pyro_vsc.data.required_files import fetch_missing_files

CELEBA_IMAGE_FOLDER = "img_align_celeba"
"""Folder of the aligned and cropped 178x218 JPEGs 000001.jpg ... 202599.jpg (img_align_celeba.zip)."""

CELEBA_ANNOTATION_FILES = tuple(filename for _file_id, _md5, filename in CelebA.file_list if filename.endswith(".txt"))
"""The annotation files torchvision reads (and checks): attributes, identities, boxes, landmarks, partition."""

CELEBA_CROP_SIZE = 140
CELEBA_IMAGE_SIZE = 64


class CelebAWithoutChecksums(CelebA):
    """torchvision's ``CelebA``, checking the annotation files for existence instead of MD5 sums.

    torchvision's integrity check calls ``check_integrity(path, md5)`` for each entry of the
    class attribute ``file_list``; with ``md5=None`` that function only tests that the file
    exists. This subclass overrides ``file_list`` with the same files and no sums; reading,
    splitting and the -1/1 -> 0/1 attribute mapping are torchvision's unchanged.
    """

    file_list = [(file_id, None, filename) for file_id, _md5, filename in CelebA.file_list]


def celeba_folder(root) -> Path:
    """The folder torchvision's ``CelebA(root)`` reads: ``root/celeba``."""
    return Path(root) / CelebA.base_folder


def celeba_transform(train: bool) -> transforms.Compose:
    """Appendix E preprocessing: centre crop 140x140, resize to 64x64, to [0, 1] tensor; flip on training only.

    The flip is applied last, on the tensor. The centre crop of a 178-pixel-wide image drops 19
    columns on each side, so cropping commutes with the flip, and so does the resize (a mirror
    symmetric resampling), so this equals the published code's flip-first order.
    """
    steps = [
        transforms.CenterCrop(CELEBA_CROP_SIZE),
        transforms.Resize(CELEBA_IMAGE_SIZE),
        transforms.ToTensor(),
    ]
    if train:
        steps.append(transforms.RandomHorizontalFlip())
    return transforms.Compose(steps)


def load_celeba(
    root,
    train_size: int = 150_000,
    val_size: int = 19_000,
    val_partition: str = "test",
    download: bool = False,
    verify_checksums: bool = True,
):
    """Return ``(train, val)``: ``(image (3, 64, 64) in [0, 1], attributes (40,) in {0, 1})`` datasets.

    :param root: dataset root; the files live in ``root/celeba/``.
    :param int train_size: leading images of the 'train' partition (150,000 in the paper).
    :param int val_size: leading images of ``val_partition`` (19,000 in the paper).
    :param str val_partition: "test" (as the published code) or "valid" (the official validation partition).
    :param bool download: fetch the files with torchvision when they are missing (needs the
        ``gdown`` package and access to Google Drive).
    :param bool verify_checksums: check the annotation files against the official MD5 sums
        (torchvision's default); ``False`` only checks that they exist.
    :raises FileNotFoundError: when files are missing and cannot (or may not) be downloaded; the
        message names every required file and the folder.
    :raises RuntimeError: when an annotation file does not match its official MD5 sum.
    :raises ValueError: for a bad ``val_partition`` or a size larger than the partition.
    """
    if val_partition not in ("test", "valid"):
        raise ValueError(f"val_partition must be 'test' (as the published code) or 'valid', got {val_partition!r}")
    dataset_class = CelebA if verify_checksums else CelebAWithoutChecksums
    folder = celeba_folder(root)

    # any download error is reported: torchvision raises RuntimeError, gdown and requests their own types
    fetch_missing_files(
        folder, lambda: _missing_files(folder), download,
        lambda: dataset_class(root, split="train", download=True), dataset="CelebA",
        placement=f"Place the official release there: the folder {CELEBA_IMAGE_FOLDER}/ with the aligned "
                  f"images 000001.jpg ... 202599.jpg (unzip img_align_celeba.zip) and the files "
                  f"{', '.join(CELEBA_ANNOTATION_FILES)} (from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html).",
        download_hint="Or call with download=True where the network allows (needs the 'gdown' package).")
    if verify_checksums:
        _check_checksums(folder)

    train = dataset_class(root, split="train", target_type="attr", transform=celeba_transform(train=True))
    val = dataset_class(root, split=val_partition, target_type="attr", transform=celeba_transform(train=False))
    return (
        leading_subset(train, train_size, f"CelebA 'train' partition in {folder}"),
        leading_subset(val, val_size, f"CelebA '{val_partition}' partition in {folder}"),
    )


def _missing_files(folder: Path) -> list[str]:
    missing = [filename for filename in CELEBA_ANNOTATION_FILES if not (folder / filename).is_file()]
    if not (folder / CELEBA_IMAGE_FOLDER).is_dir():
        missing.insert(0, CELEBA_IMAGE_FOLDER + "/")
    return missing


def _check_checksums(folder: Path) -> None:
    """Name the annotation files that torchvision's MD5 check would reject, before it rejects them silently."""
    expected = {filename: md5 for _file_id, md5, filename in CelebA.file_list}
    mismatched = [
        filename
        for filename in CELEBA_ANNOTATION_FILES
        if not check_integrity(str(folder / filename), expected[filename])
    ]
    if mismatched:
        raise RuntimeError(
            f"CelebA annotation files in {folder} do not match the MD5 sums of the official release: "
            f"{', '.join(mismatched)}. Replace them with the official files, or pass verify_checksums=False "
            "if this copy is known to be good (only their existence is then checked)."
        )
