"""``Engine.test`` / ``Engine.predict`` (``anomalib test`` / ``predict``) of the plugin's models: validation, then the
test or predict pass, as for Anomalib's own zero-shot models; the same metrics as the plugin's one-pass sweep; the
target's images read by the plugin's reader."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from lightning.pytorch import seed_everything

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.compat import set_post_processor_thresholds
from anomalib_glocalclip.components import FittedThresholdPostProcessor
from anomalib_glocalclip.evaluation import evaluate, sweep_evaluator
from anomalib_glocalclip.evaluation.models import heatmap_visualizer
from anomalib_glocalclip.testing import OFFICIAL_LAYOUT_GENERATORS, TINY_CLIP_CONFIG

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A miniature MVTec AD (bottle: 2 good + 2 bad test images) and a tiny random GlocalCLIP prompt file."""
    root = tmp_path_factory.mktemp("data")
    torch.manual_seed(0)
    prompts = GlocalCLIP(**TINY, sigma=1.0).save_prompts(root / "prompts.pt")
    return {"mvtec": OFFICIAL_LAYOUT_GENERATORS["mvtec_ad"](root / "mvtec"), "prompts": prompts}


def _factory(model_name: str, data: dict[str, Path]) -> functools.partial:
    if model_name == "glocalclip":
        return functools.partial(GlocalCLIP, prompt_weights=str(data["prompts"]), sigma=1.0, **TINY)
    return functools.partial(AnoCLIP, **TINY)


def _engine(output: Path) -> Engine:
    return Engine(default_root_dir=output, accelerator="cpu", logger=False, enable_progress_bar=False)


def _bottle(data: dict[str, Path]) -> MVTecAD:
    return MVTecAD(root=data["mvtec"], category="bottle", eval_batch_size=2, num_workers=0)


def _pictures(folder: Path) -> dict[tuple[str, ...], bytes]:
    """The PNGs under ``folder`` by defect folder and file name."""
    return {path.parts[-2:]: path.read_bytes() for path in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("model_name", ["glocalclip", "anoclip"])
def test_engine_test_validates_then_tests_with_the_metrics_of_the_one_pass_sweep(
    model_name: str, data: dict[str, Path], validated: list[int], tmp_path: Path
) -> None:
    """``anomalib test`` scores the data twice (validation, then test); ``evaluate`` once, with the same metrics and
    the same heatmaps (whose predicted masks show the thresholds: fitted on the test pass, they equal validation's).

    Both on raw scores with the sweep's metrics, so that the numbers compare; the same seeded random weights.
    """
    factory = _factory(model_name, data)
    seed_everything(111, verbose=False)  # the sweep's default seed, set before it builds its model
    model = factory(
        post_processor=FittedThresholdPostProcessor(enable_normalization=False),
        evaluator=sweep_evaluator(),
        visualizer=heatmap_visualizer(tmp_path / "test_heatmaps"),
    )
    metrics = _engine(tmp_path / "test").test(model, datamodule=_bottle(data), verbose=False)[0]
    assert sum(validated) == 4  # the validation pass over the 4 test images, before the test
    assert model.validated_on_data

    validated.clear()
    output = tmp_path / "sweep"
    table = evaluate(factory, "mvtec_ad", data["mvtec"], categories=["bottle"], output=output, accelerator="cpu",
                     batch_size=2, num_workers=0, progress=False)
    assert table.attrs["failed"] == []
    assert validated == []  # one pass: no validation pass over the test files
    swept = json.loads((output / "categories" / "bottle.json").read_text(encoding="utf-8"))["metrics"]
    assert set(metrics) == set(swept)
    assert {"image_AUROC", "pixel_AUROC", "pixel_ReferenceAUPRO"} <= set(metrics)
    for name, value in metrics.items():
        assert swept[name] == pytest.approx(value, abs=1e-6), name
    pictures = _pictures(tmp_path / "test_heatmaps")
    assert len(pictures) == 4
    assert pictures == _pictures(output / "heatmaps" / "bottle")


def test_engine_predict_validates_then_predicts(data: dict[str, Path], validated: list[int], tmp_path: Path) -> None:
    """``Engine.predict`` on a datamodule validates first: labels, ``predictions.csv`` and pictures use thresholds
    fitted on the data, not those the post-processor held before (another dataset's)."""
    model = _factory("anoclip", data)()
    set_post_processor_thresholds(model.post_processor, image=0.7, pixel=0.7)
    for name, value in (("image_min", 0.2), ("image_max", 0.6), ("pixel_min", 0.3), ("pixel_max", 0.9)):
        getattr(model.post_processor, name).fill_(value)
    predictions: list[Any] = _engine(tmp_path).predict(model, datamodule=_bottle(data), return_predictions=True)
    assert sum(validated) == 4
    assert model.validated_on_data
    labels = torch.cat([batch.pred_label for batch in predictions]).int()
    assert 0 < int(labels.sum()) < 4  # thresholds from this data: both classes predicted, the stale 0.7 would not
    (table,) = tmp_path.rglob("predictions.csv")
    with table.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    paths = [str(path) for batch in predictions for path in batch.image_path]
    assert [row["image_path"] for row in rows] == paths
    assert [int(row["pred_label"]) for row in rows] == labels.tolist()
    assert len(_pictures(tmp_path)) == 4


def test_engine_test_reads_sixteen_bit_targets_as_their_eight_bit_twins(data: dict[str, Path], tmp_path: Path) -> None:
    """Anomalib's reader clips 16-bit images to white; the plugin's datamodule reads them right."""
    import shutil

    import numpy as np
    from PIL import Image

    from anomalib_glocalclip.data import LayoutDataModule
    from anomalib_glocalclip.data.dataset import SampleDataset

    results, datasets = {}, []
    for depth in (8, 16):
        root = tmp_path / f"mvtec_{depth}"
        shutil.copytree(data["mvtec"] / "bottle", root / "bottle")
        for path in sorted((root / "bottle" / "test").rglob("*.png")):
            with Image.open(path) as image:
                gray = np.asarray(image.convert("L"), dtype=np.uint16)
            Image.fromarray(gray * 257 if depth == 16 else gray.astype(np.uint8)).save(path)
        datamodule = LayoutDataModule(root=str(root), category="bottle", layout="mvtec_ad", eval_batch_size=2,
                                      num_workers=0)
        engine = Engine(default_root_dir=tmp_path / f"run_{depth}", accelerator="cpu", logger=False,
                        enable_progress_bar=False)
        results[depth] = engine.test(_factory("anoclip", data)(), datamodule=datamodule, verbose=False)[0]
        datasets.append(datamodule.test_data)
    for name, value in results[8].items():  # 1e-5: x/65535 and x/255 differ by an ulp in fp32
        assert results[16][name] == pytest.approx(value, abs=1e-5), name
    assert all(isinstance(dataset, SampleDataset) for dataset in datasets)
