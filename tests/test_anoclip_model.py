"""AnoCLIP's PyTorch model on a tiny random CLIP: views, image score, pixel map, batching, buffers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anomalib_glocalclip.anoclip import AnoCLIPModel
from anomalib_glocalclip.anoclip.adapter import TestTimeAdaptation
from anomalib_glocalclip.anoclip.scoring import patch_anomaly_map
from anomalib_glocalclip.anoclip.views import (
    NUM_AUGMENTED_VIEWS,
    SMALL_ROTATIONS,
    TRANSLATIONS,
    affine_matrices,
    augmented_views,
    warp,
)
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG


@pytest.fixture(scope="module")
def model() -> AnoCLIPModel:
    """Tiny AnoCLIP (24-layer ViT, 64 px, 8x8 patch grid) prompted for "bottle"."""
    torch.manual_seed(0)
    model = AnoCLIPModel(backbone=TINY_CLIP_CONFIG, pretrained=None, image_size=64).eval()
    model.setup_prompts("bottle", "object")
    return model


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """Four random CLIP-normalised images ``[4, 3, 64, 64]``."""
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@contextmanager
def adapting(model: AnoCLIPModel, adaptation: TestTimeAdaptation | None) -> Iterator[AnoCLIPModel]:
    """Run the shared model with (or without) test-time adaptation for a while."""
    previous, model.adaptation = model.adaptation, adaptation
    try:
        yield model
    finally:
        model.adaptation = previous


# ----- views -----
def test_21_augmented_views_as_in_the_reference(batch: torch.Tensor) -> None:
    views = augmented_views(batch)
    assert NUM_AUGMENTED_VIEWS == 21
    assert views.shape == (4, 21, 3, 64, 64)
    torch.testing.assert_close(views[:, 16], batch.flip(-1))
    torch.testing.assert_close(views[:, 17], kornia.color.rgb_to_grayscale(batch).expand(-1, 3, -1, -1))
    for k in (1, 2, 3):
        torch.testing.assert_close(views[:, 17 + k], torch.rot90(batch, k, dims=(-2, -1)))
        # The reference rotates with kornia (bilinear, reflection): the same image up to resampling error.
        angle = torch.full((4,), 90.0 * k)
        rotated = kornia.geometry.transform.rotate(batch, angle, padding_mode="reflection")
        torch.testing.assert_close(views[:, 17 + k], rotated, atol=1e-3, rtol=1e-3)


def test_views_in_the_reference_order(batch: torch.Tensor) -> None:
    """hq-deng/AnoVL's ``utils.aug`` after the image: 8 rotations, 8 shifts, flip, grayscale, rot90 x 3."""
    reference_angles = [-np.pi / 4, -3 * np.pi / 16, -np.pi / 8, -np.pi / 16,
                        np.pi / 16, np.pi / 8, 3 * np.pi / 16, np.pi / 4]
    reference_shifts = [(0.2, 0.2), (-0.2, 0.2), (-0.2, -0.2), (0.2, -0.2),
                        (0.1, 0.1), (-0.1, 0.1), (-0.1, -0.1), (0.1, -0.1)]
    assert list(SMALL_ROTATIONS) == reference_angles
    assert list(TRANSLATIONS) == reference_shifts
    # Each warped view is the image resampled as the reference does it (affine grid, align_corners, reflection).
    matrices = [[[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]] for a in reference_angles]
    matrices += [[[1.0, 0.0, x], [0.0, 1.0, y]] for x, y in reference_shifts]
    views = augmented_views(batch)
    for index, matrix in enumerate(matrices):
        theta = torch.tensor([matrix], dtype=torch.float32).expand(len(batch), -1, -1)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=True)
        expected = F.grid_sample(batch, grid, padding_mode="reflection", align_corners=True)
        torch.testing.assert_close(views[:, index], expected)


