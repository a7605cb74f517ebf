"""The sweep keeps its one model on its GPU between categories (``evaluation/device.py``)."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import SingleDeviceStrategy

from anomalib_glocalclip.evaluation.device import KeepModelOnDevice, sweep_strategy


class _Module(torch.nn.Module):
    """A module that records being moved to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)
        self.moved_to_host = 0

    def cpu(self) -> _Module:
        self.moved_to_host += 1
        return super().cpu()


@pytest.mark.parametrize(("strategy_class", "moves"), [(SingleDeviceStrategy, 1), (KeepModelOnDevice, 0)])
def test_teardown_leaves_the_model_where_it_is(strategy_class: type, moves: int) -> None:
    """Lightning's teardown moves the model to the host (a copy per category on a GPU); the sweep's does not."""
    strategy = strategy_class(device=torch.device("cpu"), accelerator=CPUAccelerator())
    module = _Module()
    strategy.connect(module)
    strategy.teardown()
    assert module.moved_to_host == moves


def test_teardown_with_optimizers_is_lightnings() -> None:
    strategy = KeepModelOnDevice(device=torch.device("cpu"), accelerator=CPUAccelerator())
    module = _Module()
    strategy.connect(module)
    strategy.optimizers = [torch.optim.SGD(module.parameters(), lr=0.1)]
    strategy.teardown()
    assert module.moved_to_host == 1


def test_strategy_only_for_one_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sweep_strategy("auto", 1) == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert sweep_strategy("cpu", 1) == {}
    assert sweep_strategy("gpu", 2) == {}  # several devices: Lightning's strategy
    assert sweep_strategy("auto", "auto") == {}  # "auto" means both GPUs here
    for accelerator, devices, index in (("auto", 1, 0), ("gpu", "1", 0), ("cuda", [1], 1)):
        strategy = sweep_strategy(accelerator, devices)["strategy"]
        assert isinstance(strategy, KeepModelOnDevice)
        assert strategy.root_device == torch.device("cuda", index)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert sweep_strategy("auto", "auto")["strategy"].root_device == torch.device("cuda", 0)
