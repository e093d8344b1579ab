"""Your own images as patch data (``data.images=<folder|file|stack>``): read as grayscale the way
the default photographs are, whitened with the same filter, patches drawn by the same sampler."""

import numpy as np
import PIL.Image
import pytest
import skimage.data
import tifffile
import torch

from pyro_vsc.data import (
    SKIMAGE_PHOTOGRAPHS,
    extract_patches,
    load_whitened_patches,
    read_grayscale,
    whiten_images,
)
from pyro_vsc.data import image_sources
from pyro_vsc.data.natural_images import largest_centred_square

#: ITU-R BT.709 luminance weights, those of skimage.color.rgb2gray (the default photographs').
LUMA = np.array([0.2125, 0.7154, 0.0721])
SPLIT_FIELDS = ("train", "val", "mean", "std", "train_positions", "val_positions")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _smooth(height, width, seed=0):
    """A natural-looking image in [0, 1]: a random walk in both directions, rescaled."""
    walk = _rng(seed).standard_normal((height, width)).cumsum(0).cumsum(1)
    return (walk - walk.min()) / np.ptp(walk)


def _assert_same_split(first, second):
    for name in SPLIT_FIELDS:
        torch.testing.assert_close(getattr(first, name), getattr(second, name), rtol=0, atol=0,
                                   msg=lambda message, name=name: f"{name}: {message}")


# ---------------------------------------------------------------------------------------------
# grayscale conversion, format by format


def _write_pil(path, array):
    PIL.Image.fromarray(array).save(path)  # the mode follows the array: L, I;16, LA, RGB, RGBA, 1
    return path


def _case(name, path_name, write, expected):
    return pytest.param(path_name, write, expected, id=name)


GRAY8 = _rng(2).integers(0, 256, (12, 17), dtype=np.uint8)
GRAY16 = _rng(3).integers(0, 65536, (12, 17), dtype=np.uint16)
RGB8 = _rng(1).integers(0, 256, (12, 17, 3), dtype=np.uint8)
RGBA8 = np.concatenate([RGB8, _rng(4).integers(0, 256, (12, 17, 1), dtype=np.uint8)], axis=2)
RGB16 = _rng(5).integers(0, 65536, (12, 17, 3), dtype=np.uint16)
FLOAT = _rng(6).standard_normal((12, 17)).astype(np.float32) * 3 + 10


def _over_white(colour, alpha):
    return colour * alpha + (1 - alpha)


@pytest.mark.parametrize("path_name, write, expected", [
    _case("8-bit gray PNG", "a.png", lambda p: _write_pil(p, GRAY8), GRAY8 / 255),
    _case("16-bit gray PNG", "a.png", lambda p: _write_pil(p, GRAY16), GRAY16 / 65535),
    _case("RGB PNG", "a.png", lambda p: _write_pil(p, RGB8), RGB8 / 255 @ LUMA),
    _case("RGBA PNG (over white)", "a.png", lambda p: _write_pil(p, RGBA8),
          _over_white(RGB8 / 255, RGBA8[..., 3:] / 255) @ LUMA),
    _case("gray + alpha PNG (over white)", "a.png",
          lambda p: _write_pil(p, np.stack([GRAY8, RGBA8[..., 3]], axis=2)),
          _over_white(GRAY8 / 255, RGBA8[..., 3] / 255)),
    _case("1-bit PNG", "a.png", lambda p: _write_pil(p, GRAY8 > 127), (GRAY8 > 127).astype(float)),
    _case("RGB TIFF", "a.tif", lambda p: tifffile.imwrite(p, RGB8), RGB8 / 255 @ LUMA),
    _case("16-bit gray TIFF", "a.tiff", lambda p: tifffile.imwrite(p, GRAY16), GRAY16 / 65535),
    _case("16-bit RGB TIFF", "a.tif", lambda p: tifffile.imwrite(p, RGB16), RGB16 / 65535 @ LUMA),
    _case("planar RGB TIFF", "a.tif",
          lambda p: tifffile.imwrite(p, np.moveaxis(RGB8, 2, 0), photometric="rgb",
                                     planarconfig="separate"), RGB8 / 255 @ LUMA),
    _case("min-is-white TIFF", "a.tif",
          lambda p: tifffile.imwrite(p, GRAY8, photometric="miniswhite"), 1 - GRAY8 / 255),
    _case("float32 TIFF", "a.tif", lambda p: tifffile.imwrite(p, FLOAT), FLOAT.astype(float)),
    _case("2-D .npy", "a.npy", lambda p: np.save(p, FLOAT), FLOAT.astype(float)),
])
def test_each_format_is_read_as_the_default_photographs_grayscale(path_name, write, expected, tmp_path):
    path = tmp_path / path_name
    write(path)
    gray = read_grayscale(path)
    assert gray.dtype == np.float64 and gray.shape == (12, 17)
    np.testing.assert_allclose(gray, expected, rtol=0, atol=1e-12)


