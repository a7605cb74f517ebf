"""MuSc's maths against hand formulas and brute-force loops: LNAMD, mutual scoring, RsCIN."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from anomalib_glocalclip.musc.lnamd import aggregate_neighbourhoods, layer_norm_maps, lnamd
from anomalib_glocalclip.musc.mutual_scoring import (
    interval_bounds,
    interval_mean,
    mutual_scores,
    nearest_image_distances,
)
from anomalib_glocalclip.musc.rscin import min_max_scale, neighbour_weights, rscin


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _brute_force_scores(features: torch.Tensor, interval: tuple[float, float], references=None) -> torch.Tensor:
    """The reference's loop: per image, ``cdist`` to each other image, min over its patches, sort, slice, mean."""
    pool = features if references is None else torch.cat([features, references])
    scores = []
    for i in range(len(features)):
        others = [j for j in range(len(pool)) if j != i]
        nearest = torch.stack([torch.cdist(features[i], pool[j]).min(1).values for j in others], 1)  # [L, M]
        count = len(others)
        low, high = (int(b * count) if b < 1 else int(b) for b in interval)
        high = min(max(1, high), count)
        low = min(low, high - 1)
        scores.append(nearest.sort(1).values[:, low:high].mean(1))
    return torch.stack(scores)


def test_layer_norm_is_one_mean_and_variance_per_image() -> None:
    tokens = torch.randn(3, 12, 5, generator=torch.Generator().manual_seed(1)) * 4 + 2
    maps = layer_norm_maps(tokens, (3, 4))
    expected = tokens.transpose(1, 2).reshape(3, 5, 3, 4)
    mean = expected.mean((1, 2, 3), keepdim=True)
    variance = expected.var((1, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(maps, (expected - mean) / torch.sqrt(variance + 1e-5), rtol=1e-5, atol=1e-5)


def test_aggregation_counts_the_zero_padding() -> None:
    maps = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(2))
    features = aggregate_neighbourhoods(maps, 3)
    # the corner patch (0, 0): the sum of its 2x2 in-grid neighbours divided by 9, then unit length
    corner = maps[:, :, :2, :2].sum((-2, -1)) / 9
    torch.testing.assert_close(features[:, 0], F.normalize(corner, dim=-1))
    centre = maps[:, :, 1:4, 1:4].mean((-2, -1))
    torch.testing.assert_close(features[:, 2 * 5 + 2], F.normalize(centre, dim=-1))
    torch.testing.assert_close(aggregate_neighbourhoods(maps, 1), F.normalize(maps.flatten(2).transpose(1, 2), dim=-1))
    assert torch.allclose(lnamd(maps.flatten(2).transpose(1, 2), (5, 5), 5).norm(dim=-1), torch.ones(2, 25))
    with pytest.raises(ValueError, match="odd"):
        aggregate_neighbourhoods(maps, 2)


@pytest.mark.parametrize(
    ("num_others", "interval", "expected"),
    [(1, (0.0, 0.3), (0, 1)), (4, (0.0, 0.3), (0, 1)), (9, (0.0, 0.3), (0, 2)), (10, (0.0, 0.3), (0, 3)),
     (199, (0.0, 0.3), (0, 59)), (10, (0.1, 0.5), (1, 5)), (10, (0.5, 0.1), (1, 5)), (10, (2, 4), (2, 4)),
     (3, (5, 9), (2, 3)), (10, (0.3, 0.3), (2, 3)), (10, (0.0, 1.0), (0, 1)), (10, (0.0, 0.99), (0, 9))],
)
def test_interval_bounds_truncate_like_the_reference(num_others, interval, expected) -> None:
    assert interval_bounds(num_others, interval) == expected


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("interval", [(0.0, 0.3), (0.0, 1.0), (0.25, 0.75), (1, 2)])
def test_mutual_scores_equal_a_brute_force_cdist_loop(count: int, interval) -> None:
    features = _unit(count, 30, 8, seed=count)
    expected = _brute_force_scores(features, interval)
    torch.testing.assert_close(mutual_scores(features, interval), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_elements", [1, 30 * 30, 2 * 30 * 30, 5 * 30 * 30, 2**28])
def test_every_block_size_gives_the_full_computation(max_elements: int) -> None:
    features, references = _unit(7, 30, 8, seed=3), _unit(2, 30, 8, seed=4)
    full = torch.stack([torch.cdist(features[i], torch.cat([features, references]).flatten(0, 1)) for i in range(7)])
    full = full.view(7, 30, 9, 30).amin(-1)
    full[torch.arange(7), :, torch.arange(7)] = torch.inf
    nearest = nearest_image_distances(features, references, max_elements=max_elements)
    torch.testing.assert_close(nearest, full, rtol=1e-5, atol=1e-6)


def test_references_join_the_others_but_are_not_scored() -> None:
    features, references = _unit(3, 20, 8, seed=5), _unit(4, 20, 8, seed=6)
    scores = mutual_scores(features, (0.0, 0.5), references=references, max_elements=2 * 20 * 20)
    assert scores.shape == (3, 20)
    torch.testing.assert_close(scores, _brute_force_scores(features, (0.0, 0.5), references), rtol=1e-5, atol=1e-6)
    # one image with references is scored against the references alone
    single = mutual_scores(features[:1], (0.0, 0.3), references=references)
    torch.testing.assert_close(single, _brute_force_scores(features[:1], (0.0, 0.3), references), rtol=1e-5, atol=1e-6)


def test_distances_are_those_of_cdist_for_near_duplicates() -> None:
    base = _unit(1, 16, 64, seed=7)
    features = F.normalize(torch.cat([base, base + 1e-3 * torch.randn(1, 16, 64)]), dim=-1)
    nearest = nearest_image_distances(features)
    # the reference's cdist compares one image with all patches of the others (> 25 rows): the matmul form
    expected = torch.cdist(features[0], features[1], compute_mode="use_mm_for_euclid_dist").min(1).values
    torch.testing.assert_close(nearest[0, :, 1], expected, rtol=1e-4, atol=1e-7)


def test_fp16_features_give_the_cosine_form_within_fp16_rounding() -> None:
    features = _unit(5, 30, 64, seed=13)
    exact = nearest_image_distances(features, max_elements=2 * 30 * 30)
    half = nearest_image_distances(features.half(), max_elements=2 * 30 * 30)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, exact, rtol=0, atol=2e-3)


def test_permuting_the_set_permutes_the_scores() -> None:
    features = _unit(6, 25, 8, seed=8)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(mutual_scores(features[order], max_elements=900), mutual_scores(features)[order])
    scores, classes = torch.rand(6, dtype=torch.float64), _unit(6, 8, seed=9)
    permuted = rscin(scores[order], classes[order], (1, 2, 3))
    torch.testing.assert_close(permuted, rscin(scores, classes, (1, 2, 3))[order])


def test_interval_mean_ignores_the_image_itself() -> None:
    nearest = torch.tensor([[[torch.inf, 0.4, 0.1, 0.3]]])
    torch.testing.assert_close(interval_mean(nearest, (0, 3), 3), torch.tensor([[0.8 / 3]]))
    torch.testing.assert_close(interval_mean(nearest, (0.0, 0.99), 3), torch.tensor([[0.2]]))
    torch.testing.assert_close(interval_mean(nearest, (1, 2), 3), torch.tensor([[0.3]]))


def test_rscin_with_k_one_returns_the_min_max_scores() -> None:
    scores, classes = torch.tensor([2.0, 4.0, 3.0, 10.0], dtype=torch.float64), _unit(4, 8, seed=10)
    torch.testing.assert_close(rscin(scores, classes, (1,)), torch.tensor([0.0, 0.25, 0.125, 1.0]))
    assert rscin(scores, classes, None) is scores
    torch.testing.assert_close(min_max_scale(torch.full((3,), 0.7)), torch.zeros(3))


def test_rscin_weights_sum_to_one_and_keep_the_k_most_similar() -> None:
    classes = _unit(5, 8, seed=11)
    similarity = classes @ classes.T
    weights = neighbour_weights(similarity, 3)
    torch.testing.assert_close(weights.sum(1), torch.ones(5))
    assert ((weights != 0).sum(1) == 3).all()
    for row in range(5):
        kept = similarity[row].topk(3).indices
        torch.testing.assert_close(weights[row, kept], similarity[row, kept] / similarity[row, kept].sum())
    scores = torch.rand(5, dtype=torch.float64)
    scaled = min_max_scale(scores).float()
    expected = (neighbour_weights(similarity, 2) @ scaled + neighbour_weights(similarity, 3) @ scaled + scaled) / 3
    torch.testing.assert_close(rscin(scores, classes, (1, 2, 3)), expected)


def test_rscin_clamps_k_to_the_set_with_a_warning(caplog) -> None:
    scores, classes = torch.rand(4, dtype=torch.float64), _unit(4, 8, seed=12)
    with caplog.at_level(logging.WARNING):
        clamped = rscin(scores, classes, (1, 8, 9))
    assert "clamped to (1, 4, 4)" in caplog.text
    torch.testing.assert_close(clamped, rscin(scores, classes, (1, 4, 4)))
    with pytest.raises(ValueError, match="at least 1"):
        rscin(scores, classes, (0, 2))
