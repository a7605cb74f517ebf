"""Anomalib's model contract: the cycle every built-in model goes through, for GlocalCLIP and AnoCLIP.

On a generated MVTec AD tree: fit, validate, test, train, predict, export to torch, ONNX and OpenVINO, then
predict from each export with Anomalib's inferencers in a fresh process and compare with
``Engine.predict``. Like Anomalib's own integration tests, the steps after ``fit`` start from its checkpoint.

GlocalCLIP runs both ways: learning prompts (``ONE_CLASS``, trained on ``AuxiliaryTransfer``) and zero-shot
from a prompt file (``ZERO_SHOT``). AnoCLIP is training-free (``ZERO_SHOT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from anomalib import LearningType
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType
from anomalib.engine import Engine

from anomalib_glocalclip import AnoCLIP, AuxiliarySource, AuxiliaryTransfer, GlocalCLIP
from anomalib_glocalclip.glocalclip.lightning_model import PROMPT_FILE_NAME
from anomalib_glocalclip.testing import generate_mvtec_ad
from deploy_helpers import (
    agree_away_from_threshold,
    anoclip_args,
    glocalclip_args,
    max_abs_diff,
    normalised_tolerances,
    predict_in_fresh_process,
    write_shallow_clip_config,
)

pytest.importorskip("onnxscript")
pytest.importorskip("openvino")

METRICS = {"image_AUROC", "image_AUPR", "image_F1Max", "pixel_AUROC", "pixel_AUPRO", "pixel_F1Max"}
KINDS = ["GlocalCLIP-learning-prompts", "GlocalCLIP-zero-shot", "AnoCLIP"]



@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shallow tiny CLIP config, a GlocalCLIP prompt file and a generated MVTec AD ``bottle``."""
    root = tmp_path_factory.mktemp("contract")
    config = write_shallow_clip_config(root)
    prompts = GlocalCLIP(**glocalclip_args(config)).save_prompts(root / "prompts.pt")
    data = generate_mvtec_ad(root / "mvtec", categories=("bottle",), n_train=2, n_test_good=3, n_test_bad=3,
                             odd_images=False, seed=5)
    return {"config": config, "prompts": prompts, "data": data}


def build(kind: str, workspace: dict[str, Path]) -> tuple[GlocalCLIP | AnoCLIP, Any]:
    """A fresh model of ``kind`` and its datamodule."""
    target = MVTecAD(root=workspace["data"], category="bottle", num_workers=0)
    if kind == "GlocalCLIP-learning-prompts":
        auxiliary = AuxiliarySource("mvtec_ad", str(workspace["data"]))
        datamodule = AuxiliaryTransfer(auxiliary=auxiliary, target=target, train_batch_size=4, num_workers=0)
        return GlocalCLIP(**glocalclip_args(workspace["config"])), datamodule
    if kind == "GlocalCLIP-zero-shot":
        return GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(workspace["prompts"])), target
    return AnoCLIP(**anoclip_args(workspace["config"], image_score_views="none")), target


def engine_at(root: Path) -> Engine:
    return Engine(accelerator="cpu", logger=False, default_root_dir=root, max_epochs=1, enable_progress_bar=False)


def check_metrics(results: list[dict[str, float]]) -> None:
    """The plugin's metric names, all computed (pixel metrics too: MVTec AD has masks)."""
    assert set(results[0]) >= METRICS, results
    assert all(0.0 <= results[0][name] <= 1.0 for name in METRICS), results


def per_image(predictions: list) -> dict[str, dict[str, np.ndarray]]:
    """``Engine.predict`` batches as {image path: {pred_score, anomaly_map, pred_label}}."""
    table = {}
    for batch in predictions:
        for index, path in enumerate(batch.image_path):
            table[str(path)] = {
                "pred_score": batch.pred_score[index].float().numpy(),
                "anomaly_map": batch.anomaly_map[index].squeeze().float().numpy(),
                "pred_label": batch.pred_label[index].numpy(),
            }
    return table


def check_against_engine(
    outputs: dict[str, Any], expected: dict[str, np.ndarray], tolerances: tuple[float, float]
) -> None:
    """Normalised score and map within ``tolerances``; equal labels unless the score is that close to 0.5."""
    score_tolerance, map_tolerance = tolerances
    assert max_abs_diff(outputs["pred_score"], expected["pred_score"]) <= score_tolerance
    assert max_abs_diff(outputs["anomaly_map"], expected["anomaly_map"]) <= map_tolerance
    assert agree_away_from_threshold(
        outputs["pred_label"], expected["pred_label"], expected["pred_score"], margin=score_tolerance,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_anomalib_model_cycle(kind: str, workspace: dict[str, Path], tmp_path: Path) -> None:
    model, datamodule = build(kind, workspace)
    expected_type = LearningType.ONE_CLASS if kind == "GlocalCLIP-learning-prompts" else LearningType.ZERO_SHOT
    assert model.learning_type == expected_type
    engine = engine_at(tmp_path / "results")

    # fit: trains prompts (ONE_CLASS) or validates on the target for thresholds (ZERO_SHOT); saves a checkpoint
    engine.fit(model, datamodule=datamodule)
    checkpoint = next((tmp_path / "results").rglob("model.ckpt"))
    if kind == "GlocalCLIP-learning-prompts":
        prompt_file = checkpoint.parent / PROMPT_FILE_NAME
        assert prompt_file.is_file()
        reused = GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(prompt_file))
        assert reused.learning_type == LearningType.ZERO_SHOT

    assert engine.validate(model, datamodule=datamodule, ckpt_path=checkpoint)
    check_metrics(engine.test(model, datamodule=datamodule, ckpt_path=checkpoint))

    fresh_model, fresh_datamodule = build(kind, workspace)
    engine_at(tmp_path / "train").train(fresh_model, datamodule=fresh_datamodule)

    predictions = per_image(engine.predict(model, datamodule=datamodule, ckpt_path=checkpoint))
    assert len(predictions) == 6
    images = sorted(predictions)[:1] + sorted(predictions)[-1:]  # one anomalous, one good

    exports = {
        export_type: engine.export(model, export_type, export_root=tmp_path / "export", ckpt_path=checkpoint)
        for export_type in ExportType
    }
    assert all(path is not None and path.is_file() for path in exports.values()), exports

    tolerances = normalised_tolerances(model)  # the model holds the checkpoint's statistics since test/predict
    exported = predict_in_fresh_process(
        {export_type.value: path for export_type, path in exports.items()},
        tmp_path / "inference",
        images=[Path(image) for image in images],
    )
    assert sorted(exported) == ["onnx", "openvino", "torch"]
    for outputs_per_image in exported.values():
        for image, outputs in zip(images, outputs_per_image, strict=True):
            check_against_engine(outputs, predictions[image], tolerances)
