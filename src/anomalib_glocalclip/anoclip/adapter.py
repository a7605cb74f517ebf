"""AnoCLIP+'s test-time adapter: a small text-space adapter fitted to each test image's own patch tokens.

For an image token ``x`` (joint space, not normalised) the adapter gives

    adapter(x) = tanh(W x̂ + b) @ P,        x' = normalise(0.5 x + 0.5 adapter(x)),

with ``x̂ = x / |x|``, ``P = [2K, E]`` the normalised prompt-sentence embeddings (normal first) and
``W = [2K, E]``, ``b = [2K]`` a fresh ``Linear(E, 2K)``. It is optimised for a few AdamW steps on the
patch tokens of the one image (the class token is not used), with the pseudo-label loss

    L = mean_patches H(p_clean) + 0.5 * mean_patches [-log p_noisy(anomalous) - log p_clean(normal)],

where ``p = softmax([cos(x', t_n), cos(x', t_a)])`` and the noisy tokens are the clean ones plus
Gaussian noise: clean tokens are pseudo-labelled normal, noise-perturbed ones anomalous.

Unlike the reference (see the README's "Faithfulness"), every image starts from the same seeded adapter, noise and
a fresh AdamW, so a score depends on its image only. A batch's adapters are optimised together as independent
parameters (``[B, 2K, E]``, ``[B, 2K]``) on the *sum* of per-image losses: each image's gradient is its solo
gradient and AdamW updates element-wise, so the result is that of adapting one image at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .scoring import cosine_state_probabilities


class BatchedTextAdapter(nn.Module):
    """Independent residual text adapters, one per image of a batch.

    Args:
        prompt_embeddings: ``[2K, E]`` normalised prompt-sentence embeddings, normal state first.
        weight: ``[B, 2K, E]`` initial weights, one ``Linear(E, 2K)`` weight per image.
        bias: ``[B, 2K]`` initial biases.
    """

    def __init__(self, prompt_embeddings: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("prompt_embeddings", prompt_embeddings)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def adapter(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tanh(W x̂ + b) @ P`` of tokens ``[B, M, E]`` -> ``[B, M, E]``, each image with its own ``W, b``."""
        unit = tokens / tokens.norm(dim=-1, keepdim=True)
        affinity = torch.tanh(torch.baddbmm(self.bias.unsqueeze(1), unit, self.weight.transpose(1, 2)))
        return affinity @ self.prompt_embeddings

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Adapted tokens ``0.5 x + 0.5 adapter(x)`` ``[B, M, E]`` (not normalised) of tokens ``[B, M, E]``."""
        return 0.5 * tokens + 0.5 * self.adapter(tokens)


def initial_adapter_parameters(
    num_prompts: int, embed_dim: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``[num_prompts, embed_dim]`` and bias ``[num_prompts]`` uniform in ``±1/sqrt(fan_in)``, as ``nn.Linear``.

    Drawn from ``generator``, so the start of every adaptation is reproducible.
    """
    bound = 1 / math.sqrt(embed_dim)
    weight = torch.empty(num_prompts, embed_dim).uniform_(-bound, bound, generator=generator)
    bias = torch.empty(num_prompts).uniform_(-bound, bound, generator=generator)
    return weight, bias


def adaptation_loss(clean_probabilities: torch.Tensor, noisy_probabilities: torch.Tensor) -> torch.Tensor:
    """``[B]`` pseudo-label loss of ``[B, M, 2]`` (normal, anomalous) probabilities of clean and noisy patch tokens.

    ``mean_M H(p_clean) + 0.5 mean_M [-log p_noisy[..., 1] - log p_clean[..., 0]]``.
    """
    clean_log = clean_probabilities.log()
    entropy = -(clean_probabilities * clean_log).sum(dim=-1)
    pseudo_label = -noisy_probabilities[..., 1].log() - clean_log[..., 0]
    return entropy.mean(dim=-1) + 0.5 * pseudo_label.mean(dim=-1)


@dataclass(frozen=True)
class TestTimeAdaptation:
    """Hyper-parameters of AnoCLIP+'s per-image adaptation, and the adaptation itself.

    Args:
        steps: AdamW steps per image.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        noise_std: standard deviation of the Gaussian noise added to the tokens (0.05 * 1.1 in the reference).
        seed: seed of the adapter initialisation and the noise; the same for every image.
    """

    __test__ = False  # not a pytest test class, despite its name

    steps: int = 5
    lr: float = 1e-3
    weight_decay: float = 0.01
    noise_std: float = 0.055
    seed: int = 111

    def __call__(
        self, patch_embeddings: torch.Tensor, state_embeddings: torch.Tensor, sentence_embeddings: torch.Tensor
    ) -> torch.Tensor:
        """Fit one adapter per image on its patch embeddings and return the adapted embeddings.

        Gradients are switched on here even under ``torch.no_grad`` or ``torch.inference_mode`` (as in
        Lightning's test and predict loops); the inputs are only read, and the result carries no graph.

        Args:
            patch_embeddings: ``[B, N, E]`` patch embeddings (ln_post + proj of the V-V tokens).
            state_embeddings: ``[2, E]`` normalised state embeddings.
            sentence_embeddings: ``[2, K, E]`` normalised sentence embeddings.

        Returns:
            ``[B, N, E]`` float32 adapted embeddings ``0.5 x + 0.5 adapter(x)`` (not normalised).
        """
        batch, num_patches, embed_dim = patch_embeddings.shape
        device = patch_embeddings.device
        with torch.inference_mode(mode=False), torch.enable_grad():
            # Tensors made under inference mode cannot take part in autograd; clones made here can.
            tokens = patch_embeddings.detach().float().clone()
            states = state_embeddings.detach().float().clone()
            prompts = sentence_embeddings.detach().float().reshape(-1, embed_dim).clone()

            generator = torch.Generator().manual_seed(self.seed)
            weight, bias = initial_adapter_parameters(prompts.shape[0], embed_dim, generator)
            noise = torch.randn(self.steps, num_patches, embed_dim, generator=generator) * self.noise_std
            weights, biases = weight.to(device).expand(batch, -1, -1).clone(), bias.to(device).expand(batch, -1).clone()
            adapter = BatchedTextAdapter(prompts, weights, biases)
            optimizer = torch.optim.AdamW(adapter.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            noise = noise.to(device)
            for step in range(self.steps):
                adapted = adapter(torch.cat([tokens, tokens + noise[step]], dim=1))
                clean, noisy = cosine_state_probabilities(adapted, states).split(num_patches, dim=1)
                loss = adaptation_loss(clean, noisy).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                return adapter(tokens)