def test_a_palette_image_is_read_as_its_colours(tmp_path):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [40, 80, 120]], dtype=np.uint8)
    indices = _rng().integers(0, 4, (12, 17))
    image = PIL.Image.new("P", (17, 12))
    image.putpalette(colours.ravel().tolist())
    image.putdata(indices.ravel().tolist())
    image.save(tmp_path / "palette.png")
    assert PIL.Image.open(tmp_path / "palette.png").mode == "P"
    np.testing.assert_allclose(read_grayscale(tmp_path / "palette.png"), colours[indices] / 255 @ LUMA,
                               rtol=0, atol=1e-12)
    colourmap = np.zeros((3, 256), dtype=np.uint16)  # a TIFF palette holds 16-bit colours
    colourmap[:, :4] = colours.T.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "palette.tif", indices.astype(np.uint8), photometric="palette",
                     colormap=colourmap)
    np.testing.assert_allclose(read_grayscale(tmp_path / "palette.tif"), colours[indices] / 255 @ LUMA,
                               rtol=0, atol=1e-12)


def test_a_jpeg_is_read_upright_by_its_exif_orientation(tmp_path):
    """Orientation 6 (rotate 90° clockwise to view), as phones write portrait photographs."""
    stored = (_smooth(24, 40) * 255).astype(np.uint8)
    image = PIL.Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    decoded = np.asarray(PIL.Image.open(tmp_path / "photo.jpg")) / 255  # as stored, lossy
    gray = read_grayscale(tmp_path / "photo.jpg")
    assert gray.shape == (40, 24)
    np.testing.assert_allclose(gray, np.rot90(decoded, k=-1), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the pipeline: the same as the default's on the same images


def test_a_folder_of_the_default_photographs_gives_the_default_patches_bit_for_bit(tmp_path):
    """The nine scikit-image photographs written as PNG files (lossless), named so that they sort
    in the default order, are the default data: same grayscale conversion, crops, whitening,
    positions, split and standardisation."""
    folder = tmp_path / "photographs"
    folder.mkdir()
    for index, name in enumerate(SKIMAGE_PHOTOGRAPHS):
        photograph = (skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left"
                      else getattr(skimage.data, name)())
        PIL.Image.fromarray(photograph).save(folder / f"{index}_{name}.png")
    settings = dict(patch_size=16, num_train=3000, num_val=600, seed=7, cache_dir=tmp_path / "cache")
    own = load_whitened_patches(images=str(folder), **settings)
    default = load_whitened_patches(images="skimage", **settings)
    _assert_same_split(own, default)
    assert "9 image(s) from the folder" in own.source


def _mixed_folder(folder):
    """Three images of different sizes and formats, and their grayscale arrays."""
    folder.mkdir()
    images = {"a.png": _smooth(40, 56, seed=1), "b.tif": _smooth(64, 64, seed=2),
              "c.npy": _smooth(80, 33, seed=3)}
    PIL.Image.fromarray((images["a.png"] * 65535).astype(np.uint16)).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", images["b.tif"].astype(np.float32))
    np.save(folder / "c.npy", images["c.npy"])
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"not an image either")
    return [read_grayscale(folder / name) for name in sorted(images)]


