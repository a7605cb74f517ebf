"""Shared fixtures: everything offline, a tiny random CLIP, small generated datasets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from anomalib.data import MVTecAD
from torchmetrics.classification import BinaryAUROC

# No test may reach the network: open_clip / Hugging Face downloads are switched off for the session
# and for every subprocess the tests start.
os.environ["ANOMALIB_GLOCALCLIP_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
# Synthetic anomalies drawn by tests are stored here, not in the user's cache.
os.environ.setdefault("ANOMALIB_GLOCALCLIP_CACHE", tempfile.mkdtemp(prefix="anomalib_glocalclip_test_cache_"))
# Two cores shared by pytest-xdist workers and their subprocesses: one thread each avoids idle spinning.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG  # noqa: E402


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    """open_clip config of the tiny random CLIP."""
    return TINY_CLIP_CONFIG


@pytest.fixture(scope="session")
def tiny_backbone():
    """A tiny random ``CLIPBackbone`` at 64 px (shared; do not modify)."""
    from anomalib_glocalclip.backbone import CLIPBackbone

    return CLIPBackbone(TINY_CLIP_CONFIG, pretrained=None, image_size=64)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300):
    """Run a console command of this environment (``anomalib``, ``anomalib-glocalclip``, ``python``)."""
    import subprocess
    import sys

    executable = Path(sys.executable).parent / args[0] if args[0] != "python" else Path(sys.executable)
    return subprocess.run(
        [str(executable), *args[1:]],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def cli():
    """``run_cli``: run a console command of this environment and capture its output."""
    return run_cli


@pytest.fixture
def images() -> torch.Tensor:
    """Two random normalised images ``[2, 3, 64, 64]``."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _target_scores(model, root: Path) -> tuple[float, float]:
    """(image AUROC, pixel AUROC) of a GlocalCLIP on the generated MVTec AD ``bottle`` under ``root``."""
    target = MVTecAD(root=root, category="bottle", num_workers=0, eval_batch_size=64)
    target.setup()
    batch = next(iter(target.test_dataloader()))
    images = model.pre_processor.transform(batch.image)
    masks = torch.nn.functional.interpolate(batch.gt_mask[:, None].float(), size=images.shape[-2:])[:, 0]
    model.eval()
    model.model.refresh_text_features()
    with torch.no_grad():
        output = model.model(images)
    image_auroc = BinaryAUROC()(output.pred_score, batch.gt_label).item()
    pixel_auroc = BinaryAUROC()(output.anomaly_map.flatten(), masks.flatten().long()).item()
    return image_auroc, pixel_auroc


@pytest.fixture(scope="session")
def target_scores():
    """``(model, root) -> (image AUROC, pixel AUROC)`` of a GlocalCLIP on a generated MVTec AD ``bottle``."""
    return _target_scores


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the batches that go through the plugin models' validation step (``ZeroShotCLIPMixin``)."""
    from anomalib_glocalclip.components import ZeroShotCLIPMixin

    sizes: list[int] = []
    validation_step = ZeroShotCLIPMixin.validation_step

    def counting_validation_step(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(batch))
        return validation_step(self, batch, *args, **kwargs)

    monkeypatch.setattr(ZeroShotCLIPMixin, "validation_step", counting_validation_step)
    return sizes
