"""``anomalib_glocalclip.metrics.AUPRO`` (Anomalib's AUPRO, regions labelled on the host) and ``label_regions``."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.metrics import AUPRO as AnomalibAUPRO  # noqa: N811 - ours has the same name
from anomalib.metrics import Evaluator
from scipy import ndimage

from anomalib_glocalclip.metrics import AUPRO, label_regions

FIELDS = ["anomaly_map", "gt_mask"]


def _stack(seed: int, n: int = 6, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth maps ``[n, size, size]`` raised inside random elliptic blobs (bool masks); every third image normal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=bool)
    for index in range(n):
        for _ in range(0 if index % 3 == 0 else rng.integers(1, 5)):
            cy, cx = rng.integers(0, size, 2)
            ry, rx = rng.uniform(1.0, size / 5, 2)
            masks[index] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    maps = ndimage.gaussian_filter(rng.random((n, size, size)), sigma=(0, 2, 2)) + 0.2 * masks
    return torch.from_numpy(maps.astype(np.float32)), torch.from_numpy(masks)


def _both(maps: torch.Tensor, masks: torch.Tensor, batch: int = 4, **kwargs: float) -> tuple[float, float]:
    """(ours, Anomalib's) AUPRO of the stack, fed in batches as an evaluator would."""
    ours, theirs = AUPRO(fields=FIELDS, **kwargs), AnomalibAUPRO(fields=FIELDS, **kwargs)
    for start in range(0, len(maps), batch):
        item = SimpleNamespace(anomaly_map=maps[start : start + batch], gt_mask=masks[start : start + batch])
        ours.update(item)
        theirs.update(item)
    return float(ours.compute()), float(theirs.compute())


@pytest.mark.parametrize("seed", range(4))
def test_same_value_as_anomalib_on_blobs(seed: int) -> None:
    ours, theirs = _both(*_stack(seed))
    assert 0.0 < ours < 1.0
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_same_value_as_anomalib_with_speckle_masks_and_other_limit() -> None:
    # Sparse random pixels: many regions that only touch by corners (8-connected into one).
    rng = np.random.default_rng(3)
    masks = torch.from_numpy(rng.random((4, 24, 24)) < 0.2)
    maps = torch.from_numpy((rng.random((4, 24, 24)) + 0.3 * masks.numpy()).astype(np.float32))
    for fpr_limit in (0.3, 0.1):
        ours, theirs = _both(maps, masks, fpr_limit=fpr_limit)
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_same_value_as_anomalib_with_channel_dim_and_soft_float_masks() -> None:
    # Anomalib reads a float mask as anomalous where it equals 1 only: the 0.5 border is normal for both.
    maps, masks = _stack(7)
    soft = masks.float()
    soft[:, :, 1:] = torch.maximum(soft[:, :, 1:], 0.5 * masks[:, :, :-1].float())
    assert (soft == 0.5).any()
    ours, theirs = _both(maps[:, None], soft)
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours == pytest.approx(_both(maps, masks)[0], abs=1e-6)
    # [N, 1, H, W] masks too (Anomalib's own host path fails on them: it adds a second channel dimension).
    with_channel = AUPRO(fields=FIELDS)
    with_channel.update(SimpleNamespace(anomaly_map=maps[:, None], gt_mask=soft[:, None]))
    assert float(with_channel.compute()) == pytest.approx(ours, abs=1e-12)


def test_logged_name_and_checks_are_anomalib_s() -> None:
    evaluator = Evaluator(test_metrics=[AUPRO(fields=FIELDS, prefix="pixel_", strict=False)])
    assert evaluator.test_metrics[0].name == "pixel_AUPRO"
    metric = AUPRO(fields=FIELDS)
    metric.update(SimpleNamespace(anomaly_map=torch.rand(1, 8, 8), gt_mask=torch.full((1, 8, 8), 2.0)))
    with pytest.raises(ValueError, match=r"masks in \[0, 1\]"):
        metric.compute()


def test_long_winding_region_is_one_region() -> None:
    # A serpentine of 15 rows joined at alternate ends: one region ~3,500 pixels long. Label propagation limited to
    # a fixed number of passes (Anomalib's GPU path uses 1,000) would split it; one labelling call does not.
    size = 120
    mask = np.zeros((size, size), dtype=bool)
    for row in range(0, size, 8):
        mask[row, :] = True
        if row + 8 < size:
            mask[row : row + 9, -1 if (row // 8) % 2 == 0 else 0] = True
    labels, count = label_regions(torch.from_numpy(mask)[None])
    assert count == 1
    assert set(labels.unique().tolist()) == {0, 1}


def test_label_regions_by_hand() -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # corner to corner: one region (8-connectivity)
    masks[0, 3, 3] = True  # a second region
    masks[1, 0, 0] = True  # same place, other image: a third region, never merged with the first
    labels, count = label_regions(masks)
    assert count == 3
    assert labels.dtype == torch.int64
    assert labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 3, 3]
    assert len({int(labels[0, 0, 0]), int(labels[0, 3, 3]), int(labels[1, 0, 0])}) == 3
    assert (labels[~masks] == 0).all()
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        label_regions(masks[0])


def test_label_regions_partition_equals_scipy_on_the_stack() -> None:
    # The regions of one scipy.ndimage.label call over the stack with in-plane 8-connectivity (what ReferenceAUPRO
    # used before): the same pixel sets, only possibly numbered in another order.
    rng = np.random.default_rng(5)
    masks = rng.random((5, 37, 29)) < 0.35
    masks[2] = False
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    expected, count = ndimage.label(masks, structure=structure)
    labels, ours = label_regions(torch.from_numpy(masks))
    labels = labels.numpy()
    assert ours == count > 50
    assert set(np.unique(labels)) == set(range(count + 1))
    assert ((labels == 0) == (expected == 0)).all()
    pairs = set(zip(labels[masks].tolist(), expected[masks].tolist(), strict=True))
    assert len(pairs) == count  # one scipy region per label and one label per scipy region


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_states_match_host_states() -> None:
    maps, masks = _stack(5, n=9, size=96)
    metric = AUPRO(fields=FIELDS).cuda()
    metric.update(SimpleNamespace(anomaly_map=maps.cuda(), gt_mask=masks.cuda()))
    value = metric.compute()
    assert value.device.type == "cuda"
    assert float(value) == pytest.approx(_both(maps, masks)[1], abs=1e-6)