def test_images_of_mixed_sizes_are_whitened_one_by_one_as_the_default_recipe(tmp_path):
    grays = _mixed_folder(tmp_path / "mixed")
    split = load_whitened_patches(images=tmp_path / "mixed", patch_size=8, num_train=900,
                                  num_val=300, seed=0, cache_dir=tmp_path / "cache",
                                  standardize=False)
    whitened = whiten_images([largest_centred_square(gray) for gray in grays], per_image=True)
    assert [image.shape for image in whitened] == [(40, 40), (64, 64), (33, 33)]
    for patches, positions in ((split.train, split.train_positions), (split.val, split.val_positions)):
        np.testing.assert_array_equal(patches, extract_patches(whitened, positions.numpy(), 8))
    # every image supplies patches in proportion to its positions (33², 57², 26²; 1200 drawn)
    counts = np.bincount(torch.cat([split.train_positions, split.val_positions])[:, 0].numpy())
    expected = 1200 * np.array([33 ** 2, 57 ** 2, 26 ** 2]) / (33 ** 2 + 57 ** 2 + 26 ** 2)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # ±5 binomial sd


def _stack(count=3, side=32):
    return np.stack([_smooth(side, side, seed=seed) for seed in range(count)])


@pytest.mark.parametrize("name, save, layout, key", [
    ("stack.npy", lambda path, stack: np.save(path, stack), None, None),
    ("olshausen.npy", lambda path, stack: np.save(path, np.moveaxis(stack, 0, 2)), None, None),
    ("olshausen.npy", lambda path, stack: np.save(path, np.moveaxis(stack, 0, 2)), "HWN", None),
    ("named.npz", lambda path, stack: np.savez_compressed(path, images=stack, labels=np.arange(3)),
     None, "images"),
])
def test_stacks_in_either_layout_equal_a_folder_of_the_same_images(name, save, layout, key, tmp_path):
    stack = np.stack([_smooth(32, 32, seed=seed) for seed in range(3)])
    save(tmp_path / name, stack)
    folder = tmp_path / "folder"
    folder.mkdir()
    for index, image in enumerate(stack):
        np.save(folder / f"{index}.npy", image)
    settings = dict(patch_size=6, num_train=300, num_val=60, seed=0, cache_dir=tmp_path / "cache")
    _assert_same_split(load_whitened_patches(images=tmp_path / name, layout=layout, key=key, **settings),
                       load_whitened_patches(images=folder, **settings))


@pytest.mark.parametrize("shape, message", [
    ((4, 4, 4), r"cannot tell how the stack .* of shape \(4, 4, 4\) is laid out: set data\.layout=NHW "
                r"\(4 images of 4×4\) or data\.layout=HWN \(4 images of 4×4, Olshausen's layout\)"),
    ((2, 20, 30), r"of shape \(2, 20, 30\) is laid out: set data\.layout=NHW \(2 images of 20×30\)"),
])
def test_an_ambiguous_stack_asks_for_its_layout(shape, message, tmp_path):
    np.save(tmp_path / "stack.npy", _rng().random(shape))
    with pytest.raises(ValueError, match=message):
        load_whitened_patches(images=tmp_path / "stack.npy", patch_size=2, num_train=10, num_val=2,
                              cache_dir=tmp_path)
    split = load_whitened_patches(images=tmp_path / "stack.npy", patch_size=2, num_train=10,
                                  num_val=2, cache_dir=tmp_path, layout="NHW")
    assert split.train.shape == (10, 4)
    with pytest.raises(ValueError, match=r"data\.layout must be NHW or HWN \(or null: from the shape\); got 'CHW'"):
        load_whitened_patches(images=tmp_path / "stack.npy", patch_size=2, num_train=10,
                              num_val=2, cache_dir=tmp_path, layout="CHW")


