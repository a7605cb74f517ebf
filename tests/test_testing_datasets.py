"""Tests of the synthetic dataset generators of the test kit, including that Anomalib's stock datamodules read them."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anomalib_glocalclip.data.io import read_image, read_mask
from anomalib_glocalclip.testing import (
    DEFECT_KINDS,
    category_style,
    generate_folder,
    generate_mvtec_ad,
    generate_normal_folder,
    generate_visa,
    make_image,
)


def _files(root: Path, pattern: str) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.glob(pattern))


def _check_mask_file(mask_path: Path, image_path: Path) -> None:
    """8-bit 0/255 PNG of the image's size with a defect of a sensible area."""
    mask = Image.open(mask_path)
    assert mask.mode == "L"
    assert mask.size == Image.open(image_path).size
    values = np.asarray(mask)
    assert set(np.unique(values).tolist()) == {0, 255}
    assert 0.01 < (values > 0).mean() < 0.15


# Layouts


def test_mvtec_ad_layout(tmp_path: Path) -> None:
    root = generate_mvtec_ad(tmp_path / "mvtec", defects=("scratch", "broken_large"), odd_images=False)
    assert root == tmp_path / "mvtec"
    assert sorted(path.name for path in root.iterdir()) == ["bottle", "carpet"]
    for category in ("bottle", "carpet"):
        base = root / category
        assert _files(base, "train/good/*") == [f"train/good/{i:03d}.png" for i in range(4)]
        assert _files(base, "test/good/*") == ["test/good/000.png", "test/good/001.png"]
        for defect in ("scratch", "broken_large"):
            assert _files(base, f"test/{defect}/*") == [f"test/{defect}/{i:03d}.png" for i in range(3)]
            assert _files(base, f"ground_truth/{defect}/*") == [
                f"ground_truth/{defect}/{i:03d}_mask.png" for i in range(3)
            ]
            for index in range(3):
                name = f"{index:03d}"
                mask_path = base / "ground_truth" / defect / f"{name}_mask.png"
                _check_mask_file(mask_path, base / "test" / defect / f"{name}.png")
        for path in base.glob("t*/*/*.png"):
            image = Image.open(path)
            assert (image.mode, image.size) == ("RGB", (64, 64))


