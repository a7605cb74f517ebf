"""Few-shot map and its combination with the zero-shot outputs, against small explicit computations."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from anomalib_glocalclip.few_shot import ReferenceBank, combine, few_shot_anomaly_map


def grid_map(scores: torch.Tensor) -> torch.Tensor:
    """A patch-map function without upsampling: ``[B, 4] -> [B, 2, 2]``."""
    return scores.view(-1, 2, 2)


def test_few_shot_map_is_half_the_distance_on_the_grid() -> None:
    distances = torch.tensor([[0.0, 0.5, 1.0, 2.0]])
    expected = torch.tensor([[[0.0, 0.25], [0.5, 1.0]]])
    torch.testing.assert_close(few_shot_anomaly_map(distances, grid_map), expected)


def test_few_shot_map_goes_through_the_models_upsampling_and_smoothing() -> None:
    """The map is the model's own step applied to the halved distances (here bilinear to 8x8, then 3x3 mean)."""

    def patch_map(scores: torch.Tensor) -> torch.Tensor:
        grid = F.interpolate(scores.view(-1, 1, 2, 2), size=(8, 8), mode="bilinear", align_corners=False)
        return F.avg_pool2d(F.pad(grid, (1, 1, 1, 1), mode="replicate"), 3, stride=1)[:, 0]

    distances = torch.tensor([[0.2, 0.4, 1.2, 1.6], [2.0, 0.0, 0.0, 0.0]])
    few_shot = few_shot_anomaly_map(distances, patch_map)
    assert few_shot.shape == (2, 8, 8)
    torch.testing.assert_close(few_shot, patch_map(distances / 2))
    assert few_shot.min() >= 0.0
    assert few_shot.max() <= 1.0


def test_combine_is_winclip_plus_mean_by_default() -> None:
    zero_shot_map = torch.tensor([[[0.2, 0.4], [0.6, 0.8]]])
    few_shot_map = torch.tensor([[[0.0, 0.1], [0.9, 0.3]]])
    zero_shot_score = torch.tensor([0.7])

    combined = combine(zero_shot_map, few_shot_map, zero_shot_score)

    torch.testing.assert_close(combined.anomaly_map, torch.tensor([[[0.1, 0.25], [0.75, 0.55]]]))
    torch.testing.assert_close(combined.pred_score, torch.tensor([(0.7 + 0.9) / 2]))


def test_combine_weights_and_scales_the_few_shot_map_to_the_zero_shot_range() -> None:
    """GlocalCLIP's reference-mode map sums 4 layer probabilities: its range is [0, 4]."""
    zero_shot_map = torch.tensor([[[0.8, 4.0]], [[0.0, 2.0]]])
    few_shot_map = torch.tensor([[[0.5, 1.0]], [[0.25, 0.0]]])
    zero_shot_score = torch.tensor([0.6, 0.2])

    combined = combine(zero_shot_map, few_shot_map, zero_shot_score, weight=0.25, map_scale=4.0)

    expected_map = torch.tensor([[[0.75 * 0.8 + 0.25 * 4 * 0.5, 4.0]], [[0.25, 1.5]]])
    torch.testing.assert_close(combined.anomaly_map, expected_map)
    torch.testing.assert_close(combined.pred_score, torch.tensor([0.75 * 0.6 + 0.25, 0.75 * 0.2 + 0.25 * 0.25]))


def test_weight_zero_returns_the_zero_shot_outputs_unchanged() -> None:
    zero_shot_map, zero_shot_score = torch.rand(2, 4, 4), torch.rand(2)
    combined = combine(zero_shot_map, torch.rand(2, 4, 4), zero_shot_score, weight=0.0, map_scale=3.0)
    assert torch.equal(combined.anomaly_map, zero_shot_map)
    assert torch.equal(combined.pred_score, zero_shot_score)


def test_reference_patches_score_zero_and_a_foreign_patch_scores_high() -> None:
    """Bank + map end to end: an image made of reference patches maps to 0; a patch unlike all of them stands out."""
    references = F.normalize(torch.eye(8)[:4], dim=-1)[None, None]  # [L=1, K=1, N=4, E=8]
    bank = ReferenceBank()
    bank.add(references)
    test = references.clone()
    test[0, 0, 2] = torch.eye(8)[6]  # orthogonal to every reference patch: distance 1

    few_shot = few_shot_anomaly_map(bank.nearest_distance(references), grid_map)
    torch.testing.assert_close(few_shot, torch.zeros(1, 2, 2), atol=1e-6, rtol=0)
    few_shot = few_shot_anomaly_map(bank.nearest_distance(test), grid_map)
    torch.testing.assert_close(few_shot, torch.tensor([[[0.0, 0.0], [0.5, 0.0]]]), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"weight": 1.5}, "weight"), ({"weight": -0.1}, "weight"), ({"map_scale": 0.0}, "map_scale")],
)
def test_combine_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        combine(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.zeros(1), **kwargs)


def test_combine_rejects_maps_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[1, 2, 2\].*\[1, 4, 4\]"):
        combine(torch.zeros(1, 2, 2), torch.zeros(1, 4, 4), torch.zeros(1))
