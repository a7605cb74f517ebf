"""The README's offline CLI recipe runs verbatim: the test reads the commands from the README, so they cannot drift.

The recipe sits between the markers ``<!-- offline-cli-recipe -->`` and ``<!-- /offline-cli-recipe -->`` in a
``bash`` block; it runs in a fresh folder with this interpreter's ``bin`` first on ``PATH`` (``python``,
``anomalib``), using the tiny random backbone (no weights, no network).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from anomalib_glocalclip.backbone import TINY_CLIP_CONFIG, TINY_CLIP_NAME, load_model_config

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- offline-cli-recipe -->", "<!-- /offline-cli-recipe -->"


def readme_recipe() -> str:
    """The shell commands of the README's offline recipe (the one ``bash`` block between the markers)."""
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1, f"README.md needs exactly one {START} marker"
    section = text.split(START, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the offline recipe must be one ```bash block between its markers"
    return blocks[0]


def test_tiny_backbone_has_a_name() -> None:
    """``--model.backbone tiny-clip`` is the bundled config file, whatever the working folder."""
    assert TINY_CLIP_NAME == "tiny-clip"
    assert load_model_config("tiny-clip") == json.loads(TINY_CLIP_CONFIG.read_text())


def test_recipe_uses_the_tiny_backbone_by_name_and_no_weights() -> None:
    recipe = readme_recipe()
    assert "--model.backbone tiny-clip" in recipe
    assert "--model.pretrained null" in recipe
    for command in ("anomalib train", "anomalib test", "anomalib predict"):
        assert command in recipe


@pytest.mark.slow
def test_readme_offline_recipe_runs_verbatim(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANOMALIB_GLOCALCLIP_OFFLINE": "1",
    }
    script = "set -euo pipefail\n" + readme_recipe()
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    results = tmp_path / "try" / "results" / "GlocalCLIP"
    assert (results / "visa_to_MVTecAD" / "bottle" / "latest" / "weights" / "lightning" / "prompts.pt").is_file()
    assert list((results / "MVTecAD" / "bottle" / "latest" / "images").rglob("*.png")), "test wrote no heatmaps"
    with (results / "latest" / "predictions.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    predicted = sorted(Path(row["image_path"]).name for row in rows)
    expected = sorted(path.name for path in (tmp_path / "try" / "mvtec" / "bottle" / "test" / "scratch").iterdir())
    assert predicted == expected
    assert "image_AUROC" in result.stdout + result.stderr  # the test step printed its metrics
