"""AnoCLIP+'s test-time adapter: its formulas, its loss, and that batching changes nothing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anomalib_glocalclip.anoclip.adapter import (
    BatchedTextAdapter,
    TestTimeAdaptation,
    adaptation_loss,
    initial_adapter_parameters,
)

EMBED_DIM = 16
PROMPTS_PER_STATE = 5
NUM_PATCHES = 9



@pytest.fixture
def text_side() -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised state embeddings ``[2, E]`` and sentence embeddings ``[2, K, E]``."""
    generator = torch.Generator().manual_seed(1)
    sentences = F.normalize(torch.randn(2, PROMPTS_PER_STATE, EMBED_DIM, generator=generator), dim=-1)
    return F.normalize(sentences.mean(dim=1), dim=-1), sentences


@pytest.fixture
def patch_tokens() -> torch.Tensor:
    """Un-normalised patch embeddings of 4 images ``[4, N, E]``."""
    return torch.randn(4, NUM_PATCHES, EMBED_DIM, generator=torch.Generator().manual_seed(2)) * 3


def test_adapter_forward_matches_its_formula() -> None:
    prompts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]) / torch.tensor([[1.0], [1.0], [math.sqrt(2)]])
    weight = torch.tensor(
        [
            [[0.5, -1.0], [2.0, 0.0], [0.0, 0.3]],  # image 0: Linear(2, 3) weight
            [[-0.2, 0.1], [0.0, 0.0], [1.0, 1.0]],  # image 1
        ]
    )
    bias = torch.tensor([[0.1, -0.2, 0.0], [0.0, 0.5, -0.5]])
    tokens = torch.tensor([[[3.0, 4.0]], [[0.0, -2.0]]])  # one token per image
    adapter = BatchedTextAdapter(prompts, weight.clone(), bias.clone())

    for image, (x1, x2) in enumerate([(3.0, 4.0), (0.0, -2.0)]):
        norm = math.hypot(x1, x2)
        unit = (x1 / norm, x2 / norm)
        affinity = [
            math.tanh(weight[image, k, 0].item() * unit[0] + weight[image, k, 1].item() * unit[1] + bias[image, k])
            for k in range(3)
        ]
        mapped = [sum(affinity[k] * prompts[k, d].item() for k in range(3)) for d in range(2)]
        expected = torch.tensor([0.5 * x1 + 0.5 * mapped[0], 0.5 * x2 + 0.5 * mapped[1]])
        torch.testing.assert_close(adapter.adapter(tokens)[image, 0], torch.tensor(mapped), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(adapter(tokens)[image, 0], expected, atol=1e-6, rtol=1e-6)


def test_adaptation_loss_matches_its_formula() -> None:
    clean = torch.tensor([[[0.8, 0.2], [0.6, 0.4]], [[0.5, 0.5], [0.9, 0.1]]])
    noisy = torch.tensor([[[0.3, 0.7], [0.5, 0.5]], [[0.2, 0.8], [0.99, 0.01]]])

    def entropy(p: float) -> float:
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))

    expected = []
    for image in range(2):
        pc = clean[image, :, 0].tolist()
        pn = noisy[image, :, 1].tolist()
        mean_entropy = (entropy(pc[0]) + entropy(pc[1])) / 2
        pseudo = ((-math.log(pn[0]) - math.log(pc[0])) + (-math.log(pn[1]) - math.log(pc[1]))) / 2
        expected.append(mean_entropy + 0.5 * pseudo)
    torch.testing.assert_close(adaptation_loss(clean, noisy), torch.tensor(expected))


def test_initial_parameters_are_linear_defaults_and_reproducible() -> None:
    weight, bias = initial_adapter_parameters(10, 25, torch.Generator().manual_seed(0))
    assert weight.shape == (10, 25)
    assert bias.shape == (10,)
    assert weight.abs().max() <= 1 / 5
    assert bias.abs().max() <= 1 / 5
    again, _ = initial_adapter_parameters(10, 25, torch.Generator().manual_seed(0))
    torch.testing.assert_close(weight, again, rtol=0, atol=0)


def _adapt_one_image_like_the_reference(
    tokens: torch.Tensor,
    states: torch.Tensor,
    sentences: torch.Tensor,
    tta: TestTimeAdaptation,
) -> torch.Tensor:
    """One image ``[N, E]``, a plain ``nn.Linear`` adapter and its own AdamW, step by step."""
    generator = torch.Generator().manual_seed(tta.seed)
    prompts = sentences.reshape(-1, tokens.shape[-1])
    weight, bias = initial_adapter_parameters(prompts.shape[0], tokens.shape[-1], generator)
    noise = torch.randn(tta.steps, *tokens.shape, generator=generator) * tta.noise_std
    linear = nn.Linear(tokens.shape[-1], prompts.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    optimizer = torch.optim.AdamW(linear.parameters(), lr=tta.lr, weight_decay=tta.weight_decay)

    def adapted(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + 0.5 * torch.tanh(linear(x / x.norm(dim=-1, keepdim=True))) @ prompts

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return (F.normalize(adapted(x), dim=-1) @ states.t()).softmax(dim=-1)

    for step in range(tta.steps):
        clean, noisy = probabilities(tokens), probabilities(tokens + noise[step])
        entropy = -(clean * clean.log()).sum(dim=-1).mean()
        hard = (-noisy[:, 1].log() - clean[:, 0].log()).mean()
        loss = entropy + 0.5 * hard
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return adapted(tokens)


def test_batched_adaptation_equals_one_image_at_a_time(
    text_side: tuple[torch.Tensor, torch.Tensor], patch_tokens: torch.Tensor
) -> None:
    states, sentences = text_side
    tta = TestTimeAdaptation(steps=5, lr=1e-2)  # a larger step than the default, so that adaptation shows
    batched = tta(patch_tokens, states, sentences)
    assert batched.shape == patch_tokens.shape
    assert not batched.requires_grad
    for image in range(patch_tokens.shape[0]):
        solo = tta(patch_tokens[image : image + 1], states, sentences)[0]
        torch.testing.assert_close(batched[image], solo, atol=1e-5, rtol=1e-5)
        reference = _adapt_one_image_like_the_reference(patch_tokens[image], states, sentences, tta)
        torch.testing.assert_close(batched[image], reference, atol=1e-5, rtol=1e-5)
    # Adaptation moved the tokens (relative to the untrained adapter of step 0).
    untrained = TestTimeAdaptation(steps=0)(patch_tokens, states, sentences)
    assert (batched - untrained).abs().max() > 1e-4


def test_adaptation_does_not_depend_on_order(
    text_side: tuple[torch.Tensor, torch.Tensor], patch_tokens: torch.Tensor
) -> None:
    states, sentences = text_side
    tta = TestTimeAdaptation()
    order = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(
        tta(patch_tokens[order], states, sentences),
        tta(patch_tokens, states, sentences)[order],
        atol=1e-6,
        rtol=1e-6,
    )


def test_adaptation_runs_under_inference_mode(
    text_side: tuple[torch.Tensor, torch.Tensor], patch_tokens: torch.Tensor
) -> None:
    states, sentences = text_side
    tta = TestTimeAdaptation()
    expected = tta(patch_tokens, states, sentences)
    with torch.inference_mode():
        inference_tokens = patch_tokens.clone()
        inference_states = states.clone()
        adapted = tta(inference_tokens, inference_states, sentences)
    torch.testing.assert_close(adapted, expected)
    with torch.no_grad():
        torch.testing.assert_close(tta(patch_tokens, states, sentences), expected)
