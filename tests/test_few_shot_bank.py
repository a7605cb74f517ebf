"""The few-shot reference bank: nearest-neighbour maths, chunk budget, dtype, checkpoints and ONNX export."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from anomalib_glocalclip.few_shot import ReferenceBank, bank_dtype


def random_features(*shape: int, seed: int) -> torch.Tensor:
    """Random features ``shape`` (any norm) from a fixed seed."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def explicit_distance(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` mean over layers of ``1 - max cos``, one patch pair at a time (float64)."""
    layers, batch, tokens, _ = queries.shape
    result = torch.zeros(batch, tokens, dtype=torch.float64)
    for b in range(batch):
        for n in range(tokens):
            total = 0.0
            for layer in range(layers):
                query = queries[layer, b, n].double()
                bank = references[layer].flatten(0, 1).double()
                cosines = bank @ query / (bank.norm(dim=-1) * query.norm())
                total += 1.0 - cosines.max().item()
            result[b, n] = total / layers
    return result


class MatmulSizes(TorchFunctionMode):
    """Records the number of entries of every matrix product's result."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func in {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm}:
            self.sizes.append(result.numel())
        return result


@pytest.mark.parametrize("max_elements", [1, 7, 29, 30, 31, 64, 2**26])
def test_nearest_distance_matches_explicit_computation(max_elements: int) -> None:
    """Budgets around the bank size (30 patches) split queries and bank at every kind of chunk boundary."""
    references = random_features(3, 2, 15, 8, seed=0)  # L=3 layers, K=2 images, N=15 patches, E=8
    queries = random_features(3, 2, 11, 8, seed=1)
    bank = ReferenceBank(max_elements=max_elements)
    bank.add(references[:, :1])
    bank.add(references[:, 1:])

    distances = bank.nearest_distance(queries)

    assert distances.shape == (2, 11)
    assert distances.dtype == torch.float32
    torch.testing.assert_close(distances.double(), explicit_distance(queries, references), atol=1e-6, rtol=0)


def test_a_reference_patch_is_at_distance_zero_and_its_opposite_at_two() -> None:
    references = random_features(2, 1, 4, 8, seed=2)
    bank = ReferenceBank()
    bank.add(references)
    queries = torch.stack([references[:, 0, 1], -references[:, 0, 1]], dim=1)[:, None]  # [2, 1, 2, 8]
    # the opposite of a patch is at distance 2 only if no other reference is nearer: use a one-patch bank too
    single = ReferenceBank()
    single.add(references[:, :, 1:2])

    assert bank.nearest_distance(queries)[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert single.nearest_distance(queries)[0, 1].item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("max_elements", [5, 29, 100])
def test_no_similarity_matrix_exceeds_the_budget(max_elements: int) -> None:
    bank = ReferenceBank(max_elements=max_elements)
    bank.add(random_features(2, 3, 10, 4, seed=3))  # 30 patches per layer
    queries = random_features(2, 4, 10, 4, seed=4)  # 40 query patches per layer

    with MatmulSizes() as recorder:
        bank.nearest_distance(queries)

    assert recorder.sizes
    assert max(recorder.sizes) <= max_elements
    # every query meets every bank patch once per layer
    assert sum(recorder.sizes) == 2 * 40 * 30


def test_bf16_bank_stores_bf16_and_returns_float32_close_to_fp32() -> None:
    references, queries = random_features(2, 2, 9, 16, seed=5), random_features(2, 3, 9, 16, seed=6)
    exact, half = ReferenceBank(), ReferenceBank(precision="bf16")
    exact.add(references)
    half.add(references)

    assert half.features.dtype == torch.bfloat16
    distances = half.nearest_distance(queries)
    assert distances.dtype == torch.float32
    torch.testing.assert_close(distances, exact.nearest_distance(queries), atol=2e-2, rtol=0)


def test_add_appends_normalised_patches_per_layer() -> None:
    bank = ReferenceBank()
    assert bank.is_empty
    assert (bank.num_layers, bank.num_patches) == (0, 0)
    first, second = random_features(2, 1, 3, 4, seed=7), random_features(2, 2, 3, 4, seed=8)
    bank.add(first)
    bank.add(second)

    assert bank.features.shape == (2, 9, 4)
    expected = nn.functional.normalize(torch.cat([first.flatten(1, 2), second.flatten(1, 2)], dim=1), dim=-1)
    torch.testing.assert_close(bank.features, expected)
    bank.clear()
    assert bank.is_empty


def test_add_under_inference_mode_leaves_a_normal_tensor() -> None:
    """Lightning evaluates under inference mode; a later ``load_state_dict`` must still write the buffer."""
    bank = ReferenceBank()
    with torch.inference_mode():
        bank.add(random_features(1, 1, 4, 4, seed=9))
    assert not bank.features.is_inference()
    bank.load_state_dict({"features": torch.zeros(1, 4, 4)})
    assert bank.features.abs().sum() == 0


def test_mismatched_features_get_clear_errors() -> None:
    bank = ReferenceBank()
    with pytest.raises(RuntimeError, match="empty"):
        bank.nearest_distance(random_features(2, 1, 3, 4, seed=0))
    with pytest.raises(ValueError, match=r"\[layers, images, patches, width\]"):
        bank.add(random_features(1, 3, 4, seed=0))
    bank.add(random_features(2, 1, 3, 4, seed=0))
    with pytest.raises(ValueError, match="2 layers of width 4"):
        bank.add(random_features(3, 1, 3, 4, seed=0))
    with pytest.raises(ValueError, match="2 layers of width 4"):
        bank.nearest_distance(random_features(2, 1, 3, 5, seed=0))
    with pytest.raises(ValueError, match="max_elements"):
        ReferenceBank(max_elements=0)
    with pytest.raises(ValueError, match="precision"):
        ReferenceBank(precision="fp16")


@pytest.mark.parametrize(
    ("precision", "device", "dtype"),
    [
        ("auto", "cuda", torch.bfloat16),
        ("auto", "cpu", torch.float32),
        ("bf16", "cpu", torch.bfloat16),
        ("bf16", "cuda", torch.bfloat16),
        ("fp32", "cuda", torch.float32),
    ],
)
def test_bank_dtype_follows_precision_and_device(precision: str, device: str, dtype: torch.dtype) -> None:
    assert bank_dtype(precision, torch.device(device)) == dtype


def test_casting_the_module_keeps_the_banks_precision() -> None:
    """``model.double()`` or ``.to(bf16)`` of a whole model must not change what the bank is searched in."""
    bank = ReferenceBank(precision="fp32")
    bank.add(random_features(1, 1, 4, 4, seed=0))
    assert bank.to(torch.bfloat16).features.dtype == torch.float32
    assert ReferenceBank(precision="bf16").double().features.dtype == torch.bfloat16


class FewShotHead(nn.Module):
    """A tiny model holding a bank next to another buffer, as the few-shot models will."""

    def __init__(self, precision: str = "auto") -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.reference_bank = ReferenceBank(max_elements=50, precision=precision)

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        return self.reference_bank.nearest_distance(patch_features) * self.scale


def test_checkpoint_loads_into_a_model_whose_bank_is_still_empty() -> None:
    trained = FewShotHead()
    trained.reference_bank.add(random_features(2, 3, 6, 8, seed=10))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)

    fresh = FewShotHead()
    assert fresh.reference_bank.is_empty
    fresh.load_state_dict(torch.load(buffer), strict=True)

    queries = random_features(2, 2, 6, 8, seed=11)
    assert torch.equal(fresh.reference_bank.features, trained.reference_bank.features)
    assert torch.equal(fresh(queries), trained(queries))


def test_loading_keeps_the_banks_dtype_and_an_empty_checkpoint_empties_the_bank() -> None:
    trained = FewShotHead()
    trained.reference_bank.add(random_features(2, 1, 6, 8, seed=12))
    half = FewShotHead(precision="bf16")
    half.load_state_dict(trained.state_dict())
    assert half.reference_bank.features.dtype == torch.bfloat16
    assert half.reference_bank.features.shape == (2, 6, 8)

    half.load_state_dict(FewShotHead().state_dict())
    assert half.reference_bank.is_empty


def test_checkpoint_without_a_bank_loads_strictly_and_leaves_the_bank_as_it_is() -> None:
    """Checkpoints written before few-shot existed hold no bank."""
    old_state = {name: value for name, value in FewShotHead().state_dict().items() if "reference_bank" not in name}
    model = FewShotHead()
    model.reference_bank.add(random_features(1, 1, 3, 4, seed=0))
    before = model.reference_bank.features.clone()

    model.load_state_dict(old_state, strict=True)

    assert torch.equal(model.reference_bank.features, before)


def test_onnx_export_matches_torch_for_other_batch_sizes(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = FewShotHead().eval()  # max_elements 50 < 6 * 16 patches: the exported graph is chunked
    model.reference_bank.add(random_features(2, 4, 16, 8, seed=13))
    example = random_features(2, 2, 16, 8, seed=14)
    path = tmp_path / "bank.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["patch_features"],
        output_names=["distances"],
        dynamic_shapes={"patch_features": {1: batch}},
        dynamo=True,
    )

    # export chunks the bank only, by the budget per image: 50 // 16 = 3 of its 64 patches, 22 products per layer
    graph = onnx.load(str(path)).graph
    assert sum(node.op_type == "MatMul" for node in graph.node) == 2 * math.ceil(64 / 3)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in (1, 3):
        queries = random_features(2, size, 16, 8, seed=15 + size)
        (output,) = session.run(None, {"patch_features": queries.numpy()})
        with torch.no_grad():
            expected = model(queries)
        assert output.shape == (size, 16)
        torch.testing.assert_close(torch.from_numpy(output), expected, atol=1e-5, rtol=0)
