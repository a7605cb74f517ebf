"""Tests of the file checks: header inspection, which files Anomalib's readers get wrong, samples-table checks."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from anomalib.data.utils import read_image as anomalib_read_image
from anomalib.data.utils import read_mask as anomalib_read_mask
from PIL import Image

from anomalib_glocalclip.data.checks import (
    DataCheckError,
    ProblemKind,
    anomalib_reads_correctly,
    check_samples,
    inspect_image_file,
    raise_for_problems,
)
from anomalib_glocalclip.data.io import ImageReadError, read_image, read_mask
from image_files import gray16_array, rgb_array, save, save_mask, save_rgb, truncated_bytes


def test_inspect_reads_the_header(tmp_path: Path) -> None:
    info = inspect_image_file(save(tmp_path / "a.png", Image.fromarray(rgb_array(height=20, width=30))))
    assert (info.format, info.mode, info.size) == ("PNG", "RGB", (20, 30))
    assert inspect_image_file(save(tmp_path / "g16.png", Image.fromarray(gray16_array()))).mode == "I;16"


def test_inspect_does_not_decode_pixels(tmp_path: Path) -> None:
    """A truncated file has a whole header: inspection passes, a full read names the file."""
    path = tmp_path / "cut.png"
    path.write_bytes(truncated_bytes(Image.fromarray(rgb_array()), "PNG"))
    assert inspect_image_file(path).size == (64, 64)
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(path)


@pytest.mark.parametrize("content", [b"", b"not an image at all\n"])
def test_inspect_refuses_non_images_by_name(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"fake\.png.*re-export"):
        inspect_image_file(path)


def test_inspect_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.png"):
        inspect_image_file(tmp_path / "nothere.png")


def _misread_files(tmp_path: Path) -> list[tuple[Path, np.ndarray]]:
    """Files of the modes claimed misread, with their true pixels in [0, 1] ``[H, W]``."""
    gray16 = gray16_array()
    big_endian = Image.frombytes("I;16B", (64, 64), gray16.astype(">u2").tobytes())
    int32 = (gray16.astype(np.int32) * 4).astype(np.int32)  # well above 255
    floats = gray16.astype(np.float32) / 65535.0
    return [
        (save(tmp_path / "g16.png", Image.fromarray(gray16)), gray16 / 65535.0),
        (save(tmp_path / "g16.tiff", Image.fromarray(gray16)), gray16 / 65535.0),
        (save(tmp_path / "g16b.tiff", big_endian), gray16 / 65535.0),
        (save(tmp_path / "i32.tiff", Image.fromarray(int32)), (int32 - int32.min()) / (int32.max() - int32.min())),
        (save(tmp_path / "f.tiff", Image.fromarray(floats)), floats),
    ]


def test_modes_claimed_misread_are_misread_by_anomalib(tmp_path: Path) -> None:
    """Each claim checked against Anomalib's reader: it is far off, the plugin's reader is right."""
    for path, truth in _misread_files(tmp_path):
        info = inspect_image_file(path)
        assert not anomalib_reads_correctly(info), path
        expected = torch.from_numpy(truth.astype(np.float32)).expand(3, -1, -1)
        assert (anomalib_read_image(path, as_tensor=True) - expected).abs().mean() > 0.2, path
        assert torch.allclose(read_image(path), expected, atol=1e-6), path


def test_modes_claimed_read_correctly_give_anomalib_identical_tensors(tmp_path: Path) -> None:
    array = rgb_array()
    palette = Image.fromarray(array).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    images = {
        "rgb.png": Image.fromarray(array),
        "gray.png": Image.fromarray(array[..., 0]),
        "la.png": Image.fromarray(array[..., :2].copy(), mode="LA"),
        "rgba.png": Image.fromarray(np.concatenate([array, array[..., :1]], axis=-1)),
        "p.png": palette,
        "pa.png": palette,
        "bits.png": Image.fromarray(array[..., 0] > 127),
        "cmyk.tiff": Image.fromarray(array).convert("CMYK"),
    }
    for name, image in images.items():
        path = save(tmp_path / name, image, **({"transparency": 3} if name == "pa.png" else {}))
        assert anomalib_reads_correctly(inspect_image_file(path)), name
        ours = read_image(path)
        assert torch.equal(anomalib_read_image(path, as_tensor=True).as_subclass(torch.Tensor), ours), name


def test_float_mask_claim(tmp_path: Path) -> None:
    """Anomalib's mask reader truncates a float mask of 0.5 to empty; 16-bit masks stay nonzero there."""
    values = np.zeros((8, 8), dtype=np.float32)
    values[2:4, 2:4] = 0.5
    path = save(tmp_path / "m.tiff", Image.fromarray(values))
    assert not anomalib_reads_correctly(inspect_image_file(path), as_mask=True)
    assert int(anomalib_read_mask(path, as_tensor=True).sum()) == 0
    assert int(read_mask(path).sum()) == 4
    values16 = (values > 0).astype(np.uint16) * 300
    path16 = save(tmp_path / "m16.png", Image.fromarray(values16))
    assert anomalib_reads_correctly(inspect_image_file(path16), as_mask=True)
    assert torch.equal(anomalib_read_mask(path16, as_tensor=True).as_subclass(torch.Tensor), read_mask(path16))


