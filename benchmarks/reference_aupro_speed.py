"""Time ``reference_aupro`` against a loop written the way the papers' ``cal_pro_score`` is (numpy + skimage + sklearn).

    python benchmarks/reference_aupro_speed.py [--images 20] [--size 518] [--device cpu|cuda]

The maps are random with disc-shaped anomalies (a quarter of the images normal). ``reference_aupro`` runs on CUDA
when it is available (unless ``--device`` says otherwise); the loop always runs on the CPU. Prints both times, the
ratio and both values (they agree to ~1e-6).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage import measure
from sklearn.metrics import auc

from anomalib_glocalclip.metrics import reference_aupro


def make_stack(images: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 maps ``[images, size, size]`` lifted by 0.5 inside up to three discs per image, and bool masks."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.arange(size, dtype=torch.int32)
    masks = torch.zeros(images, size, size, dtype=torch.bool)
    for _ in range(3):
        cy, cx = torch.randint(0, size, (2, images, 1, 1), generator=generator, dtype=torch.int32)
        radius = torch.randint(5, max(6, size // 9), (images, 1, 1), generator=generator, dtype=torch.int32)
        masks |= (grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2 <= radius**2
    masks[::4] = False
    maps = torch.rand(images, size, size, generator=generator) + 0.5 * masks
    return maps, masks


def loop_aupro(maps: np.ndarray, masks: np.ndarray, steps: int = 200, fpr_limit: float = 0.3) -> float:
    """One threshold at a time, regions relabelled at every threshold, as in the papers' code."""
    lo, hi = maps.min(), maps.max()
    normal = masks == 0
    pros, fprs = [], []
    for threshold in np.arange(lo, hi, (hi - lo) / steps):
        positive = maps > threshold
        overlaps = [
            image_positive[region.coords[:, 0], region.coords[:, 1]].sum() / region.area
            for image_positive, mask in zip(positive, masks, strict=True)
            for region in measure.regionprops(measure.label(mask))
        ]
        pros.append(np.mean(overlaps))
        fprs.append(np.logical_and(positive, normal).sum() / normal.sum())
    pros, fprs = np.asarray(pros), np.asarray(fprs)
    kept = fprs < fpr_limit
    x = fprs[kept]
    return float(auc((x - x.min()) / (x.max() - x.min()), pros[kept]))


def _timed_ours(maps: torch.Tensor, masks: torch.Tensor) -> tuple[float, float]:
    reference_aupro(maps[:2], masks[:2])  # warm-up (CUDA context, kernels)
    if maps.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = float(reference_aupro(maps, masks))  # float() waits for the device
    return time.perf_counter() - start, value


def main() -> None:
    """Parse arguments, time both implementations and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    maps, masks = make_stack(args.images, args.size)
    ours_s, ours = _timed_ours(maps.to(args.device), masks.to(args.device))
    start = time.perf_counter()
    loop = loop_aupro(maps.numpy(), masks.numpy())
    loop_s = time.perf_counter() - start

    print(f"stack {args.images} x {args.size} x {args.size}")
    print(f"reference_aupro ({args.device}): {ours_s:8.3f} s  value {ours:.6f}")
    print(f"reference-style loop (cpu): {loop_s:8.3f} s  value {loop:.6f}")
    print(f"speed-up: {loop_s / ours_s:.0f}x   |difference|: {abs(ours - loop):.2e}")


if __name__ == "__main__":
    main()
