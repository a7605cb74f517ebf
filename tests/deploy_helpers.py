"""Helpers shared by the export, model-contract and benchmark tests (imported by them; not a test module).

Export traces the whole vision tower, so its cost grows with depth: the 24-layer tiny CLIP takes ~17 s per ONNX
export on this machine, a 4-layer copy of it ~5 s. These tests check plumbing and numerics of the graph, which do
not need depth, so they use :func:`write_shallow_clip_config` (the tiny CLIP with 4 vision layers; the text tower
keeps its 12 layers, which GlocalCLIP's 9 deep prompts need).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, make_image

SHALLOW_VISION_LAYERS = 4
IMAGE_SIZE = 64
SCORE_TOLERANCE = 1e-4
"""Largest difference accepted between the torch model and an export (scores and maps, both in [0, 1])."""
RAW_TOLERANCE = 1e-5
"""Largest difference accepted in raw model outputs; normalisation divides it by the validation range."""


def write_shallow_clip_config(folder: Path) -> Path:
    """Write the tiny CLIP's config with a 4-layer vision tower into ``folder``; return its path."""
    config = json.loads(TINY_CLIP_CONFIG.read_text())
    config["vision_cfg"]["layers"] = SHALLOW_VISION_LAYERS
    path = Path(folder) / "shallow-clip.json"
    path.write_text(json.dumps(config))
    return path


def glocalclip_args(config: Path) -> dict[str, Any]:
    """Init args of GlocalCLIP on the shallow tiny CLIP (map layers 2 and 4, 1 px smoothing at 64 px)."""
    return {
        "backbone": str(config),
        "pretrained": None,
        "image_size": IMAGE_SIZE,
        "feature_layers": [2, 4],
        "vv_start_layer": 2,
        "sigma": 1.0,
    }


def anoclip_args(config: Path, **overrides: Any) -> dict[str, Any]:
    """Init args of AnoCLIP on the shallow tiny CLIP."""
    return {"backbone": str(config), "pretrained": None, "image_size": IMAGE_SIZE, **overrides}


def cli_args(init_args: dict[str, Any]) -> list[str]:
    """``--model.<name> <value>`` pairs for Anomalib's CLI."""
    arguments = []
    for name, value in init_args.items():
        text = "null" if value is None else json.dumps(value) if isinstance(value, list) else str(value)
        arguments += [f"--model.{name}", text]
    return arguments


def set_probability_ranges(model: torch.nn.Module) -> None:
    """Post-processor statistics of a [0, 1] probability (threshold 0.5), so normalisation is the identity.

    A fresh zero-shot model has NaN statistics, with which eager thresholding returns the raw values while
    the exported graph compares against NaN; and validated statistics clamp scores, which hides differences.
    """
    for name, value in (
        ("_image_threshold", 0.5),
        ("image_min", 0.0),
        ("image_max", 1.0),
        ("_pixel_threshold", 0.5),
        ("pixel_min", 0.0),
        ("pixel_max", 1.0),
    ):
        getattr(model.post_processor, name).fill_(value)


def write_test_image(path: Path, size: tuple[int, int] = (96, 80), seed: int = 0) -> Path:
    """A generated anomalous product image (PNG) at ``size`` ``(H, W)``, not the model's input size."""
    image, _ = make_image(np.random.default_rng(seed), size, "bottle", anomalous=True, defect="scratch")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def normalised_tolerances(model: torch.nn.Module) -> tuple[float, float]:
    """Tolerances of the normalised (score, map) values of ``model``.

    Normalisation divides raw differences by the range seen in validation, which is tiny for random backbones:
    the raw tolerance over that range, when it is larger than ``SCORE_TOLERANCE``.
    """
    processor = model.post_processor
    image_range = float(processor.image_max - processor.image_min)
    pixel_range = float(processor.pixel_max - processor.pixel_min)
    return (
        max(SCORE_TOLERANCE, RAW_TOLERANCE / max(image_range, 1e-12)),
        max(SCORE_TOLERANCE, RAW_TOLERANCE / max(pixel_range, 1e-12)),
    )


