"""AnoCLIP and AnoCLIP+ end to end through the real ``anomalib`` CLI, in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad


def anomalib_command() -> list[str]:
    """The ``anomalib`` console script of this environment."""
    script = Path(sys.executable).with_name("anomalib")
    if script.exists():
        return [str(script)]
    found = shutil.which("anomalib")
    if found is None:
        pytest.skip("the anomalib console script is not installed")
    return [found]


@pytest.mark.slow
@pytest.mark.parametrize("tta", [False, True], ids=["anoclip", "anoclip+"])
def test_anomalib_test_cli(tmp_path: Path, tta: bool) -> None:
    root = generate_mvtec_ad(tmp_path / "MVTecAD", categories=("bottle",), n_train=1, n_test_good=3, n_test_bad=3)
    command = [
        *anomalib_command(),
        "test",
        "--model",
        "anomalib_glocalclip.anoclip.AnoCLIP",
        "--model.backbone",
        str(TINY_CLIP_CONFIG),
        "--model.pretrained",
        "null",
        "--model.image_size",
        "64",
        "--data",
        "MVTecAD",
        "--data.root",
        str(root),
        "--data.category",
        "bottle",
        "--data.eval_batch_size",
        "4",
        "--data.num_workers",
        "0",
        "--trainer.accelerator",
        "cpu",
        "--default_root_dir",
        str(tmp_path / "results"),
    ]
    if tta:
        command += ["--model.tta", "true"]
    # One thread: the model is tiny, and idle-spinning threads slow it down 10x on a busy 2-core machine.
    env = {**os.environ, "ANOMALIB_GLOCALCLIP_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "image_AUROC" in output
    assert "pixel_AUROC" in output
    assert "Encoding AnoCLIP prompts for class 'bottle' (object domain)" in output
