"""GlocalCLIP's losses, scores and maps against their formulas on small hand-computed cases."""

from __future__ import annotations

import inspect
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


def hand_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy's 1-D Gaussian written out: ``exp(-x²/2σ²)`` on ``|x| <= int(truncate σ + 0.5)``, summing to 1."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def hand_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian filter with scipy's ``reflect`` border (``d c b a | a b c d | d c b a``: numpy's
    ``symmetric`` padding), as explicit sums of shifted copies."""
    kernel = hand_kernel(sigma)
    radius = len(kernel) // 2
    height, width = image.shape
    padded = np.pad(image.astype(np.float64), radius, mode="symmetric")
    # Output pixel i takes sum_t kernel[radius + t] * input[i + t], i.e. padded[radius + i + t].
    rows = sum(k * padded[:, shift : shift + width] for shift, k in enumerate(kernel))
    return sum(k * rows[shift : shift + height] for shift, k in enumerate(kernel))


class TestGaussianSmoothing:
    """The spec (glocalclip.md section 5): ``scipy.ndimage.gaussian_filter`` with σ = 8 (``train.sh``), reflect
    border, truncate 4, i.e. a normalised 65-tap kernel; checked here against kernels written out with numpy."""

    def test_default_sigma_is_the_papers(self) -> None:
        from anomalib_glocalclip import GlocalCLIP

        assert inspect.signature(GlocalCLIP).parameters["sigma"].default == 8.0
        np.testing.assert_allclose(gaussian_kernel1d(8.0).numpy(), hand_kernel(8.0), atol=1e-7)
        assert len(hand_kernel(8.0)) == 65

    @pytest.mark.parametrize("sigma", [8.0, 2.5])
    def test_delta_inside_becomes_the_normalised_kernel(self, sigma: float) -> None:
        size, centre = 80, (40, 37)  # at least the radius (32 for σ = 8) from every border
        delta = np.zeros((size, size), dtype=np.float32)
        delta[centre] = 1.0
        ours = gaussian_blur(torch.from_numpy(delta)[None], sigma)[0].numpy()
        kernel = hand_kernel(sigma)
        radius = len(kernel) // 2
        expected = np.zeros((size, size))
        expected[centre[0] - radius : centre[0] + radius + 1, centre[1] - radius : centre[1] + radius + 1] = np.outer(
            kernel, kernel
        )
        np.testing.assert_allclose(ours, expected, atol=1e-7)
        assert ours.sum() == pytest.approx(1.0, abs=1e-5)

    def test_delta_in_the_corner_is_reflected_back(self) -> None:
        """Reflect: pixel -1 mirrors pixel 0, so a corner delta gives ``(g(i) + g(i+1)) (g(j) + g(j+1))``."""
        sigma, size = 2.0, 12
        delta = np.zeros((size, size), dtype=np.float32)
        delta[0, 0] = 1.0
        ours = gaussian_blur(torch.from_numpy(delta)[None], sigma)[0].numpy()
        kernel = hand_kernel(sigma)
        radius = len(kernel) // 2
        g = np.concatenate([kernel[radius:], np.zeros(size + 1 - (radius + 1))])  # g(0), g(1), ..., 0 beyond radius
        profile = g[:size] + g[1 : size + 1]
        np.testing.assert_allclose(ours, np.outer(profile, profile), atol=1e-7)
        assert ours.sum() == pytest.approx(1.0, abs=1e-5)  # no mass lost at the border

    def test_constant_map_stays_constant_up_to_the_borders(self) -> None:
        maps = torch.full((1, 20, 30), 0.7)
        torch.testing.assert_close(gaussian_blur(maps, 8.0), maps, atol=1e-6, rtol=0)

    @pytest.mark.parametrize(("sigma", "size"), [(8.0, (64, 64)), (3.0, (9, 14))])
    def test_random_maps_against_the_hand_filter(self, sigma: float, size: tuple[int, int]) -> None:
        maps = np.random.default_rng(1).random((2, *size)).astype(np.float32)
        ours = gaussian_blur(torch.from_numpy(maps), sigma).numpy()
        np.testing.assert_allclose(ours, np.stack([hand_blur(m, sigma) for m in maps]), atol=1e-6)

    def test_glocalclip_smooths_its_map_with_its_sigma(self, tmp_path) -> None:
        """The model's map is its unsmoothed map (``sigma = 0``) filtered by hand with ``sigma``."""
        from anomalib_glocalclip import GlocalCLIP
        from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

        tiny = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}
        torch.manual_seed(0)
        prompts = GlocalCLIP(**tiny).save_prompts(tmp_path / "prompts.pt")
        images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        maps = {}
        for sigma in (0.0, 8.0, 2.0):
            model = GlocalCLIP(**tiny, sigma=sigma, temperature=1.0, prompt_weights=str(prompts)).eval()
            with torch.no_grad():
                maps[sigma] = model.model(images).anomaly_map.numpy()
        assert maps[0.0].std() > 1e-3  # something to smooth
        for sigma in (8.0, 2.0):
            expected = np.stack([hand_blur(m, sigma) for m in maps[0.0]])
            np.testing.assert_allclose(maps[sigma], expected, atol=1e-5)
