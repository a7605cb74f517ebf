"""``Engine.test`` / ``Engine.predict`` of the plugin's models: one pass where the validation split is the data they
score, and the target's images read by the plugin's reader."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.post_processing import PostProcessor
from anomalib.visualization import ImageVisualizer

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.compat import post_processor_thresholds, set_post_processor_thresholds
from anomalib_glocalclip.components import base as base_module
from anomalib_glocalclip.components.visualizer import PluginImageVisualizer
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


def _test(model: Any, root: Path, output: Path, **datamodule_args: Any) -> dict[str, float]:
    datamodule = MVTecAD(root=root, category="bottle", eval_batch_size=2, num_workers=0, **datamodule_args)
    engine = Engine(default_root_dir=output, accelerator="cpu", logger=False, enable_progress_bar=False)
    results = engine.test(model, datamodule=datamodule, verbose=False)[0]
    assert engine.trainer.limit_val_batches == 1.0  # the trainer's own setting is given back
    return results


def _with_stale_post_processor(model: Any) -> Any:
    """``model`` whose post-processor holds another dataset's thresholds and ranges (as after an earlier test)."""
    set_post_processor_thresholds(model.post_processor, image=0.7, pixel=0.7)
    for name, value in (("image_min", 0.2), ("image_max", 0.6), ("pixel_min", 0.3), ("pixel_max", 0.9)):
        getattr(model.post_processor, name).fill_(value)
    return model


def _pictures(folder: Path) -> dict[Path, bytes]:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize(
    ("model_name", "normalize"), [("glocalclip", True), ("anoclip", True), ("glocalclip", False)]
)
def test_engine_test_runs_one_pass_with_the_two_pass_results(
    model_name: str,
    normalize: bool,
    data: dict[str, Path],
    validated: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No validation pass; metrics, thresholds, ranges and heatmaps (whose masks show the thresholds) as with one.

    Anomalib's default post-processor normalises: its metrics see scores normalised by the fitted ranges. The
    post-processor starts with another dataset's values, which neither pass may use.
    """
    factory = functools.partial(
        _factory(model_name, data), post_processor=PostProcessor(enable_normalization=normalize)
    )
    torch.manual_seed(1)
    one_pass = _with_stale_post_processor(factory())
    one_pass_metrics = _test(one_pass, data["mvtec"], tmp_path / "one")
    assert validated == []
    assert one_pass.validated_on_data  # thresholds from data: predict on a folder keeps them
    assert not one_pass.validation_deferred

    monkeypatch.setattr(base_module, "engine_run_after_validation", lambda: None)
    torch.manual_seed(1)
    two_pass = _with_stale_post_processor(factory())
    two_pass_metrics = _test(two_pass, data["mvtec"], tmp_path / "two")
    assert sum(validated) == 4  # the validation pass over the 4 test images

    assert set(one_pass_metrics) == set(two_pass_metrics)
    assert {"image_AUROC", "pixel_AUPRO"} <= set(one_pass_metrics)
    for name, value in two_pass_metrics.items():
        assert one_pass_metrics[name] == pytest.approx(value, abs=1e-6), name
    assert post_processor_thresholds(one_pass.post_processor) == pytest.approx(
        post_processor_thresholds(two_pass.post_processor), abs=1e-7
    )
    for name in ("image_min", "image_max", "pixel_min", "pixel_max"):
        assert getattr(one_pass.post_processor, name).item() == pytest.approx(
            getattr(two_pass.post_processor, name).item(), abs=1e-7
        ), name
    one_pass_pictures = _pictures(tmp_path / "one")
    assert len(one_pass_pictures) == 4
    assert one_pass_pictures == _pictures(tmp_path / "two")


def test_validation_that_is_not_the_test_split_still_runs(
    data: dict[str, Path], validated: list[int], tmp_path: Path
) -> None:
    """Validation on other files (here half the test split) is not replaced by the test pass."""
    model = _factory("anoclip", data)()
    _test(model, data["mvtec"], tmp_path, val_split_mode="from_test", val_split_ratio=0.5)
    assert sum(validated) > 0


def test_other_visualizers_keep_the_validation_pass(
    data: dict[str, Path], validated: list[int], tmp_path: Path
) -> None:
    """A visualizer that is not the plugin's draws during the test: its thresholds must exist by then."""
    model = _factory("anoclip", data)(visualizer=ImageVisualizer(output_dir=tmp_path / "pictures"))
    _test(model, data["mvtec"], tmp_path)
    assert sum(validated) == 4


def test_explicit_validate_still_validates(data: dict[str, Path], validated: list[int], tmp_path: Path) -> None:
    """Only the validation inside ``Engine.test`` is deferred; ``Engine.validate`` runs as asked."""
    model = _factory("anoclip", data)(visualizer=PluginImageVisualizer(output_dir=tmp_path / "pictures"))
    datamodule = MVTecAD(root=data["mvtec"], category="bottle", eval_batch_size=2, num_workers=0)
    engine = Engine(default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_progress_bar=False)
    engine.validate(model, datamodule=datamodule, verbose=False)
    assert sum(validated) == 4
    assert model.validated_on_data


def _predict(model: Any, root: Path, output: Path) -> list[Any]:
    datamodule = MVTecAD(root=root, category="bottle", eval_batch_size=2, num_workers=0)
    engine = Engine(default_root_dir=output, accelerator="cpu", logger=False, enable_progress_bar=False)
    predictions = engine.predict(model, datamodule=datamodule, return_predictions=True)
    assert engine.trainer.limit_val_batches == 1.0
    return predictions


def test_engine_predict_on_a_datamodule_runs_one_pass_with_the_two_pass_predictions(
    data: dict[str, Path], validated: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Returned predictions, ``predictions.csv`` and pictures as after a validation pass, without one."""
    factory = _factory("anoclip", data)
    one_pass = _with_stale_post_processor(factory())
    one_pass_predictions = _predict(one_pass, data["mvtec"], tmp_path / "one")
    assert validated == []
    assert one_pass.validated_on_data
    assert not one_pass.validation_deferred

    monkeypatch.setattr(base_module, "engine_run_after_validation", lambda: None)
    two_pass = _with_stale_post_processor(factory())
    two_pass_predictions = _predict(two_pass, data["mvtec"], tmp_path / "two")
    assert sum(validated) == 4

    assert len(one_pass_predictions) == len(two_pass_predictions) == 2
    for one, two in zip(one_pass_predictions, two_pass_predictions, strict=True):
        assert one.image_path == two.image_path
        for name in ("pred_score", "anomaly_map", "pred_label", "pred_mask"):
            torch.testing.assert_close(getattr(one, name), getattr(two, name), atol=1e-6, rtol=0, msg=name)
    labels = torch.cat([batch.pred_label for batch in two_pass_predictions])
    assert 0 < int(labels.sum()) < 4  # thresholds from this data: both classes predicted, the stale 0.7 would not
    (one_table,) = (tmp_path / "one").rglob("predictions.csv")
    (two_table,) = (tmp_path / "two").rglob("predictions.csv")
    assert one_table.read_text() == two_table.read_text()
    one_pass_pictures = _pictures(tmp_path / "one")
    assert len(one_pass_pictures) == 4
    assert one_pass_pictures == _pictures(tmp_path / "two")


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
