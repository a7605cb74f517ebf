"""``benchmarks/training_speed.py``: its launch-count proxy (operations per cached training step, on the CPU)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "training_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("training_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_views_and_allocations_launch_nothing(bench) -> None:
    x = torch.randn(4, 4)
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        y = torch.nn.functional.linear(x.t().reshape(4, 4), x)  # a view, then t + addmm (on CPU: copy_ + gemm)
        torch.empty(3)
        (y.view(16).unsqueeze(0).relu() * 2).sum()  # views, then relu, mul, sum
        torch._foreach_add_([x, y], 1.0)  # one multi-tensor kernel on CUDA, one add per tensor on the CPU
    counted = bench.launched_operations(trace.events())
    with profile(activities=[ProfilerActivity.CPU]) as addmm:
        torch.nn.functional.linear(x, x)
    assert counted == bench.launched_operations(addmm.events()) + 3 + 1


def test_batched_loss_launches_the_same_for_four_layers_as_for_one(bench) -> None:
    one_layer = bench.count_step_operations("batched", per_layer_features=False, batch_size=2)
    four_layers = bench.count_step_operations("batched", per_layer_features=True, batch_size=2)
    looped_one = bench.count_step_operations("loop", per_layer_features=False, batch_size=2)
    looped_four = bench.count_step_operations("loop", per_layer_features=True, batch_size=2)
    assert four_layers == one_layer
    assert looped_one[0] > one_layer[0]  # three weighted means and two dice passes instead of one of each
    assert looped_four[0] > looped_one[0]
    assert one_layer[1] == looped_one[1] > 0  # the same Adam step
