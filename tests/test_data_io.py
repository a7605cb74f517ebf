"""Tests of the robust image and mask readers."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from anomalib_glocalclip.data.io import ImageReadError, read_image, read_mask


def _rgb_array(height: int = 12, width: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(tmp_path: Path, name: str, img: Image.Image, **kwargs: object) -> Path:
    path = tmp_path / name
    img.save(path, **kwargs)
    return path


def _check_image(image: torch.Tensor, height: int, width: int) -> None:
    assert image.dtype == torch.float32
    assert image.shape == (3, height, width)
    assert float(image.min()) >= 0.0
    assert float(image.max()) <= 1.0


@pytest.mark.parametrize(("name", "fmt"), [("rgb.png", "PNG"), ("rgb.bmp", "BMP"), ("rgb.tiff", "TIFF")])
def test_rgb_8_bit_is_read_exactly(tmp_path: Path, name: str, fmt: str) -> None:
    array = _rgb_array()
    image = read_image(_save(tmp_path, name, Image.fromarray(array), format=fmt))
    _check_image(image, 12, 10)
    assert torch.equal(image, torch.from_numpy(array).permute(2, 0, 1).float() * (1 / 255.0))


def test_jpeg(tmp_path: Path) -> None:
    array = np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)
    image = read_image(_save(tmp_path, "x.JPG", Image.fromarray(array), format="JPEG", quality=95))
    _check_image(image, 16, 16)
    assert torch.allclose(image[:, 8, 8], torch.tensor([200, 40, 90]) / 255.0, atol=0.03)


def test_grayscale_is_replicated_to_three_channels(tmp_path: Path) -> None:
    array = _rgb_array()[..., 0]
    image = read_image(_save(tmp_path, "gray.png", Image.fromarray(array)))
    _check_image(image, 12, 10)
    expected = torch.from_numpy(array).float() * (1 / 255.0)
    for channel in range(3):
        assert torch.equal(image[channel], expected)


def test_la_drops_alpha(tmp_path: Path) -> None:
    gray = np.full((6, 7), 100, dtype=np.uint8)
    alpha = np.zeros((6, 7), dtype=np.uint8)
    img = Image.fromarray(np.stack([gray, alpha], axis=-1))
    image = read_image(_save(tmp_path, "la.png", img))
    _check_image(image, 6, 7)
    assert torch.allclose(image, torch.full_like(image, 100 / 255.0))


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    array = _rgb_array()
    alpha = np.zeros((12, 10, 1), dtype=np.uint8)  # fully transparent: the colour must survive anyway
    image = read_image(_save(tmp_path, "rgba.png", Image.fromarray(np.concatenate([array, alpha], axis=-1))))
    _check_image(image, 12, 10)
    assert torch.equal(image, torch.from_numpy(array).permute(2, 0, 1).float() * (1 / 255.0))


def test_palette(tmp_path: Path) -> None:
    rgb = Image.fromarray(_rgb_array())
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = _save(tmp_path, "palette.png", palette)
    assert Image.open(path).mode == "P"
    image = read_image(path)
    _check_image(image, 12, 10)
    expected = torch.from_numpy(np.asarray(palette.convert("RGB")).copy()).permute(2, 0, 1).float() * (1 / 255.0)
    assert torch.equal(image, expected)


def test_cmyk(tmp_path: Path) -> None:
    img = Image.new("CMYK", (5, 4), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    image = read_image(_save(tmp_path, "cmyk.tiff", img))
    _check_image(image, 4, 5)
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=0.01)


def test_one_bit(tmp_path: Path) -> None:
    array = np.zeros((8, 8), dtype=bool)
    array[2:4, 3:6] = True
    image = read_image(_save(tmp_path, "bits.png", Image.fromarray(array)))
    _check_image(image, 8, 8)
    assert torch.equal(image[0] > 0.5, torch.from_numpy(array))


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    array = np.zeros((8, 9), dtype=np.uint16)
    array[0, 0] = 32768
    array[1, 1] = 65535
    array[2, 2] = 255  # would read as white through convert("RGB")
    path = _save(tmp_path, f"gray16{suffix}", Image.fromarray(array.astype(np.uint16)))
    assert Image.open(path).mode.startswith("I;16")
    image = read_image(path)
    _check_image(image, 8, 9)
    assert image[:, 0, 0] == pytest.approx([0.5] * 3, abs=1e-3)
    assert image[:, 1, 1] == pytest.approx([1.0] * 3)
    assert image[:, 2, 2] == pytest.approx([255 / 65535] * 3)


def test_16_bit_big_endian(tmp_path: Path) -> None:
    img = Image.frombytes("I;16B", (4, 3), np.full((3, 4), 32768, dtype=">u2").tobytes())
    path = _save(tmp_path, "gray16b.tiff", img)
    assert Image.open(path).mode == "I;16B"
    assert read_image(path) == pytest.approx(torch.full((3, 3, 4), 0.5), abs=1e-3)


def test_32_bit_integer_holding_16_bit_data(tmp_path: Path) -> None:
    array = np.full((4, 4), 32768, dtype=np.int32)
    array[0, 0] = 0
    path = _save(tmp_path, "int32.tiff", Image.fromarray(array))
    assert Image.open(path).mode == "I"
    image = read_image(path)
    _check_image(image, 4, 4)
    assert float(image[0, 1, 1]) == pytest.approx(0.5, abs=1e-3)


def test_32_bit_integer_outside_16_bit_range_is_min_max_scaled(tmp_path: Path) -> None:
    array = np.array([[-100, 0], [100, 300]], dtype=np.int32)
    image = read_image(_save(tmp_path, "int32.tiff", Image.fromarray(array)))
    _check_image(image, 2, 2)
    assert image[0].flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])


def test_float_in_range_is_kept(tmp_path: Path) -> None:
    array = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    image = read_image(_save(tmp_path, "float.tiff", Image.fromarray(array)))
    _check_image(image, 2, 2)
    assert image[1].flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])


def test_float_out_of_range_is_min_max_scaled(tmp_path: Path) -> None:
    array = np.array([[-2.0, 0.0], [2.0, 6.0]], dtype=np.float32)
    image = read_image(_save(tmp_path, "float.tiff", Image.fromarray(array)))
    _check_image(image, 2, 2)
    assert image[2].flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])


def test_16_bit_rgb(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    array = np.zeros((5, 6, 3), dtype=np.uint16)
    array[..., 0] = 65535  # cv2 writes BGR: blue
    array[..., 2] = 32768  # red
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), array)
    image = read_image(path)
    _check_image(image, 5, 6)
    assert image[:, 0, 0] == pytest.approx([0.5, 0.0, 1.0], abs=0.01)


def test_missing_image_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "000.png"
    with pytest.raises(FileNotFoundError, match=r"000.png"):
        read_image(path)


def test_corrupt_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="re-export the file or remove it from the dataset") as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("name", "fmt"), [("truncated.png", "PNG"), ("truncated.jpg", "JPEG")])
def test_truncated_file_is_detected(tmp_path: Path, name: str, fmt: str) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    whole = _save(tmp_path, f"whole_{name}", Image.fromarray(_rgb_array(64, 64)), format=fmt)
    path = tmp_path / name
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="re-export") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not a file"):
        read_image(tmp_path)


def test_mask_is_binarised(tmp_path: Path) -> None:
    array = np.zeros((6, 8), dtype=np.uint8)
    array[1:3, 2:5] = 255
    array[5, 7] = 1  # faint pixels count too
    mask = read_mask(_save(tmp_path, "mask.png", Image.fromarray(array)), expected_size=(6, 8))
    assert mask.dtype == torch.uint8
    assert mask.shape == (6, 8)
    assert torch.equal(mask, torch.from_numpy((array > 0).astype(np.uint8)))


def test_16_bit_and_rgb_masks(tmp_path: Path) -> None:
    array16 = np.zeros((4, 5), dtype=np.uint16)
    array16[1, 1] = 65535
    array16[2, 3] = 256  # its high byte only: 8-bit conversion could lose it
    mask = read_mask(_save(tmp_path, "mask16.png", Image.fromarray(array16)))
    assert torch.equal(mask, torch.from_numpy((array16 > 0).astype(np.uint8)))

    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[0, 4] = (0, 0, 255)
    mask = read_mask(_save(tmp_path, "mask_rgb.png", Image.fromarray(rgb)))
    assert mask.sum() == 1
    assert mask[0, 4] == 1


def test_mask_size_mismatch_names_both_files_and_sizes(tmp_path: Path) -> None:
    path = _save(tmp_path, "000_mask.png", Image.fromarray(np.zeros((6, 8), dtype=np.uint8)))
    with pytest.raises(ImageReadError, match="must have the size of their image") as info:
        read_mask(path, expected_size=(12, 10), image_path=tmp_path / "000.png")
    message = str(info.value)
    assert str(path) in message
    assert str(tmp_path / "000.png") in message
    assert "6x8" in message
    assert "12x10" in message


def test_missing_mask_names_mask_and_image(tmp_path: Path) -> None:
    path = tmp_path / "ground_truth" / "scratch" / "000_mask.png"
    image_path = tmp_path / "test" / "scratch" / "000.png"
    with pytest.raises(ImageReadError, match="image-level") as info:
        read_mask(path, image_path=image_path)
    assert str(path) in str(info.value)
    assert str(image_path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_corrupt_mask(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="re-export") as info:
        read_mask(path, image_path="img.png")
    assert str(path) in str(info.value)
    assert "img.png" in str(info.value)
