"""Export of GlocalCLIP and AnoCLIP to torch, ONNX and OpenVINO, and inference from the exports.

The exported graph is Anomalib's ``forward``: pre-processor (resize + CLIP normalisation), vision path and
scoring, post-processor (normalisation + thresholds). Text features are constants in it. Height and width
stay dynamic (Anomalib's default without ``input_size``): the graph resizes any input to the model's size.
ONNX Runtime and OpenVINO (at f32: its CPU default is bf16) must match the torch model within
``SCORE_TOLERANCE`` on scores and maps. Anomalib's inferencers run in a fresh process (see
``deploy_helpers.predict_in_fresh_process``); ONNX Runtime runs in the test process.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.data.utils import read_image
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
    set_probability_ranges,
    write_shallow_clip_config,
    write_test_image,
)

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
openvino = pytest.importorskip("openvino")

ANOMALIB = str(Path(sys.executable).with_name("anomalib"))
INPUT_SIZES = [(64, 64), (96, 80), (40, 56)]
OUTPUTS = ["pred_score", "pred_label", "anomaly_map", "pred_mask"]



@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shallow tiny CLIP config, a GlocalCLIP prompt file, a small MVTec AD tree and a test image."""
    root = tmp_path_factory.mktemp("export")
    config = write_shallow_clip_config(root)
    prompts = GlocalCLIP(**glocalclip_args(config)).save_prompts(root / "prompts.pt")
    data = generate_mvtec_ad(root / "mvtec", categories=("bottle",), n_train=1, n_test_good=3, n_test_bad=3,
                             odd_images=False, seed=3)
    return {"root": root, "config": config, "prompts": prompts, "data": data,
            "image": write_test_image(root / "image.png")}


def build_model(name: str, workspace: dict[str, Path]) -> GlocalCLIP | AnoCLIP:
    """GlocalCLIP zero-shot from the prompt file, or AnoCLIP (with its 21 augmented views) prompted for bottles."""
    if name == "GlocalCLIP":  # its natural ranges apply: normalisation is linear, nothing clamps
        return GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(workspace["prompts"])).eval()
    model = AnoCLIP(**anoclip_args(workspace["config"], class_name="bottle"))
    set_probability_ranges(model)
    return model.eval()


@pytest.fixture(scope="module", params=["GlocalCLIP", "AnoCLIP"])
def exported(request: pytest.FixtureRequest, workspace: dict[str, Path]) -> dict[str, Any]:
    """A model and its three exports, made with ``Engine.export`` (dynamic batch, height and width)."""
    model = build_model(request.param, workspace)
    root = workspace["root"] / request.param
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=root)
    paths = {export_type: engine.export(model, export_type, export_root=root) for export_type in ExportType}
    return {"name": request.param, "model": model, **{key.value: path for key, path in paths.items()}}


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


def test_exports_are_written(exported: dict[str, Any]) -> None:
    assert exported["torch"].name == "model.pt"
    assert exported["onnx"].name == "model.onnx"
    assert exported["openvino"].name == "model.xml"
    assert exported["openvino"].with_suffix(".bin").is_file()


def test_onnx_graph_holds_no_text_tower(exported: dict[str, Any]) -> None:
    """Learned or ensembled text features are constants: no token embedding, nothing the size of a text tower."""
    graph = onnx.load(str(exported["onnx"])).graph
    clip = exported["model"].model.backbone.clip
    vocab_size = clip.token_embedding.num_embeddings
    tensors = list(graph.initializer)
    tensors += [attribute.t for node in graph.node if node.op_type == "Constant" for attribute in node.attribute
                if attribute.name == "value"]
    assert not [tensor.name for tensor in tensors if vocab_size in tensor.dims]
    vision_size = sum(parameter.numel() for parameter in clip.visual.parameters())
    text_size = sum(parameter.numel() for parameter in clip.transformer.parameters())
    graph_size = sum(int(np.prod(tensor.dims)) for tensor in tensors)
    assert graph_size < vision_size + 50_000 < vision_size + text_size, (graph_size, vision_size)
    assert [node.name for node in graph.input] == ["input"]
    assert [node.name for node in graph.output] == OUTPUTS


def random_batch(size: tuple[int, int]) -> torch.Tensor:
    """Two random images ``[2, 3, H, W]`` in [0, 1], the same for a given size."""
    return torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(sum(size)))


@pytest.mark.parametrize("size", INPUT_SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_onnx_runtime_matches_torch(exported: dict[str, Any], size: tuple[int, int]) -> None:
    """Batch of 2 at the model's size and at others (the graph resizes; maps come at the model's size)."""
    images = random_batch(size)
    session = onnxruntime.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))
    assert outputs["anomaly_map"].shape == (2, 64, 64)
    check_close(outputs, reference(exported["model"], images))


