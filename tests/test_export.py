"""Export through Anomalib's CLI (``anomalib export``), in a subprocess: the slow tier.

What an export holds and how it runs (graph, ONNX Runtime, Anomalib's inferencers, several input sizes) is
checked once per model, on the exports of its full cycle, in ``test_model_contract.py``. Here the command line:
thresholds of a zero-shot checkpoint travel into each export type, AnoCLIP exports without a run, AnoCLIP+
is refused with a clear warning.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType
from anomalib.engine import Engine

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.testing import generate_mvtec_ad
from deploy_helpers import (
    SCORE_TOLERANCE,
    agree_away_from_threshold,
    anoclip_args,
    cli_args,
    glocalclip_args,
    max_abs_diff,
    normalised_tolerances,
    predict_in_fresh_process,
    run_cli,
    write_shallow_clip_config,
)

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("openvino")

pytestmark = pytest.mark.slow

ANOMALIB = str(Path(sys.executable).with_name("anomalib"))
OUTPUTS = ["pred_score", "pred_label", "anomaly_map", "pred_mask"]
INPUT_SIZES = [(64, 64), (96, 80), (40, 56)]
"""Input sizes of the reference-preprocessing export check (the graph resizes any size)."""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shallow tiny CLIP config, a GlocalCLIP prompt file and a small MVTec AD tree."""
    root = tmp_path_factory.mktemp("export")
    config = write_shallow_clip_config(root)
    prompts = GlocalCLIP(**glocalclip_args(config)).save_prompts(root / "prompts.pt")
    data = generate_mvtec_ad(root / "mvtec", categories=("bottle",), n_train=1, n_test_good=3, n_test_bad=3,
                             odd_images=False, seed=3)
    return {"root": root, "config": config, "prompts": prompts, "data": data}


def reference(model: torch.nn.Module, images: torch.Tensor) -> dict[str, np.ndarray]:
    """The torch model's outputs (the same ``forward`` that was exported)."""
    with torch.no_grad():
        output = model(images)
    return {name: getattr(output, name).float().numpy() for name in OUTPUTS}


def check_close(
    outputs: dict[str, Any],
    expected: dict[str, np.ndarray],
    tolerances: tuple[float, float] = (SCORE_TOLERANCE, SCORE_TOLERANCE),
) -> None:
    """Scores and maps within the (score, map) tolerances; decisions equal unless that close to the threshold."""
    score_tolerance, map_tolerance = tolerances
    assert max_abs_diff(outputs["pred_score"], expected["pred_score"]) <= score_tolerance
    assert max_abs_diff(outputs["anomaly_map"], expected["anomaly_map"]) <= map_tolerance
    assert agree_away_from_threshold(
        outputs["pred_label"], expected["pred_label"], expected["pred_score"], margin=score_tolerance,
    )
    assert agree_away_from_threshold(
        outputs["pred_mask"], expected["pred_mask"], expected["anomaly_map"], margin=map_tolerance,
    )


def random_batch(size: tuple[int, int]) -> torch.Tensor:
    """Two random images ``[2, 3, H, W]`` in [0, 1], the same for a given size."""
    return torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(sum(size)))


@pytest.fixture(scope="module")
def zero_shot_checkpoint(workspace: dict[str, Path]) -> dict[str, Any]:
    """A zero-shot GlocalCLIP run on the target (validation sets thresholds and normalisation) and its checkpoint."""
    model = GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(workspace["prompts"]))
    root = workspace["root"] / "zero_shot_run"
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=root, enable_progress_bar=False)
    engine.fit(model, datamodule=MVTecAD(root=workspace["data"], category="bottle", num_workers=0))
    checkpoint = next(root.rglob("model.ckpt"))
    return {"model": model.eval(), "checkpoint": checkpoint}


@pytest.mark.parametrize("export_type", ["torch", "onnx", "openvino"])
def test_cli_exports_a_zero_shot_checkpoint(
    export_type: str,
    zero_shot_checkpoint: dict[str, Any],
    workspace: dict[str, Path],
    tmp_path: Path,
) -> None:
    """``anomalib export --model GlocalCLIP --model.prompt_weights p.pt --ckpt_path run.ckpt``: thresholds travel."""
    model = zero_shot_checkpoint["model"]
    natural_pixel_threshold = 0.5 * len(model.model.feature_layers)
    assert model.post_processor._pixel_threshold.item() != pytest.approx(natural_pixel_threshold)  # validated
    init_args = {**glocalclip_args(workspace["config"]), "prompt_weights": str(workspace["prompts"])}
    result = run_cli(ANOMALIB, "export", "--model", "GlocalCLIP", *cli_args(init_args), "--export_type", export_type,
                     "--ckpt_path", str(zero_shot_checkpoint["checkpoint"]), "--export_root", str(tmp_path),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    images = random_batch((64, 64))
    expected = reference(model, images)
    if export_type == "torch":
        exported = torch.load(tmp_path / "weights/torch/model.pt", weights_only=False)["model"].eval()
        outputs = reference(exported, images)
    elif export_type == "onnx":
        session = onnxruntime.InferenceSession(str(tmp_path / "weights/onnx/model.onnx"))
        names = [output.name for output in session.get_outputs()]
        outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))
    else:
        path = tmp_path / "weights/openvino/model.xml"
        outputs = predict_in_fresh_process({"openvino": path}, tmp_path / "inference", arrays=[images.numpy()])
        outputs = outputs["openvino"][0]
    check_close(outputs, expected, normalised_tolerances(model))


