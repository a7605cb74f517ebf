"""GlocalCLIP's losses, scores and maps against their formulas on small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anomalib_glocalclip.glocalclip.anomaly_map import (
    gaussian_blur,
    gaussian_kernel1d,
    patch_probability_map,
    tempered_state_probabilities,
)
from anomalib_glocalclip.glocalclip.loss import (
    dice_loss,
    focal_loss,
    global_loss,
    glocal_contrastive_loss,
    local_loss,
    triplet_loss,
)


class TestLosses:
    def test_focal_loss_by_hand(self) -> None:
        # Two pixels: normal pixel with p(normal)=0.8, anomalous pixel with p(anomalous)=0.3.
        probabilities = torch.tensor([[[[0.8, 0.7]], [[0.2, 0.3]]]])  # [1, 2, 1, 2]
        mask = torch.tensor([[[0, 1]]])
        eps = 1e-5
        p_t0 = (1 - eps) * 0.8 + eps * 0.2 + eps  # clamped one-hot (1-eps, eps)
        p_t1 = eps * 0.7 + (1 - eps) * 0.3 + eps
        expected = (-(1 - p_t0) ** 2 * math.log(p_t0) - (1 - p_t1) ** 2 * math.log(p_t1)) / 2
        assert focal_loss(probabilities, mask).item() == pytest.approx(expected, rel=1e-6)

    def test_focal_loss_equals_reference_formulation(self) -> None:
        # The reference builds a one-hot by scatter on the CPU, clamps it and adds smooth to p_t.
        generator = torch.Generator().manual_seed(0)
        probabilities = torch.rand(3, 2, 5, 4, generator=generator).softmax(dim=1)
        mask = torch.rand(3, 5, 4, generator=generator) > 0.6
        flat = probabilities.permute(0, 2, 3, 1).reshape(-1, 2)
        one_hot = torch.zeros(flat.shape[0], 2).scatter_(1, mask.reshape(-1, 1).long(), 1).clamp(1e-5, 1 - 1e-5)
        p_t = (one_hot * flat).sum(1) + 1e-5
        expected = (-((1 - p_t) ** 2) * p_t.log()).mean()
        torch.testing.assert_close(focal_loss(probabilities, mask), expected)

    def test_dice_loss_by_hand(self) -> None:
        probabilities = torch.tensor([[[0.5, 1.0], [0.0, 0.25]], [[0.0, 0.0], [0.0, 0.0]]])
        mask = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
        first = 1 - (2 * 1.5 + 1) / (1.75 + 2 + 1)
        second = 1 - (0 + 1) / (0 + 0 + 1)  # empty image and empty mask: dice 1, loss 0
        assert dice_loss(probabilities, mask).item() == pytest.approx((first + second) / 2)

    def test_local_loss_is_focal_plus_both_dices(self) -> None:
        generator = torch.Generator().manual_seed(1)
        probabilities = torch.rand(2, 2, 4, 4, generator=generator).softmax(dim=1)
        mask = (torch.rand(2, 4, 4, generator=generator) > 0.5).long()
        expected = (
            focal_loss(probabilities, mask)
            + dice_loss(probabilities[:, 1], mask)
            + dice_loss(probabilities[:, 0], 1 - mask)
        )
        torch.testing.assert_close(local_loss(probabilities, mask), expected)

    def test_global_loss_is_cross_entropy_and_accepts_a_batch_of_one(self) -> None:
        logits = torch.tensor([[2.0, -1.0]])
        expected = -math.log(math.exp(-1.0) / (math.exp(2.0) + math.exp(-1.0)))
        assert global_loss(logits, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-6)

    def test_triplet_loss_by_hand(self) -> None:
        anchor, positive, negative = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
        # ‖a-p‖ = 5 (plus eps), ‖a-n‖ = 1: pull 25, push max(0, 2 - 1)^2 = 1
        assert triplet_loss(anchor, positive, negative, margin=2.0).item() == pytest.approx(26.0, rel=1e-4)
        assert triplet_loss(anchor, positive, negative, margin=0.5).item() == pytest.approx(25.0, rel=1e-4)

    def test_gcl_with_zero_margin_is_a_pure_pull(self) -> None:
        generator = torch.Generator().manual_seed(2)
        g_n, g_a, l_n, l_a = torch.nn.functional.normalize(torch.randn(4, 8, generator=generator), dim=-1)
        expected = (2 - 2 * g_n @ l_n) + (2 - 2 * g_a @ l_a)  # unit vectors: ‖x-y‖² = 2 - 2cos
        loss = glocal_contrastive_loss(g_n, g_a, l_n, l_a, margin=0.0)
        assert loss.item() == pytest.approx(expected.item(), abs=1e-4)
        pushed = glocal_contrastive_loss(g_n, g_a, l_n, l_a, margin=3.0)
        push = (3 - (g_n - l_a).norm()) ** 2 + (3 - (g_a - l_n).norm()) ** 2
        assert pushed.item() == pytest.approx((expected + push).item(), abs=1e-3)


class TestMaps:
    def test_state_probabilities_softmax_of_cosines_over_temperature(self) -> None:
        features = torch.tensor([[1.0, 0.0]])
        text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        p = tempered_state_probabilities(features, text, temperature=0.07)
        expected = math.exp(1 / 0.07) / (math.exp(1 / 0.07) + 1)
        assert p[0, 0].item() == pytest.approx(expected)

    def test_patch_map_layout_and_bilinear_upsampling(self) -> None:
        # Patch (row 0, col 1) of a 2x2 grid is the only anomalous one.
        probabilities = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]])
        maps = patch_probability_map(probabilities, (2, 2), (2, 2))
        torch.testing.assert_close(maps[0, 1], torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
        up = patch_probability_map(probabilities, (2, 2), (4, 4))
        assert up.shape == (1, 2, 4, 4)
        assert up[0, 1, 0, 3] == 1.0
        assert up[0, 1, 3, 0] == 0.0

    @pytest.mark.parametrize(("sigma", "size"), [(8.0, (37, 53)), (4.0, (64, 64)), (8.0, (10, 12)), (1.5, (5, 7))])
    def test_gaussian_blur_equals_scipy(self, sigma: float, size: tuple[int, int]) -> None:
        rng = np.random.default_rng(0)
        maps = rng.random((2, *size)).astype(np.float32)
        ours = gaussian_blur(torch.from_numpy(maps), sigma).numpy()
        expected = np.stack([gaussian_filter(m, sigma=sigma) for m in maps])
        np.testing.assert_allclose(ours, expected, atol=1e-5)

    def test_gaussian_kernel_matches_scipy_radius(self) -> None:
        assert gaussian_kernel1d(8.0).numel() == 2 * 32 + 1
        assert gaussian_kernel1d(8.0).sum().item() == pytest.approx(1.0)