def test_a_changed_folder_is_not_served_from_the_cache(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    _mixed_folder(folder)
    settings = dict(images=folder, patch_size=8, num_train=200, num_val=50, seed=0,
                    cache_dir=tmp_path / "cache")
    first = load_whitened_patches(**settings)

    reads = []
    real_read = image_sources.read_grayscale
    monkeypatch.setattr(image_sources, "read_grayscale", lambda path: reads.append(path) or real_read(path))
    _assert_same_split(load_whitened_patches(**settings), first)
    assert reads == []  # served from the cache without reading a single image

    PIL.Image.fromarray((_smooth(40, 56, seed=9) * 255).astype(np.uint8)).save(folder / "a.png")
    edited = load_whitened_patches(**settings)
    assert reads and not torch.equal(edited.train, first.train)

    reads.clear()
    np.save(folder / "d.npy", _smooth(50, 50, seed=4))
    added = load_whitened_patches(**settings)
    assert len(reads) == 2 * 4  # measured, then whitened: all four images, read afresh
    assert added.train_positions[:, 0].max() == 3

    (folder / "d.npy").unlink()
    _assert_same_split(load_whitened_patches(**settings), edited)  # the earlier folder's cache


# ---------------------------------------------------------------------------------------------
# errors name the file


def _write_tiff_with_nan(path):
    image = _smooth(20, 20).astype(np.float32)
    image[3, 4] = np.nan
    tifffile.imwrite(path, image)


@pytest.mark.parametrize("make, error, message", [
    (lambda d: None, ValueError, r"no images in the folder .*empty \(it is empty\)"),
    (lambda d: (d / "a.gif").write_bytes(b"GIF89a"), ValueError,
     r"no images in the folder .* \(it holds only other files: a\.gif\); it must hold PNG, JPEG"),
    (lambda d: (d / "broken.png").write_bytes(b"\x89PNG not really"), ValueError,
     r"broken\.png could not be read as an image"),
    (lambda d: _write_pil(d / "tiny.png", GRAY8), ValueError,
     r"images smaller than a 16×16 patch \(data\.patch_size=16\): .*tiny\.png \(12×17\)"),
    (lambda d: _write_tiff_with_nan(d / "nan.tif"), ValueError, r"NaN or infinite pixels in .*nan\.tif"),
    (lambda d: np.save(d / "flat.npy", np.full((20, 20), 0.5)), ValueError,
     r"constant images .*flat\.npy"),
    (lambda d: np.save(d / "cube.npy", np.zeros((2, 20, 20))), ValueError,
     r"cube\.npy holds an array of shape \(2, 20, 20\); a \.npy file in an image folder must hold one 2-D"),
    (lambda d: tifffile.imwrite(d / "pages.tif", _rng().random((3, 20, 20)), photometric="minisblack"),
     ValueError, r"pages\.tif holds 3 pages"),
    (lambda d: tifffile.imwrite(d / "cmyk.tif", np.zeros((20, 20, 4), np.uint8), photometric="separated"),
     ValueError, r"cmyk\.tif stores its colours as SEPARATED; save it as grayscale or RGB"),
], ids=["empty", "no-image-types", "unreadable", "smaller-than-a-patch", "nan", "constant",
        "3-D-npy-in-folder", "multi-page-tiff", "cmyk-tiff"])
def test_a_folder_that_cannot_be_used_is_refused_naming_the_file(make, error, message, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    make(folder)
    with pytest.raises(error, match=message):
        load_whitened_patches(images=folder, num_train=10, num_val=2, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("images, error, message", [
    ("missing_folder", FileNotFoundError, r"data\.images=.*missing_folder: no such file or folder"),
    ("notes.txt", ValueError, r"notes\.txt is neither a folder of images, an image file"),
    ("stack4d.npy", ValueError, r"holds an array of shape \(2, 2, 20, 20\); an image stack must be"),
    ("several.npz", ValueError, r"several\.npz holds 2 arrays \(a, b\): choose one with data\.key=<name>"),
])
def test_a_path_that_is_no_image_source_is_refused(images, error, message, tmp_path):
    (tmp_path / "notes.txt").write_text("text")
    np.save(tmp_path / "stack4d.npy", np.zeros((2, 2, 20, 20)))
    np.savez(tmp_path / "several.npz", a=np.zeros((2, 20, 20)), b=np.zeros((2, 20, 20)))
    with pytest.raises(error, match=message):
        load_whitened_patches(images=tmp_path / images, num_train=10, num_val=2, cache_dir=tmp_path)