def test_cli_exports_anoclip_without_a_run(workspace: dict[str, Path], tmp_path: Path) -> None:
    """Without a checkpoint the export itself encodes the prompts (for ``class_name``), so the model works."""
    init_args = anoclip_args(workspace["config"], class_name="bottle", image_score_views="none")
    result = run_cli(ANOMALIB, "export", "--model", "AnoCLIP", *cli_args(init_args), "--export_type", "torch",
                     "--export_root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    exported = torch.load(tmp_path / "weights/torch/model.pt", weights_only=False)["model"].eval()
    assert exported._prompted_for == ("bottle", "object")

    model = AnoCLIP(**init_args).eval()
    model.setup("test")
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert max_abs_diff(exported.model(images).pred_score, model.model(images).pred_score) <= SCORE_TOLERANCE


def test_cli_refuses_to_export_anoclip_plus_with_exit_status_1(workspace: dict[str, Path], tmp_path: Path) -> None:
    init_args = anoclip_args(workspace["config"], tta=True)
    result = run_cli(ANOMALIB, "export", "--model", "AnoCLIP", *cli_args(init_args), "--export_type", "onnx",
                     "--export_root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    refusal = "Error: AnoCLIP+ (tta=True) optimises an adapter for every image, which cannot be exported."
    assert refusal in result.stderr
    assert "Export AnoCLIP with tta=False instead." in result.stderr
    # Under Anomalib's own command the traceback ends with the plugin's message (no hook replaces Python's).
    assert refusal.removeprefix("Error: ") in result.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.rglob("*.onnx"))


ONE_GREY_LEVEL_TOLERANCE = 2e-3
"""OpenVINO computes the reference resize's float64 coefficients in float32: a resized pixel can move by one grey
level, which moved these maps by 6e-4 in one run and 1.1e-3 in another (OpenVINO's CPU kernels do not give the same
rounding on every run); the bound is about twice the largest seen."""


def reference_preprocessing_model(name: str, workspace: dict[str, Path]) -> GlocalCLIP | AnoCLIP:
    """GlocalCLIP (its reference: PIL bicubic) or AnoCLIP (PIL bilinear) with ``preprocessing="reference"``."""
    if name == "GlocalCLIP":
        return GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(workspace["prompts"]),
                          preprocessing="reference").eval()
    model = AnoCLIP(**anoclip_args(workspace["config"], class_name="bottle", image_score_views="none"),
                    preprocessing="reference").eval()
    model.setup("test")  # encodes the prompts
    return model


@pytest.mark.parametrize(
    ("name", "image_filter", "with_openvino"),
    [("GlocalCLIP", "bicubic", True), ("AnoCLIP", "bilinear", False)],
)
def test_reference_preprocessing_exports(
    name: str,
    image_filter: str,
    with_openvino: bool,
    workspace: dict[str, Path],
    tmp_path: Path,
) -> None:
    """``preprocessing="reference"``: the graph builds PIL's coefficients from the input's size (dynamic sizes).

    ONNX Runtime (float64 honoured) gives the torch model's outputs; OpenVINO at f32 within one grey level
    (checked on one model: its float32 arithmetic is the same for both filters).
    """
    model = reference_preprocessing_model(name, workspace)
    assert model.pre_processor.export_transform.transforms[0].image_filter == image_filter
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path)
    onnx_path = engine.export(model, ExportType.ONNX, export_root=tmp_path)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    batches = [random_batch(size) for size in INPUT_SIZES]
    for images in batches:
        outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))
        check_close(outputs, reference(model, images))
        # The exported (in-graph) resize is the eager PIL-exact one on these inputs.
        eager = model.pre_processor.transform(images)
        torch.testing.assert_close(model.pre_processor(images), eager, atol=0.0, rtol=0.0)
    if not with_openvino:
        return
    openvino_path = engine.export(model, ExportType.OPENVINO, export_root=tmp_path)
    openvino = predict_in_fresh_process({"openvino": openvino_path}, tmp_path / "inference",
                                        arrays=[images.numpy() for images in batches])["openvino"]
    for outputs, images in zip(openvino, batches, strict=True):
        check_close(outputs, reference(model, images), (ONE_GREY_LEVEL_TOLERANCE, ONE_GREY_LEVEL_TOLERANCE))
