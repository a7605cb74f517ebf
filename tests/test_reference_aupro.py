"""Tests of the papers' ("reference") AUPRO: hand-made values, a slow oracle, Anomalib's AUPRO and the metric class."""

import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.data import ImageBatch
from anomalib.metrics import AUPRO, Evaluator
from scipy import ndimage
from skimage import measure
from sklearn.metrics import auc

from anomalib_glocalclip.metrics import ReferenceAUPRO, reference_aupro, reference_pro_curve, reference_thresholds


def slow_reference_curve(maps: np.ndarray, masks: np.ndarray, steps: int = 200) -> tuple[np.ndarray, ...]:
    """Steps 1-3 of the papers' PRO, one threshold and one region at a time: thresholds, FPR and PRO, each ``[T]``."""
    lo, hi = maps.min(), maps.max()
    thresholds = np.arange(lo, hi, (hi - lo) / steps)
    regions = [
        (index, region.coords)
        for index, mask in enumerate(masks)
        for region in measure.regionprops(measure.label(mask.astype(np.int64)))
    ]
    normal = masks == 0
    pros, fprs = [], []
    for threshold in thresholds:
        positive = maps > threshold
        overlaps = [positive[index][coords[:, 0], coords[:, 1]].sum() / len(coords) for index, coords in regions]
        pros.append(np.mean(overlaps))
        fprs.append(np.logical_and(positive, normal).sum() / normal.sum())
    return thresholds, np.asarray(fprs), np.asarray(pros)


def slow_reference_aupro(maps: np.ndarray, masks: np.ndarray, steps: int = 200, fpr_limit: float = 0.3) -> float:
    """All six steps of the papers' PRO on ``[N, H, W]`` numpy inputs."""
    _, fprs, pros = slow_reference_curve(maps, masks, steps)
    kept = fprs < fpr_limit
    x = fprs[kept]
    return float(auc((x - x.min()) / (x.max() - x.min()), pros[kept]))


def _blob_stack(seed: int, n: int = 6, size: int = 48, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Smooth noise maps ``[n, size, size]`` raised inside random elliptic blobs; every third image is normal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=bool)
    for index in range(n):
        if index % 3 == 0:
            continue
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.integers(0, size, 2)
            ry, rx = rng.uniform(1.0, size / 6, 2)
            masks[index] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    noise = ndimage.gaussian_filter(rng.random((n, size, size)), sigma=(0, 2, 2))
    lift = ndimage.gaussian_filter(masks * rng.uniform(0.0, 0.4, (n, 1, 1)), sigma=(0, 1, 1))
    return (noise + lift).astype(dtype), masks


def _ours(maps: np.ndarray, masks: np.ndarray, **kwargs: float) -> float:
    return float(reference_aupro(torch.from_numpy(maps), torch.from_numpy(masks), **kwargs))