@pytest.fixture(scope="module")
def fresh_process_predictions(
    exported: dict[str, Any], workspace: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Anomalib's inferencers on the three exports in a new process: the batches of ``INPUT_SIZES``, then the PNG."""
    return predict_in_fresh_process(
        {name: exported[name] for name in ("torch", "openvino", "onnx")},
        tmp_path_factory.mktemp(f"inference_{exported['name']}"),
        arrays=[random_batch(size).numpy() for size in INPUT_SIZES],
        images=[workspace["image"]],
    )


@pytest.mark.parametrize("export", ["torch", "openvino", "onnx"])
@pytest.mark.parametrize("size", INPUT_SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_inferencers_match_torch(
    exported: dict[str, Any],
    fresh_process_predictions: dict[str, list[dict[str, np.ndarray]]],
    size: tuple[int, int],
    export: str,
) -> None:
    """TorchInferencer, and OpenVINOInferencer at f32 on the IR and on the ONNX file, in a fresh process."""
    outputs = fresh_process_predictions[export][INPUT_SIZES.index(size)]
    check_close(outputs, reference(exported["model"], random_batch(size)))


@pytest.mark.parametrize("export", ["torch", "openvino", "onnx"])
def test_inferencers_predict_from_an_image_file(
    exported: dict[str, Any],
    fresh_process_predictions: dict[str, list[dict[str, np.ndarray]]],
    workspace: dict[str, Path],
    export: str,
) -> None:
    """Anomalib's inferencers read a 96x80 PNG as the model's own pipeline does, and agree with it."""
    expected = reference(exported["model"], read_image(workspace["image"], as_tensor=True).unsqueeze(0))
    check_close(fresh_process_predictions[export][len(INPUT_SIZES)], expected)


@pytest.fixture(scope="module")
def zero_shot_checkpoint(workspace: dict[str, Path]) -> dict[str, Any]:
    """A zero-shot GlocalCLIP run on the target (validation sets thresholds and normalisation) and its checkpoint."""
    model = GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(workspace["prompts"]))
    root = workspace["root"] / "zero_shot_run"
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=root, enable_progress_bar=False)
    engine.fit(model, datamodule=MVTecAD(root=workspace["data"], category="bottle", num_workers=0))
    checkpoint = next(root.rglob("model.ckpt"))
    return {"model": model.eval(), "checkpoint": checkpoint}


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_refuses_to_export_anoclip_plus_with_exit_status_1(workspace: dict[str, Path], tmp_path: Path) -> None:
    init_args = anoclip_args(workspace["config"], tta=True)
    result = run_cli(ANOMALIB, "export", "--model", "AnoCLIP", *cli_args(init_args), "--export_type", "onnx",
                     "--export_root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    refusal = "Error: AnoCLIP+ (tta=True) optimises an adapter for every image, which cannot be exported."
    assert refusal in result.stderr
    assert "Export AnoCLIP with tta=False instead." in result.stderr
    assert "Traceback" not in result.stderr  # the message, not a traceback
    assert not list(tmp_path.rglob("*.onnx"))


ONE_GREY_LEVEL_TOLERANCE = 1e-3
"""OpenVINO computes the reference resize's float64 coefficients in float32: a resized pixel can move by one grey
level, which moves these scores and maps by up to about 6e-4."""


def test_reference_preprocessing_exports(workspace: dict[str, Path], tmp_path: Path) -> None:
    """``preprocessing="reference"``: the graph builds PIL's coefficients from the input's size (dynamic sizes).

    ONNX Runtime (float64 honoured) gives the torch model's outputs; OpenVINO at f32 within one grey level.
    """
    model = GlocalCLIP(**glocalclip_args(workspace["config"]), prompt_weights=str(workspace["prompts"]),
                       preprocessing="reference").eval()
    engine = Engine(accelerator="cpu", logger=False, default_root_dir=tmp_path)
    onnx_path = engine.export(model, ExportType.ONNX, export_root=tmp_path)
    openvino_path = engine.export(model, ExportType.OPENVINO, export_root=tmp_path)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    batches = [random_batch(size) for size in INPUT_SIZES]
    for images in batches:
        outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))
        check_close(outputs, reference(model, images))
        # The exported (in-graph) resize is the eager PIL-exact one on these inputs.
        eager = model.pre_processor.transform(images)
        torch.testing.assert_close(model.pre_processor(images), eager, atol=0.0, rtol=0.0)
    openvino = predict_in_fresh_process({"openvino": openvino_path}, tmp_path / "inference",
                                        arrays=[images.numpy() for images in batches])["openvino"]
    for outputs, images in zip(openvino, batches, strict=True):
        check_close(outputs, reference(model, images), (ONE_GREY_LEVEL_TOLERANCE, ONE_GREY_LEVEL_TOLERANCE))
