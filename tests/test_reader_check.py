"""With Anomalib's own datamodules the models check the files at the start of a run (``ReaderCheck``) and refuse,
by name and with the plugin datamodule that reads them right, what Anomalib's reader would read wrong or cannot
read; a test split without the images its metrics need is refused with its counts."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from PIL import Image, PngImagePlugin

from anomalib_glocalclip import AnoCLIP
from anomalib_glocalclip.data import LayoutDataModule
from anomalib_glocalclip.data.checks import DataCheckError, ProblemKind, check_samples
from anomalib_glocalclip.data.dataset import SampleDataset
from anomalib_glocalclip.data.reader_check import EmptySplitError, ReaderCheck, check_test_split
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG
from image_files import gray16_array, save, save_rgb, truncated_bytes, write_mvtec_set

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}


def _engine(tmp_path: Path) -> Engine:
    return Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path / "results", enable_progress_bar=False)


def test_models_add_the_check() -> None:
    assert any(isinstance(callback, ReaderCheck) for callback in AnoCLIP(**TINY).configure_callbacks())


def test_16_bit_file_under_anomalibs_mvtec_is_refused_naming_it_and_layout_datamodule(tmp_path: Path) -> None:
    root = write_mvtec_set(tmp_path / "data")
    deep = root / "bottle" / "test" / "good" / "001.png"
    save(deep, Image.fromarray(gray16_array()))
    with pytest.raises(DataCheckError) as caught:
        _engine(tmp_path).test(AnoCLIP(**TINY), datamodule=MVTecAD(root=root, category="bottle", num_workers=0))
    message = str(caught.value)
    assert f"{deep}: image has PIL mode 'I;16'" in message
    assert f"--data LayoutDataModule --data.layout mvtec_ad --data.root {root} --data.category bottle" in message
    assert message.count("Fix:") == 1  # the 8-bit files are not named
    results = _engine(tmp_path).test(
        AnoCLIP(**TINY), datamodule=LayoutDataModule(root=str(root), category="bottle", layout="mvtec_ad",
                                                     num_workers=0), verbose=False
    )
    assert 0.0 <= results[0]["image_AUROC"] <= 1.0  # the fix runs


def test_16_bit_file_in_dataloaders_given_to_the_run_is_refused(tmp_path: Path) -> None:
    root = write_mvtec_set(tmp_path / "data")
    deep = root / "bottle" / "test" / "scratch" / "001.png"
    save(deep, Image.fromarray(gray16_array()))
    datamodule = MVTecAD(root=root, category="bottle", num_workers=0)
    datamodule.setup()
    with pytest.raises(DataCheckError, match=f"{deep}: image has PIL mode 'I;16'"):
        _engine(tmp_path).test(AnoCLIP(**TINY), dataloaders=datamodule.test_dataloader())


def test_truncated_file_under_anomalibs_mvtec_is_refused_before_any_batch(tmp_path: Path) -> None:
    root = write_mvtec_set(tmp_path / "data")
    broken = root / "bottle" / "test" / "scratch" / "000.png"
    with Image.open(broken) as image:
        broken.write_bytes(truncated_bytes(image.copy(), "PNG", keep=0.5))
    with pytest.raises(DataCheckError) as caught:
        _engine(tmp_path).test(AnoCLIP(**TINY), datamodule=MVTecAD(root=root, category="bottle", num_workers=0))
    assert f"{broken}: cannot read image (Cannot read image {broken}" in str(caught.value)
    assert "re-export the file, or remove the sample from the dataset" in str(caught.value)


def test_png_data_is_verified_by_its_checksums_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check leaves the one decode to the run: no PNG is decoded, yet a byte flipped in the pixel data of a
    whole file with a sound header is refused by name."""
    good, damaged = tmp_path / "good.png", tmp_path / "damaged.png"
    save_rgb(good)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the IDAT chunk of a 64 x 64 RGB PNG
    damaged.write_bytes(bytes(data))
    samples = pd.DataFrame({"image_path": [str(good), str(damaged)], "mask_path": "", "label_index": [0, 0]})
    samples.attrs["task"] = "classification"

    def no_decode(self: PngImagePlugin.PngImageFile) -> None:
        raise AssertionError(self.filename)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decode)
    problems = check_samples(samples, verify=True)
    assert [(problem.kind, problem.paths) for problem in problems] == [(ProblemKind.UNREADABLE, (damaged,))]
    assert "checksum in b'IDAT'" in str(problems[0])


def test_category_without_test_folder_is_refused_with_its_counts(tmp_path: Path) -> None:
    """Anomalib's MVTecAD tests such a category on a fifth of the train images (one normal image here)."""
    root = write_mvtec_set(tmp_path / "data", n_good=5)
    shutil.rmtree(root / "bottle" / "test")
    shutil.rmtree(root / "bottle" / "ground_truth")
    with pytest.raises(EmptySplitError) as caught:
        _engine(tmp_path).test(AnoCLIP(**TINY), datamodule=MVTecAD(root=root, category="bottle", num_workers=0))
    assert f"The test split of {root / 'bottle'} (MVTecAD) holds 0 anomalous and 1 normal images" in str(caught.value)


def _test_split(tmp_path: Path, labels: list[int], *, plugin: bool) -> SampleDataset | SimpleNamespace:
    """A test split holding ``labels``: the plugin's ``SampleDataset``, or another dataset with a samples table."""
    paths = [str(tmp_path / f"{index}.png") for index in range(len(labels))]
    for index, path in enumerate(paths):
        save_rgb(Path(path), seed=index)
    table = pd.DataFrame({"image_path": paths, "mask_path": "", "label_index": labels, "split": "test"})
    table.attrs["task"] = "classification"
    return SampleDataset(table) if plugin else SimpleNamespace(samples=table)


@pytest.mark.parametrize(
    ("labels", "plugin", "refused"),
    [
        ([1, 1], True, False),  # anomalous-only sets of the sweep (polyps, ISIC, TN3K): pixel metrics only
        ([0, 0], True, True),
        ([0, 1], True, False),
        ([1, 1], False, True),  # Anomalib's datamodules: both classes
        ([0, 0], False, True),
        ([0, 1], False, False),
    ],
)
def test_split_rule(tmp_path: Path, labels: list[int], plugin: bool, refused: bool) -> None:
    dataset = _test_split(tmp_path, labels, plugin=plugin)
    datamodule = SimpleNamespace(root=tmp_path, category="cat")
    if not refused:
        check_test_split(dataset, datamodule)
        return
    counts = rf"of {tmp_path / 'cat'} .* holds {labels.count(1)} anomalous and {labels.count(0)} normal"
    with pytest.raises(EmptySplitError, match=counts):
        check_test_split(dataset, datamodule)
