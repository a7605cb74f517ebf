"""The sweep's device: one model stays on one GPU for every category.

Lightning's strategies move the model to the host when a run ends; for a sweep of one ``Engine.test`` per
category that would copy the whole model twice per category (ViT-L-14-336 in fp32: about 1.7 GB each way).
"""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from anomalib_glocalclip.compat import teardown_keeping_model


class KeepModelOnDevice(SingleDeviceStrategy):
    """Lightning's ``SingleDeviceStrategy`` whose teardown leaves an evaluated (not a trained) model in place."""

    def teardown(self) -> None:
        """Tear down the plugins and the accelerator; keep the (evaluated) model where it is."""
        if self.optimizers:
            super().teardown()
        else:
            teardown_keeping_model(self)


def sweep_strategy(accelerator: str, devices: int | str | list[int]) -> dict[str, KeepModelOnDevice]:
    """Engine arguments: ``{"strategy": KeepModelOnDevice(cuda:i)}`` on exactly one CUDA device, else nothing."""
    if accelerator not in {"auto", "gpu", "cuda"} or not torch.cuda.is_available():
        return {}
    if isinstance(devices, list | tuple):
        if len(devices) != 1:
            return {}
        index = int(devices[0])
    elif devices in {1, "1"} or (devices == "auto" and torch.cuda.device_count() == 1):
        index = 0
    else:
        return {}
    return {"strategy": KeepModelOnDevice(device=torch.device("cuda", index))}