def test_visa_raw_layout_and_split_csv(tmp_path: Path) -> None:
    root = generate_visa(tmp_path / "visa", odd_images=False)
    for category in ("candle", "pcb1"):
        base = root / category / "Data"
        assert _files(base, "Images/Normal/*") == [f"Images/Normal/{i:04d}.JPG" for i in range(6)]
        assert _files(base, "Images/Anomaly/*") == [f"Images/Anomaly/{i:03d}.JPG" for i in range(3)]
        assert _files(base, "Masks/Anomaly/*") == [f"Masks/Anomaly/{i:03d}.png" for i in range(3)]
        for index in range(3):
            name = f"{index:03d}"
            _check_mask_file(base / "Masks" / "Anomaly" / f"{name}.png", base / "Images" / "Anomaly" / f"{name}.JPG")
    lines = (root / "split_csv" / "1cls.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "object,split,label,image,mask"
    assert lines[1] == "candle,train,normal,candle/Data/Images/Normal/0000.JPG,"
    assert "candle,test,normal,candle/Data/Images/Normal/0004.JPG," in lines
    assert "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/002.JPG,pcb1/Data/Masks/Anomaly/002.png" in lines
    assert len(lines) == 1 + 2 * 9
    for line in lines[1:]:
        for relative in filter(None, line.split(",")[3:]):
            assert (root / relative).is_file()


def test_visa_split_csv_keeps_other_categories(tmp_path: Path) -> None:
    generate_visa(tmp_path, categories=("candle", "pcb1"), seed=0)
    generate_visa(tmp_path, categories=("pcb1", "fryum"), n_train=1, n_test_good=1, n_test_bad=1, seed=1)
    objects = [line.split(",")[0] for line in (tmp_path / "split_csv" / "1cls.csv").read_text().splitlines()[1:]]
    assert objects == ["candle"] * 9 + ["pcb1"] * 3 + ["fryum"] * 3


def test_visa_pre_split_layout_holds_the_raw_images(tmp_path: Path) -> None:
    raw = generate_visa(tmp_path / "raw", categories=("capsules",))
    split = generate_visa(tmp_path / "split", categories=("capsules",), pre_split=True)
    base = split / "visa_pytorch" / "capsules"
    assert _files(base, "train/good/*") == [f"train/good/{i:04d}.JPG" for i in range(4)]
    assert _files(base, "test/good/*") == ["test/good/0004.JPG", "test/good/0005.JPG"]
    assert _files(base, "test/bad/*") == [f"test/bad/{i:03d}.JPG" for i in range(3)]
    assert _files(base, "ground_truth/bad/*") == [f"ground_truth/bad/{i:03d}.png" for i in range(3)]
    assert not (split / "split_csv").exists()
    raw_base = raw / "capsules" / "Data"
    assert (base / "test" / "bad" / "001.JPG").read_bytes() == (raw_base / "Images/Anomaly/001.JPG").read_bytes()
    assert (base / "ground_truth/bad/001.png").read_bytes() == (raw_base / "Masks/Anomaly/001.png").read_bytes()
    assert (base / "test/good/0005.JPG").read_bytes() == (raw_base / "Images/Normal/0005.JPG").read_bytes()


def test_visa_rejects_categories_anomalib_rejects(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Not VisA categories"):
        generate_visa(tmp_path, categories=("bottle",))


def test_folder_layout(tmp_path: Path) -> None:
    root = generate_folder(tmp_path / "folder", normal_dir="ok", abnormal_dir="ng", mask_dir="gt")
    assert _files(root, "ok/*") == [f"ok/{i:03d}.png" for i in range(6)]
    assert _files(root, "ng/*") == [f"ng/{i:03d}.png" for i in range(4)]
    assert _files(root, "gt/*") == [f"gt/{i:03d}.png" for i in range(4)]
    for index in range(4):
        _check_mask_file(root / "gt" / f"{index:03d}.png", root / "ng" / f"{index:03d}.png")

    no_masks = generate_folder(tmp_path / "no_masks", with_masks=False)
    assert sorted(path.name for path in no_masks.iterdir()) == ["bad", "good"]


def test_normal_folder(tmp_path: Path) -> None:
    root = generate_normal_folder(tmp_path / "normal", n=5)
    assert _files(root, "*") == [f"{i:03d}.png" for i in range(5)]


# Content


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = generate_mvtec_ad(tmp_path / "a", seed=3)
    second = generate_mvtec_ad(tmp_path / "b", seed=3)
    other = generate_mvtec_ad(tmp_path / "c", seed=4)
    files = ("carpet/test/scratch/001.png", "carpet/ground_truth/scratch/001_mask.png", "bottle/train/good/000.png")
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes()
        assert (first / relative).read_bytes() != (other / relative).read_bytes()


def test_a_category_does_not_depend_on_the_others(tmp_path: Path) -> None:
    alone = generate_mvtec_ad(tmp_path / "alone", categories=("carpet",))
    together = generate_mvtec_ad(tmp_path / "together", categories=("bottle", "carpet"))
    relative = "carpet/test/scratch/002.png"
    assert (alone / relative).read_bytes() == (together / relative).read_bytes()


@pytest.mark.parametrize("defect", DEFECT_KINDS)
@pytest.mark.parametrize("size", [(64, 64), (67, 93)])
def test_mask_is_exactly_the_altered_region(defect: str, size: tuple[int, int]) -> None:
    for seed in range(5):
        normal, empty = make_image(np.random.default_rng(seed), size, "bottle", anomalous=False, defect=defect)
        anomalous, mask = make_image(np.random.default_rng(seed), size, "bottle", anomalous=True, defect=defect)
        assert normal.shape == anomalous.shape == (*size, 3)
        assert normal.dtype == anomalous.dtype == np.uint8
        assert mask.shape == size
        assert not empty.any()
        assert set(np.unique(mask).tolist()) == {0, 255}
        assert 0.01 < (mask > 0).mean() < 0.15
        assert np.array_equal((normal != anomalous).any(axis=-1), mask > 0)
        # The defect stays visible in grayscale too (grayscale and 16-bit variants store luminance only).
        gray_normal = np.asarray(Image.fromarray(normal).convert("L"))
        gray_anomalous = np.asarray(Image.fromarray(anomalous).convert("L"))
        assert np.array_equal(gray_normal != gray_anomalous, mask > 0)


def test_categories_look_different() -> None:
    bottle, _ = make_image(np.random.default_rng(0), 64, "bottle")
    carpet, _ = make_image(np.random.default_rng(0), 64, category_style("carpet"))
    assert np.abs(bottle.mean(axis=(0, 1)) - carpet.mean(axis=(0, 1))).max() > 20


def test_unknown_defect_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown defect kind"):
        make_image(np.random.default_rng(0), 64, "bottle", anomalous=True, defect="crack")


def test_odd_images_are_present_and_valid(tmp_path: Path) -> None:
    root = generate_mvtec_ad(tmp_path / "mvtec", odd_images=True)
    images = sorted(root.glob("*/t*/*/*.png"))
    modes = [Image.open(path).mode for path in images]
    sizes = [Image.open(path).size for path in images]
    assert {"L", "RGBA", "I;16"} <= set(modes)
    assert any(size != (64, 64) for size in sizes)
    plain = sum(mode == "RGB" and size == (64, 64) for mode, size in zip(modes, sizes, strict=True))
    assert plain > len(images) / 2

    for image_path in images:
        image = read_image(image_path)
        assert image.shape[0] == 3
        assert 0.1 < float(image.mean()) < 0.9  # a 16-bit image clipped to 8 bits would read as white
        if image_path.parent.name != "good":
            category_dir, defect = image_path.parents[2], image_path.parent.name
            mask_path = category_dir / "ground_truth" / defect / f"{image_path.stem}_mask.png"
            mask = read_mask(mask_path, tuple(image.shape[-2:]), image_path)
            assert 0 < int(mask.sum()) < mask.numel() // 2

    palette = next(path for path in generate_normal_folder(tmp_path / "normal", n=11, odd_images=True).iterdir()
                   if Image.open(path).mode == "P")  # the 11th image of the cycle
    assert 0.1 < float(read_image(palette).mean()) < 0.9

    visa = generate_visa(tmp_path / "visa", odd_images=True)
    jpeg_modes = {Image.open(path).mode for path in visa.glob("*/Data/Images/*/*.JPG")}
    assert jpeg_modes == {"RGB", "L"}


def test_default_images_are_plain_8_bit_rgb(tmp_path: Path) -> None:
    roots = [
        generate_mvtec_ad(tmp_path / "mvtec", n_train=9),
        generate_visa(tmp_path / "visa", n_train=9),
        generate_folder(tmp_path / "folder", n_good=9),
        generate_normal_folder(tmp_path / "normal", n=9),
    ]
    for root in roots:
        images = [path for path in root.rglob("*") if path.suffix in {".png", ".JPG"} and "_mask" not in path.stem]
        images = [path for path in images if "Masks" not in path.parts and "masks" not in path.parts]
        assert len(images) >= 9
        assert {(Image.open(path).mode, Image.open(path).size) for path in images} == {("RGB", (64, 64))}, root


def test_demo_imports_no_test_kit(cli) -> None:
    code = (
        "import sys, anomalib_glocalclip.demo, anomalib_glocalclip.demo.datasets, anomalib_glocalclip.cli;"
        "print([m for m in sys.modules if m.startswith('anomalib_glocalclip.testing')])"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]"]


def test_odd_sizes_keep_masks_aligned(tmp_path: Path) -> None:
    root = generate_folder(tmp_path / "folder", n_good=0, n_bad=9, odd_images=True)
    sizes = set()
    for image_path in sorted((root / "bad").glob("*.png")):
        mask_path = root / "masks" / image_path.name
        sizes.add(Image.open(image_path).size)
        assert Image.open(mask_path).size == Image.open(image_path).size
    assert len(sizes) == 2


# Anomalib's stock datamodules


def _first_test_batch(datamodule: object) -> object:
    datamodule.setup()
    return next(iter(datamodule.test_dataloader()))


def _check_batch(batch: object, size: int) -> None:
    assert batch.image.shape == (size, 3, 64, 64)
    assert batch.gt_mask.shape == (size, 64, 64)
    labels = batch.gt_label.bool()
    assert labels.any()
    assert bool((batch.gt_mask.flatten(1).sum(1) > 0).eq(labels).all())


def test_stock_mvtec_ad_reads_the_layout(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD

    root = generate_mvtec_ad(tmp_path / "mvtec")  # the default: plain 8-bit files, as the demo writes them
    datamodule = MVTecAD(root=root, category="carpet", eval_batch_size=5, num_workers=0)
    batch = _first_test_batch(datamodule)
    assert len(datamodule.train_data) == 4
    assert len(datamodule.test_data) == 5
    _check_batch(batch, 5)
    # Stock Anomalib reads each image as the plugin's robust reader does (a 16-bit PNG would read as all white).
    for image, path in zip(batch.image, batch.image_path, strict=True):
        torch.testing.assert_close(image, read_image(path), atol=1e-6, rtol=0)


def test_stock_mvtec_ad_indexes_odd_images(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD

    root = generate_mvtec_ad(tmp_path / "mvtec", defects=("scratch", "square"), odd_images=True)
    datamodule = MVTecAD(root=root, category="bottle", num_workers=0)
    datamodule.setup()  # indexes the files; Anomalib's reader would clip the 16-bit images, so none are decoded
    samples = datamodule.test_data.samples
    assert len(samples) == 8
    abnormal = samples[samples.label_index == 1]
    assert all(Path(row.mask_path).stem == f"{Path(row.image_path).stem}_mask" for row in abnormal.itertuples())


def test_stock_visa_splits_the_raw_layout(tmp_path: Path) -> None:
    from anomalib.data import Visa

    root = generate_visa(tmp_path / "visa", odd_images=False)
    datamodule = Visa(root=root, category="pcb1", eval_batch_size=5, num_workers=0)
    datamodule.prepare_data()
    assert (root / "visa_pytorch" / "pcb1" / "ground_truth" / "bad" / "002.png").is_file()
    batch = _first_test_batch(datamodule)
    assert len(datamodule.train_data) == 4
    assert len(datamodule.test_data) == 5
    _check_batch(batch, 5)


def test_stock_visa_reads_the_pre_split_layout(tmp_path: Path) -> None:
    from anomalib.data import Visa

    root = generate_visa(tmp_path / "visa", categories=("candle",), pre_split=True, odd_images=False)
    datamodule = Visa(root=root, category="candle", eval_batch_size=5, num_workers=0)
    datamodule.prepare_data()  # finds visa_pytorch/candle and leaves it alone
    batch = _first_test_batch(datamodule)
    assert len(datamodule.train_data) == 4
    assert len(datamodule.test_data) == 5
    _check_batch(batch, 5)


def test_stock_folder_reads_the_layout(tmp_path: Path) -> None:
    from anomalib.data import Folder

    root = generate_folder(tmp_path / "folder", odd_images=False)
    datamodule = Folder(
        name="x",
        root=root,
        normal_dir="good",
        abnormal_dir="bad",
        mask_dir="masks",
        eval_batch_size=8,
        num_workers=0,
        seed=0,
    )
    batch = _first_test_batch(datamodule)
    size = len(datamodule.test_data)
    assert len(datamodule.train_data) + size + len(datamodule.val_data) == 10
    _check_batch(batch, size)
    assert isinstance(batch.image, torch.Tensor)
