"""The sweep's device: one model stays on one GPU for every category.

Lightning's strategies move the model to the host when a run ends (``Strategy.teardown``). The sweep tests the
same model on every category, one ``Engine.test`` each, so that move and the move back before the next category
would copy the whole model twice per category (ViT-L-14-336 in fp32: about 1.7 GB each way).
:class:`KeepModelOnDevice` is Lightning's single-device strategy without that move; :func:`sweep_strategy` picks it
where a plugin command runs on one CUDA device (``evaluation/engine.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import SingleDeviceStrategy


class KeepModelOnDevice(SingleDeviceStrategy):
    """Lightning's ``SingleDeviceStrategy`` whose teardown leaves the model on its device.

    The rest of the teardown (precision plugin, accelerator, checkpoint IO) is Lightning's. A run with
    optimizers (training) tears down as Lightning does, model move included.
    """

    def teardown(self) -> None:
        """Tear down the plugins and the accelerator; keep the (evaluated) model where it is."""
        if self.optimizers:
            super().teardown()
            return
        self.precision_plugin.teardown()
        self.accelerator.teardown()
        self.checkpoint_io.teardown()


def sweep_strategy(accelerator: str, devices: int | str | list[int]) -> dict[str, Any]:
    """Engine arguments for the sweep's device: ``{"strategy": KeepModelOnDevice(cuda:i)}`` on one CUDA device.

    Args:
        accelerator: the sweep's ``accelerator`` (``"auto"``, ``"gpu"``, ``"cuda"``, ``"cpu"``, ...).
        devices: the sweep's ``devices`` (``1``, ``"1"``, ``[i]``, ``"auto"``, ...).

    Returns:
        The ``strategy`` argument where the sweep runs on exactly one CUDA device; else nothing (Lightning's
        choice, which on the host has no move to save).
    """
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