def max_abs_diff(first: Any, second: Any) -> float:
    """Largest absolute difference of two tensors or arrays of the same number of elements."""
    first = np.asarray(first.detach().cpu() if isinstance(first, torch.Tensor) else first, dtype=np.float32)
    second = np.asarray(second.detach().cpu() if isinstance(second, torch.Tensor) else second, dtype=np.float32)
    return float(np.abs(first.reshape(-1) - second.reshape(-1)).max())


def agree_away_from_threshold(
    labels: Any,
    reference_labels: Any,
    scores: Any,
    threshold: float = 0.5,
    margin: float = SCORE_TOLERANCE,
) -> bool:
    """Whether binary decisions agree wherever the reference score is further than ``margin`` from the threshold."""
    labels = np.asarray(labels).astype(bool).reshape(-1)
    reference = np.asarray(reference_labels).astype(bool).reshape(-1)
    clear = np.abs(np.asarray(scores, dtype=np.float32).reshape(-1) - threshold) > margin
    return bool((labels[clear] == reference[clear]).all())


_FRESH_PROCESS_INFERENCE = textwrap.dedent(
    """
    import json
    import sys

    import numpy as np
    import torch
    from anomalib.deploy import OpenVINOInferencer, TorchInferencer

    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    arrays = np.load(spec["arrays"]) if spec["arrays"] else {}
    inputs = [arrays[f"arr_{index}"] for index in range(len(arrays))]
    inputs += spec["images"]
    results = {}
    for name, path in spec["models"].items():
        if path.endswith(".pt"):
            inferencer = TorchInferencer(path=path, device="cpu")
        else:
            inferencer = OpenVINOInferencer(path, device="CPU", config={"INFERENCE_PRECISION_HINT": "f32"})
        for index, image in enumerate(inputs):
            if path.endswith(".pt") and isinstance(image, np.ndarray):
                image = torch.from_numpy(image)
            prediction = inferencer.predict(image)
            for field in ("pred_score", "pred_label", "anomaly_map", "pred_mask"):
                value = getattr(prediction, field)
                if value is not None:
                    value = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
                    results[f"{name}/{index}/{field}"] = value
    np.savez(spec["output"], **results)
    """,
)


def predict_in_fresh_process(
    models: dict[str, Path],
    workdir: Path,
    arrays: Sequence[np.ndarray] = (),
    images: Sequence[Path] = (),
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Predict with Anomalib's inferencers in a new Python process: ``TorchInferencer`` for ``.pt`` exports,
    ``OpenVINOInferencer`` (CPU, f32) for ``.xml`` and ``.onnx``.

    The new process has imported nothing of the test session, so this checks that an export needs nothing
    but its files and importable classes (no registered configs, no state set by the tests). It also keeps
    OpenVINO's CPU runtime out of the test process: loaded there, it made later tests that fork worker and
    command processes die of SIGSEGV on this machine.

    Args:
        models: name -> export file.
        workdir: working folder of the process (OpenVINOInferencer writes ``./openvino_cache``).
        arrays: image batches ``[N, 3, H, W]`` in [0, 1] to predict.
        images: image files to predict (after ``arrays``).

    Returns:
        name -> one dict (``pred_score``, ``pred_label``, ``anomaly_map``, ``pred_mask``) per input.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    arrays_file = workdir / "inputs.npz" if len(arrays) else None
    if arrays_file is not None:
        np.savez(arrays_file, *arrays)
    output = workdir / "predictions.npz"
    spec = {"models": {name: str(path) for name, path in models.items()}, "output": str(output),
            "arrays": str(arrays_file) if arrays_file else None, "images": [str(image) for image in images]}
    (workdir / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "TRUST_REMOTE_CODE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _FRESH_PROCESS_INFERENCE, str(workdir / "spec.json")]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=workdir, timeout=600, check=False,
    )
    if result.returncode != 0:
        msg = f"Inference in a fresh process failed:\n{result.stdout}\n{result.stderr[-4000:]}"
        raise AssertionError(msg)
    count = len(arrays) + len(images)
    with np.load(output) as saved:
        return {
            name: [
                {key.rsplit("/", 1)[1]: saved[key] for key in saved.files if key.startswith(f"{name}/{index}/")}
                for index in range(count)
            ]
            for name in models
        }


def run_cli(*arguments: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a console command with one OpenMP thread; return the completed process (output captured)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}  # wide: Rich would wrap log lines
    return subprocess.run(
        list(arguments), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False,
    )