def test_warp_resamples_with_reflection(batch: torch.Tensor) -> None:
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(warp(batch, identity)[:, 0], batch, atol=1e-4, rtol=1e-4)
    # A shift by 2 grid units / (W - 1) per pixel moves the image by whole pixels (align_corners=True).
    shift = torch.tensor([[[1.0, 0.0, 2 * 3 / 63], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(warp(batch, shift)[:, 0, :, :, :-3], batch[..., 3:], atol=1e-4, rtol=1e-4)
    # Reflection padding: a constant image stays constant in every view (no zeros come in).
    constant = torch.full((1, 3, 64, 64), 0.7)
    torch.testing.assert_close(augmented_views(constant), torch.full((1, 21, 3, 64, 64), 0.7))
    matrices = affine_matrices()
    assert matrices.shape == (16, 2, 3)
    torch.testing.assert_close(torch.linalg.det(matrices[:, :, :2]), torch.ones(16))


# ----- image score -----
def test_image_score_is_mean_of_per_view_probabilities(model: AnoCLIPModel, batch: torch.Tensor) -> None:
    class_embeddings, patch_embeddings = model.encode_images(batch)
    assert class_embeddings.shape == (4, 22, model.backbone.embed_dim)
    assert patch_embeddings.shape == (4, 64, model.backbone.embed_dim)

    # Every view's class embedding is plain CLIP's image embedding (ln_post + proj of the original CLS).
    with torch.no_grad():
        clip = model.backbone.clip
        torch.testing.assert_close(class_embeddings[:, 0], clip.encode_image(batch), atol=1e-5, rtol=1e-5)
        views = augmented_views(batch).flatten(0, 1)
        torch.testing.assert_close(
            class_embeddings[:, 1:],
            clip.encode_image(views).view(4, 21, -1),
            atol=1e-5,
            rtol=1e-5,
        )

    normal, anomalous = model.state_embeddings
    unit = class_embeddings / class_embeddings.norm(dim=-1, keepdim=True)
    cos_normal, cos_anomalous = unit @ normal, unit @ anomalous
    per_view = torch.exp(cos_anomalous) / (torch.exp(cos_normal) + torch.exp(cos_anomalous))  # no temperature
    torch.testing.assert_close(model(batch).pred_score, per_view.mean(dim=1), atol=1e-6, rtol=1e-6)


def test_image_score_without_views_uses_the_image_alone(model: AnoCLIPModel, batch: torch.Tensor) -> None:
    model.image_score_views = "none"
    try:
        class_embeddings, _ = model.encode_images(batch)
        scores = model(batch).pred_score
    finally:
        model.image_score_views = "reference"
    assert class_embeddings.shape[1] == 1
    probabilities = (F.normalize(class_embeddings[:, 0], dim=-1) @ model.state_embeddings.t()).softmax(dim=-1)
    torch.testing.assert_close(scores, probabilities[:, 1])


# ----- pixel map -----
def _explicit_anomaly_map(patch_scores: np.ndarray, grid: int, size: int) -> np.ndarray:
    """3x3 mean with edge padding, then bilinear upsampling with aligned corners, written out."""
    batch = patch_scores.shape[0]
    padded = np.pad(patch_scores.reshape(batch, grid, grid), ((0, 0), (1, 1), (1, 1)), mode="edge")
    smoothed = np.zeros((batch, grid, grid))
    for i in range(grid):
        for j in range(grid):
            smoothed[:, i, j] = padded[:, i : i + 3, j : j + 3].mean(axis=(1, 2))
    coords = np.arange(size) * (grid - 1) / (size - 1)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, grid - 1)
    frac = coords - low
    rows = smoothed[:, low, :] * (1 - frac)[None, :, None] + smoothed[:, high, :] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac)[None, None, :] + rows[:, :, high] * frac[None, None, :]


def test_patch_map_pooling_and_upsampling() -> None:
    scores = torch.rand(2, 25, generator=torch.Generator().manual_seed(4))
    result = patch_anomaly_map(scores, (5, 5), (37, 37))
    assert result.shape == (2, 37, 37)
    np.testing.assert_allclose(result.numpy(), _explicit_anomaly_map(scores.numpy(), 5, 37), atol=1e-6)


@pytest.mark.parametrize("feature_layer", [None, 9])
def test_anomaly_map_from_vv_tokens(batch: torch.Tensor, model: AnoCLIPModel, feature_layer: int | None) -> None:
    layer = feature_layer or model.backbone.num_vision_layers
    previous, model.feature_layer = model.feature_layer, layer
    try:
        anomaly_map = model(batch).anomaly_map
    finally:
        model.feature_layer = previous
    with torch.no_grad():
        vv_tokens = model.backbone.encode_image(batch, vv_start_layer=1, out_layers=[layer]).vv_tokens[0]
        patches = F.normalize(model.backbone.project(vv_tokens[:, 1:]), dim=-1)
        scores = (patches @ model.state_embeddings.t()).softmax(dim=-1)[..., 1]
    assert anomaly_map.shape == (4, 64, 64)
    np.testing.assert_allclose(anomaly_map.numpy(), _explicit_anomaly_map(scores.numpy(), 8, 64), atol=1e-5)


# ----- batching and order -----
@pytest.mark.parametrize("tta", [False, True], ids=["anoclip", "anoclip+"])
def test_scores_do_not_depend_on_batch_size_or_order(model: AnoCLIPModel, batch: torch.Tensor, tta: bool) -> None:
    with adapting(model, TestTimeAdaptation() if tta else None):
        together = model(batch)
        order = torch.tensor([3, 1, 0, 2])
        shuffled = model(batch[order])
        one_by_one = [model(batch[i : i + 1]) for i in range(4)]
    for field in ("pred_score", "anomaly_map"):
        full = getattr(together, field)
        torch.testing.assert_close(getattr(shuffled, field), full[order], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.cat([getattr(o, field) for o in one_by_one]), full, atol=1e-5, rtol=1e-5)


def test_test_time_adaptation_changes_only_the_map(model: AnoCLIPModel, batch: torch.Tensor) -> None:
    plain = model(batch)
    with adapting(model, TestTimeAdaptation(lr=1e-2)):
        adapted = model(batch)
    torch.testing.assert_close(adapted.pred_score, plain.pred_score)
    assert (adapted.anomaly_map - plain.anomaly_map).abs().max() > 1e-4
    assert all(parameter.grad is None for parameter in model.backbone.parameters())


def test_encoder_batch_size_only_splits_the_passes(model: AnoCLIPModel, batch: torch.Tensor) -> None:
    previous, model.encoder_batch_size = model.encoder_batch_size, 5
    try:
        chunked = model(batch)
    finally:
        model.encoder_batch_size = None
    try:
        whole = model(batch)
    finally:
        model.encoder_batch_size = previous
    torch.testing.assert_close(chunked.pred_score, whole.pred_score, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(chunked.anomaly_map, whole.anomaly_map, atol=1e-6, rtol=1e-5)


def test_train_mode_returns_the_same_inference_batch(model: AnoCLIPModel, batch: torch.Tensor) -> None:
    expected = model(batch[:1])
    model.train()
    try:
        result = model(batch[:1])
    finally:
        model.eval()
    torch.testing.assert_close(result.pred_score, expected.pred_score)
    torch.testing.assert_close(result.anomaly_map, expected.anomaly_map)


# ----- buffers and construction -----
def test_text_buffers_load_into_a_fresh_model(model: AnoCLIPModel) -> None:
    state = model.state_dict()
    # The frozen CLIP stays out; the few-shot bank (empty here) is a buffer so that checkpoints carry it.
    assert set(state) == {"state_embeddings", "sentence_embeddings", "reference_bank.features"}
    fresh = AnoCLIPModel(backbone=TINY_CLIP_CONFIG, pretrained=None, image_size=64)
    assert not fresh.has_prompts
    with pytest.raises(RuntimeError, match="setup_prompts"):
        fresh(torch.zeros(1, 3, 64, 64))
    fresh.load_state_dict(state)
    assert fresh.has_prompts
    torch.testing.assert_close(fresh.state_embeddings, model.state_embeddings)
    torch.testing.assert_close(fresh.sentence_embeddings, model.sentence_embeddings)


def test_any_layer_count_and_grid(tmp_path: Path) -> None:
    config = json.loads(TINY_CLIP_CONFIG.read_text())
    config["vision_cfg"].update(layers=3, image_size=48)
    config["text_cfg"]["layers"] = 2
    path = tmp_path / "three-layer-clip.json"
    path.write_text(json.dumps(config))
    model = AnoCLIPModel(backbone=path, pretrained=None, image_size=48, image_score_views="none")
    assert model.feature_layer == 3
    model.setup_prompts("wood", "texture")
    output = model(torch.randn(2, 3, 48, 48))
    assert output.pred_score.shape == (2,)
    assert output.anomaly_map.shape == (2, 48, 48)
    with pytest.raises(ValueError, match="feature_layer"):
        AnoCLIPModel(backbone=path, pretrained=None, image_size=48, feature_layer=4)
    with pytest.raises(ValueError, match="image_score_views"):
        AnoCLIPModel(backbone=path, pretrained=None, image_size=48, image_score_views="all")