def _one_image(values: dict[tuple[int, int], float], anomalous: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 map at 0 except ``values``, and its mask with ``anomalous`` pixels set."""
    amap, mask = np.zeros((1, 4, 4), dtype=np.float32), np.zeros((1, 4, 4), dtype=bool)
    for (row, col), value in values.items():
        amap[0, row, col] = value
    for row, col in anomalous:
        mask[0, row, col] = True
    return amap, mask


def _batch(maps: np.ndarray, masks: np.ndarray, with_mask: bool = True) -> ImageBatch:
    n, height, width = maps.shape
    return ImageBatch(
        image=torch.zeros(n, 3, height, width),
        anomaly_map=torch.from_numpy(maps),
        gt_mask=torch.from_numpy(masks) if with_mask else None,
    )


# Three normal pixels at 0.3, 0.5 and 0.7, the other normal pixels at 0: with 12 normal pixels the FPR is 3/12, 2/12,
# 1/12 and 0 on the four threshold ranges split at 0.3, 0.5 and 0.7, always < 0.3, so every threshold is kept and the
# FPR rescales to x = 1, 2/3, 1/3, 0. The thresholds step by 0.005 from 0 to below 1 (min 0, max 1).
NORMAL_STAIRS = {(3, 0): 0.3, (3, 1): 0.5, (3, 3): 0.7}
TOP_LEFT = [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_perfect_ranking_scores_one() -> None:
    # The region's pixels (all at 1.0 = the max) are above every threshold: PRO = 1 at every x, area 1.
    amap, mask = _one_image({**NORMAL_STAIRS, **dict.fromkeys(TOP_LEFT, 1.0)}, TOP_LEFT)
    assert _ours(amap, mask) == pytest.approx(1.0, abs=1e-12)
    assert slow_reference_aupro(amap, mask) == pytest.approx(1.0, abs=1e-12)


def test_perfectly_wrong_ranking_scores_zero() -> None:
    # The region sits at the min (0), never strictly above a threshold: PRO = 0 everywhere. A normal pixel holds the
    # max instead of 0.7, so the FPR still spans 3/12 .. 1/12.
    amap, mask = _one_image({(3, 0): 0.3, (3, 1): 0.5, (3, 3): 1.0}, TOP_LEFT)
    assert _ours(amap, mask) == pytest.approx(0.0, abs=1e-12)


def test_staircase_by_hand() -> None:
    # Region scores 0.2, 0.4, 0.6, 1.0 interleave with the normal 0.3, 0.5, 0.7, so PRO only changes where FPR does not:
    # x in (2/3, 1] -> PRO 3/4, x in (1/3, 2/3] -> 2/4, x in [0, 1/3] -> 1/4; the trapezoids are exact rectangles.
    amap, mask = _one_image({**NORMAL_STAIRS, (0, 0): 0.2, (0, 1): 0.4, (1, 0): 0.6, (1, 1): 1.0}, TOP_LEFT)
    expected = (1 / 3) * (3 / 4) + (1 / 3) * (2 / 4) + (1 / 3) * (1 / 4)
    assert expected == pytest.approx(0.5)
    assert _ours(amap, mask) == pytest.approx(expected, abs=1e-12)
    assert slow_reference_aupro(amap, mask) == pytest.approx(expected, abs=1e-12)


def test_regions_weigh_the_same_whatever_their_size() -> None:
    # A 1-pixel region found at every threshold, a 3-pixel region never found: PRO = (1 + 0) / 2 at every threshold,
    # while the pixel-pooled TPR would be 1/4.
    small, large = [(0, 0)], [(2, 2), (2, 3), (3, 2)]
    amap, mask = _one_image({(3, 0): 0.3, (3, 1): 0.5, (0, 3): 0.7, (0, 0): 1.0}, small + large)
    _, _, pro = reference_pro_curve(torch.from_numpy(amap), torch.from_numpy(mask))
    assert torch.allclose(pro, torch.full_like(pro, 0.5))
    pixel_weighted = 1 / 4
    assert _ours(amap, mask) == pytest.approx(0.5, abs=1e-12)
    assert _ours(amap, mask) != pytest.approx(pixel_weighted)


def test_diagonal_neighbours_are_one_region() -> None:
    # (0, 0) touches (1, 1) only by a corner. With skimage's 8-connectivity the three pixels are one region, of which
    # one pixel is found: PRO = 1/3. With 4-connectivity it would be (1 + 0) / 2.
    region = [(0, 0), (1, 1), (1, 2)]
    amap, mask = _one_image({(3, 0): 0.3, (3, 1): 0.5, (3, 3): 0.7, (0, 0): 1.0}, region)
    assert _ours(amap, mask) == pytest.approx(1 / 3, abs=1e-12)
    assert slow_reference_aupro(amap, mask) == pytest.approx(1 / 3, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_matches_slow_oracle_on_blobs(seed: int) -> None:
    maps, masks = _blob_stack(seed)
    assert _ours(maps, masks) == pytest.approx(slow_reference_aupro(maps, masks), abs=1e-6)


def test_matches_slow_oracle_float64_shifted_range_and_other_limits() -> None:
    maps, masks = _blob_stack(10, dtype=np.float64)
    maps = maps * 7.0 - 3.0
    for fpr_limit, steps in [(0.3, 200), (0.1, 50), (0.6, 333)]:
        expected = slow_reference_aupro(maps, masks, steps=steps, fpr_limit=fpr_limit)
        assert _ours(maps, masks, fpr_limit=fpr_limit, num_thresholds=steps) == pytest.approx(expected, abs=1e-6)


def test_matches_slow_oracle_with_speckle_masks() -> None:
    # Sparse random pixels: many regions that only touch by corners.
    rng = np.random.default_rng(3)
    masks = rng.random((4, 24, 24)) < 0.15
    masks[0] = False
    maps = (rng.random((4, 24, 24)) + 0.3 * masks).astype(np.float32)
    assert _ours(maps, masks) == pytest.approx(slow_reference_aupro(maps, masks), abs=1e-6)


def test_scores_on_and_next_to_thresholds() -> None:
    # numpy 2 compares float32 maps with float64 thresholds, so "map > th" must be decided exactly: a score equal to
    # float32(th) rounded up is positive, rounded down (or equal) is not. Scores in [32, 82] make most thresholds
    # fall between two float32 numbers.
    maps, masks = _blob_stack(5, n=3, size=32)
    maps = (maps * 100 + 0.3).astype(np.float32)
    thresholds = np.arange(maps.min(), maps.max(), (maps.max() - maps.min()) / 200)
    rounded = thresholds.astype(np.float32)
    assert (rounded > thresholds).sum() > 50
    assert (rounded < thresholds).sum() > 50
    flat = maps.reshape(-1)
    inner = np.flatnonzero((flat != maps.min()) & (flat != maps.max()))
    flat[np.random.default_rng(0).choice(inner, 2 * len(rounded), replace=False)] = np.tile(rounded, 2)
    curve = reference_pro_curve(torch.from_numpy(maps), torch.from_numpy(masks))
    for ours, expected in zip(curve, slow_reference_curve(maps, masks), strict=True):  # one pixel would show here
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=0)
    assert _ours(maps, masks) == pytest.approx(slow_reference_aupro(maps, masks), abs=1e-6)
    quantised = np.round(maps / 2.5) * 2.5  # many ties, some of them on thresholds
    assert _ours(quantised, masks) == pytest.approx(slow_reference_aupro(quantised, masks), abs=1e-6)


def test_threshold_count_is_200_or_201_like_numpy() -> None:
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(300):
        maps = torch.from_numpy(rng.random((2, 3, 3)).astype(np.float32) * rng.uniform(0.01, 100))
        lo, hi = maps.numpy().min(), maps.numpy().max()
        expected = np.arange(lo, hi, (hi - lo) / 200)
        ours = reference_thresholds(maps)
        np.testing.assert_array_equal(ours, expected)
        counts.add(len(ours))
    assert counts == {200, 201}


def test_labelling_matches_skimage_partition() -> None:
    # Every skimage region (default labelling) gets exactly one pixel at the min score and the rest at 1, so the PRO at
    # the lowest threshold is the mean of (area - 1) / area over skimage's regions; merging or splitting any region
    # would change it.
    rng = np.random.default_rng(1)
    masks = rng.random((3, 40, 40)) < 0.3
    maps = masks.astype(np.float32)
    areas = []
    for index, mask in enumerate(masks):
        for region in measure.regionprops(measure.label(mask)):
            maps[index, region.coords[0, 0], region.coords[0, 1]] = 0.0
            areas.append(region.area)
    areas = np.asarray(areas, dtype=np.float64)
    assert len(areas) > 100
    assert (areas > 1).sum() > 20
    pro = reference_pro_curve(torch.from_numpy(maps), torch.from_numpy(masks))[2]
    assert float(pro[0]) == pytest.approx(np.mean((areas - 1) / areas), abs=1e-12)


def test_differs_from_anomalib_aupro() -> None:
    """Same regions, two definitions.

    Anomalib: every distinct score is a threshold, the curve is cut (and interpolated) at FPR 0.3 and the area is
    divided by 0.3. Reference: 200 evenly spaced thresholds, FPR < 0.3 kept, min-max rescaled to [0, 1].
    """
    amap, mask = _one_image({**NORMAL_STAIRS, (0, 0): 0.2, (0, 1): 0.4, (1, 0): 0.6, (1, 1): 1.0}, TOP_LEFT)
    anomalib_aupro = AUPRO(fpr_limit=0.3, fields=["anomaly_map", "gt_mask"])
    anomalib_aupro.update(_batch(amap, mask))
    # Anomalib on the staircase: PRO 1/4, 2/4, 3/4 on FPR [0, 1/12], [1/12, 2/12], [2/12, 3/12], then 1 up to 0.3.
    assert float(anomalib_aupro.compute()) == pytest.approx((1.5 / 12 + 0.05) / 0.3, abs=1e-6)
    assert _ours(amap, mask) == pytest.approx(0.5, abs=1e-12)

    maps, masks = _blob_stack(1, n=9, size=64)
    anomalib_aupro.reset()
    anomalib_aupro.update(_batch(maps, masks))
    theirs, ours = float(anomalib_aupro.compute()), _ours(maps, masks)
    assert abs(theirs - ours) > 5e-3, (theirs, ours)

    # One hot normal pixel stretches the score range: the reference's 200 even steps get coarse where the scores
    # are (its trapezoids cut the curve's corners), while Anomalib's thresholds follow the scores.
    maps[0, 0, 0] = 10.0
    anomalib_aupro.reset()
    anomalib_aupro.update(_batch(maps, masks))
    assert float(anomalib_aupro.compute()) == pytest.approx(theirs, abs=1e-3)
    assert ours - _ours(maps, masks) > 0.05


def test_metric_class_through_evaluator() -> None:
    maps, masks = _blob_stack(2, n=6)
    metric = ReferenceAUPRO(prefix="pixel_")
    evaluator = Evaluator(test_metrics=[metric])
    assert metric.name == "pixel_ReferenceAUPRO"
    assert metric.fields == ("anomaly_map", "gt_mask")
    for start in (0, 3):
        evaluator.on_test_batch_end(None, None, None, _batch(maps[start : start + 3], masks[start : start + 3]), 0)
    assert float(metric.compute()) == pytest.approx(_ours(maps, masks), abs=1e-12)
    assert float(metric.compute()) == pytest.approx(slow_reference_aupro(maps, masks), abs=1e-6)
    # fpr_limit is no buffer: nothing of the evaluator ends up in a checkpoint (Anomalib's AUPRO puts fpr_limit there).
    assert evaluator.state_dict() == {}
    assert "test_metrics.0.fpr_limit" in Evaluator(test_metrics=[AUPRO(fields=["anomaly_map", "gt_mask"])]).state_dict()


def test_metric_class_accepts_channel_dim_and_float_masks() -> None:
    maps, masks = _blob_stack(4, n=3)
    metric = ReferenceAUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.2, num_thresholds=100)
    metric.update(_batch(maps, masks))
    expected = _ours(maps, masks, fpr_limit=0.2, num_thresholds=100)
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-12)
    # Any object with the fields will do; [N, 1, H, W] maps and float masks are accepted too.
    loose = ReferenceAUPRO()
    loose.update(SimpleNamespace(anomaly_map=torch.from_numpy(maps)[:, None], gt_mask=torch.from_numpy(masks).float()))
    assert float(loose.compute()) == pytest.approx(_ours(maps, masks), abs=1e-12)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_metric_class_non_strict_skips_batches_without_masks() -> None:
    maps, masks = _blob_stack(0, n=3)
    metric = ReferenceAUPRO(strict=False)
    metric.update(_batch(maps, masks, with_mask=False))
    assert metric.compute() is None
    with pytest.raises(ValueError, match="gt_mask"):
        ReferenceAUPRO().update(_batch(maps, masks, with_mask=False))


@pytest.mark.parametrize(
    ("maps", "masks", "reason"),
    [
        (np.full((2, 8, 8), 0.5, dtype=np.float32), np.eye(8, dtype=bool)[None].repeat(2, 0), "fewer than 2"),
        (np.random.default_rng(0).random((2, 8, 8)).astype(np.float32), np.ones((2, 8, 8), bool), "fewer than 2"),
        (np.random.default_rng(0).random((2, 8, 8)).astype(np.float32), np.zeros((2, 8, 8), bool), "GT regions"),
    ],
    ids=["constant-map", "no-normal-pixel", "no-anomaly"],
)
def test_degenerate_inputs_give_nan_with_a_warning(maps: np.ndarray, masks: np.ndarray, reason: str) -> None:
    with pytest.warns(RuntimeWarning, match=reason):
        assert np.isnan(_ours(maps, masks))


def test_two_level_perfect_map_is_nan_like_the_reference() -> None:
    # Normal pixels all at the min: FPR is 0 at every threshold, and the min-max rescaling divides 0 by 0.
    amap, mask = _one_image(dict.fromkeys(TOP_LEFT, 1.0), TOP_LEFT)
    with pytest.warns(RuntimeWarning, match="same FPR"):
        assert np.isnan(_ours(amap, mask))
    with np.errstate(all="ignore"):
        assert np.isnan(slow_reference_aupro(amap, mask))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    maps, masks = _blob_stack(6, n=9, size=96)
    on_gpu = reference_aupro(torch.from_numpy(maps).cuda(), torch.from_numpy(masks).cuda())
    assert on_gpu.device.type == "cuda"
    assert float(on_gpu) == pytest.approx(_ours(maps, masks), abs=1e-12)


def test_speed_on_a_full_category(capsys: pytest.CaptureFixture[str]) -> None:
    """Times a 100 x 518 x 518 stack (about one MVTec category); prints, asserts nothing about the time."""
    generator = torch.Generator().manual_seed(0)
    n, size = 100, 518
    grid = torch.arange(size, dtype=torch.int32)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for _ in range(3):  # three discs per image, as separable squared distances
        cy, cx = torch.randint(0, size, (2, n, 1, 1), generator=generator, dtype=torch.int32)
        radius = torch.randint(5, 60, (n, 1, 1), generator=generator, dtype=torch.int32)
        masks |= (grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2 <= radius**2
    masks[::4] = False
    maps = torch.rand(n, size, size, generator=generator) + 0.5 * masks
    device = "cuda" if torch.cuda.is_available() else "cpu"
    maps, masks = maps.to(device), masks.to(device)
    start = time.perf_counter()
    value = reference_aupro(maps, masks)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nreference_aupro on {n}x{size}x{size} ({device}): {elapsed:.2f} s, value {float(value):.4f}")
    assert 0.0 <= float(value) <= 1.0


def test_same_values_as_with_scipy_stack_labelling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The regions are labelled per mask by OpenCV now; one scipy call over the stack gave the same values."""
    module = sys.modules["anomalib_glocalclip.metrics.reference_aupro"]  # the package exports a function of that name
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True

    calls = []

    def scipy_labels(masks: torch.Tensor) -> tuple[torch.Tensor, int]:
        calls.append(len(masks))
        labels, count = ndimage.label(masks.cpu().numpy(), structure=structure)
        return torch.from_numpy(labels).to(torch.int64), int(count)

    stacks = [_blob_stack(seed, n=8, size=56) for seed in (11, 12)]
    now = [_ours(maps, masks) for maps, masks in stacks]
    monkeypatch.setattr(module, "label_regions", scipy_labels)
    before = [_ours(maps, masks) for maps, masks in stacks]
    assert sum(calls) == 16
    assert now == pytest.approx(before, abs=1e-12)