def _table(rows: list[tuple[object, object, int]], task: str | None = "segmentation") -> pd.DataFrame:
    samples = pd.DataFrame(rows, columns=["image_path", "mask_path", "label_index"])
    if task is not None:
        samples.attrs["task"] = task
    return samples


def test_check_samples_finds_every_problem_by_name(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    save_rgb(good)
    bad = tmp_path / "bad.png"
    save_rgb(bad, seed=1)
    mask = tmp_path / "bad_mask.png"
    save_mask(mask)
    small_mask = tmp_path / "small_mask.png"
    save_mask(small_mask, height=32, width=32)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.png"
    cut.write_bytes(truncated_bytes(Image.fromarray(rgb_array()), "PNG"))
    deep = save(tmp_path / "deep.png", Image.fromarray(gray16_array()))
    samples = _table(
        [
            (str(good), None, 0),  # fine: normal images need no mask
            (str(bad), str(mask), 1),  # fine
            (str(tmp_path / "gone.png"), None, 0),
            (str(empty), None, 0),
            (str(cut), None, 0),
            (str(bad), None, 1),
            (str(bad), str(tmp_path / "gone_mask.png"), 1),
            (str(bad), str(small_mask), 1),
            (str(deep), None, 0),
        ]
    )
    problems = check_samples(samples, verify=False)
    found = [(problem.kind, tuple(path.name for path in problem.paths)) for problem in problems]
    assert found == [
        (ProblemKind.MISSING_FILE, ("gone.png",)),
        (ProblemKind.UNREADABLE, ("empty.png",)),
        (ProblemKind.MISSING_MASK, ("bad.png",)),
        (ProblemKind.MISSING_FILE, ("bad.png", "gone_mask.png")),
        (ProblemKind.MASK_SIZE, ("bad.png", "small_mask.png")),
        (ProblemKind.ANOMALIB_MISREAD, ("deep.png",)),
    ]
    assert "64x64" in str(problems[4])
    assert "32x32" in str(problems[4])
    decoded = check_samples(samples, verify=True, anomalib_reader=False)
    kinds = [(problem.kind, problem.paths[0].name) for problem in decoded]
    assert (ProblemKind.UNREADABLE, "cut.png") in kinds  # truncated pixel data is found by verifying it
    assert all(kind != ProblemKind.ANOMALIB_MISREAD for kind, _ in kinds)


def test_check_samples_image_level_needs_no_masks(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    save_rgb(image)
    assert check_samples(_table([(str(image), None, 1)], task="classification")) == []
    assert check_samples(_table([(str(image), None, 1)], task=None)) == []  # no mask anywhere: image-level
    assert len(check_samples(_table([(str(image), None, 1)]))) == 1


def test_raise_for_problems_lists_count_paths_and_fixes(tmp_path: Path) -> None:
    rows = [(str(tmp_path / f"missing_{index}.png"), None, 0) for index in range(7)]
    problems = check_samples(_table(rows))
    raise_for_problems([], what="Nothing")  # no problems: no error
    with pytest.raises(DataCheckError) as caught:
        raise_for_problems(problems, what="MVTec AD bottle", limit=3)
    message = str(caught.value)
    assert message.startswith("MVTec AD bottle has 7 file problem(s):")
    assert all(f"missing_{index}.png" in message for index in range(3))
    assert "missing_3.png" not in message
    assert "... and 4 more." in message
    assert message.count("Fix: check the dataset root") == 3
