"""Tiny Fashion-MNIST and CelebA folders in the real on-disk formats, written by tests (no network)."""

import gzip
import struct

import numpy as np
from PIL import Image

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

CELEBA_ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_WIDTH, CELEBA_HEIGHT = 178, 218  # the aligned images are 178 wide, 218 high


def write_idx_gz(path, magic, array):
    """IDX format: big-endian magic, big-endian uint32 sizes, then the uint8 data; gzipped as released."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root, train_count, test_count, seed=0):
    """Random 28x28 uint8 images and labels 0-9 in root/FashionMNIST/raw/ (the four .gz files).

    :returns: ``{"train": (images, labels), "t10k": (images, labels)}`` as numpy arrays.
    """
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", train_count), ("t10k", test_count)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        write_idx_gz(raw / f"{split}-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC, images)
        write_idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", IDX_LABELS_MAGIC, labels)
        arrays[split] = (images, labels)
    return arrays


def _write_rows(path, rows, header_lines=()):
    path.write_text("".join(line + "\n" for line in (*header_lines, *rows)))


def write_celeba(root, partitions, attributes, pixels_of):
    """The CelebA release layout in root/celeba/: JPEGs 000001.jpg … and the five annotation files.

    :param partitions: partition of each image (0 train, 1 valid, 2 test).
    :param attributes: (n, 40) array of -1/1 labels, as in list_attr_celeba.txt.
    :param pixels_of: image number (from 1) → uint8 array (218, 178, 3).
    """
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{number:06d}.jpg" for number in range(1, len(partitions) + 1)]
    for number, name in enumerate(names, start=1):
        Image.fromarray(pixels_of(number)).save(folder / "img_align_celeba" / name, format="JPEG",
                                                quality=95, subsampling=0)
    count = [str(len(names))]
    _write_rows(
        folder / "list_attr_celeba.txt",
        [f"{name} " + " ".join(f"{value:2d}" for value in row) for name, row in zip(names, attributes)],
        header_lines=(*count, " ".join(CELEBA_ATTRIBUTE_NAMES) + " "),
    )
    _write_rows(folder / "list_eval_partition.txt", [f"{name} {p}" for name, p in zip(names, partitions)])
    _write_rows(folder / "identity_CelebA.txt", [f"{name} {1000 + i}" for i, name in enumerate(names)])
    _write_rows(
        folder / "list_bbox_celeba.txt",
        [f"{name}    95  71 226 313" for name in names],
        header_lines=(*count, "image_id x_1 y_1 width height"),
    )
    _write_rows(
        folder / "list_landmarks_align_celeba.txt",
        [f"{name}  69  109  106  113   77  142   73  152  108  154" for name in names],
        header_lines=(
            *count,
            "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y",
        ),
    )
