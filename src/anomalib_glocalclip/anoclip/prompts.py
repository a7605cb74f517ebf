"""AnoCLIP's domain-aware state prompt ensemble.

A sentence is ``[template with a domain phrase] [state] [class]``, e.g. "a cropped industrial photo of the
flawless bottle": 7 state phrases x 66 templates (22 patterns x 3 domain phrases), ``K = 462`` per state, in the
reference code's order (so the test-time adapter's rows line up). A state is embedded as the L2-normalised mean of
its *unnormalised* sentence embeddings; the normalised sentence embeddings are kept for the test-time adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812

from anomalib_glocalclip.backbone import text_tower

if TYPE_CHECKING:
    from anomalib_glocalclip.backbone import CLIPBackbone

Domain = Literal["object", "texture"]

NORMAL_STATES: tuple[str, ...] = (
    "normal {}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
    "{} without damage",
)
ANOMALOUS_STATES: tuple[str, ...] = (
    "damaged {}", "abnormal {}", "imperfect {}", "blemished {}", "{} with flaw", "{} with defect", "{} with damage",
)

DOMAIN_PHRASES: dict[str, tuple[str, ...]] = {
    "object": ("industrial photo", "industrial image", "manufacturing image"),
    "texture": ("industrial photo", "textural photo", "surface picture"),
}

# ``{domain}`` is a domain phrase, ``{article}`` its indefinite article, ``{state}`` a state phrase with the class.
TEMPLATE_PATTERNS: tuple[str, ...] = (
    "a cropped {domain} of the {state}",
    "a cropped {domain} of a {state}",
    "a close-up {domain} of a {state}",
    "a close-up {domain} of the {state}",
    "a bright {domain} of a {state}",
    "a bright {domain} of the {state}",
    "a dark {domain} of the {state}",
    "a dark {domain} of a {state}",
    "a jpeg corrupted {domain} of a {state}",
    "a jpeg corrupted {domain} of the {state}",
    "a blurry {domain} of the {state}",
    "a blurry {domain} of a {state}",
    "{article} {domain} of a {state}",
    "{article} {domain} of the {state}",
    "{article} {domain} of a small {state}",
    "{article} {domain} of the small {state}",
    "{article} {domain} of a large {state}",
    "{article} {domain} of the large {state}",
    "{article} {domain} of the {state} for visual inspection",
    "{article} {domain} of a {state} for visual inspection",
    "{article} {domain} of the {state} for anomaly detection",
    "{article} {domain} of a {state} for anomaly detection",
)

TEXTURE_CATEGORIES = frozenset({"carpet", "grid", "leather", "tile", "wood"})
"""MVTec AD categories prompted with the texture domain phrases when no domain is given."""

CLASS_NAME_ALIASES: dict[str, str] = {"macaroni1": "macaroni", "macaroni2": "macaroni"}
"""Dataset folder names prompted under another name; every other folder name is used as it is."""


class StatePromptEmbeddings(NamedTuple):
    """Text side of AnoCLIP for one class.

    Attributes:
        state_embeddings: ``[2, E]`` normalised normal and anomalous state embeddings.
        sentence_embeddings: ``[2, K, E]`` normalised embeddings of every sentence, normal state first.
    """

    state_embeddings: torch.Tensor
    sentence_embeddings: torch.Tensor


def clean_class_name(name: str) -> str:
    """Class name used in the prompts for a dataset category (``"macaroni1"`` -> ``"macaroni"``)."""
    name = name.strip()
    return CLASS_NAME_ALIASES.get(name, name)


def default_domain(class_name: str) -> Domain:
    """``"texture"`` for the MVTec AD texture categories, ``"object"`` for everything else."""
    return "texture" if class_name.strip().lower() in TEXTURE_CATEGORIES else "object"


def domain_templates(domain: Domain) -> list[str]:
    """The 66 templates of a domain, each with one ``{}`` for the state phrase."""
    if domain not in DOMAIN_PHRASES:
        msg = f"Unknown prompt domain {domain!r}; use one of {sorted(DOMAIN_PHRASES)}."
        raise ValueError(msg)
    templates = []
    for phrase in DOMAIN_PHRASES[domain]:
        article = "an" if phrase[0] in "aeiou" else "a"
        templates += [pattern.format(domain=phrase, article=article, state="{}") for pattern in TEMPLATE_PATTERNS]
    return templates


def state_sentences(class_name: str, domain: Domain) -> tuple[list[str], list[str]]:
    """``(normal, anomalous)`` prompt sentences of a (cleaned) class name, ``K = 462`` each, by template then state."""
    templates = domain_templates(domain)

    def sentences(states: Sequence[str]) -> list[str]:
        phrases = [state.format(class_name) for state in states]
        return [template.format(phrase) for template in templates for phrase in phrases]

    return sentences(NORMAL_STATES), sentences(ANOMALOUS_STATES)


def summarise_sentence_features(sentence_features: torch.Tensor) -> StatePromptEmbeddings:
    """Turn unnormalised sentence features ``[2, K, E]`` into state and normalised sentence embeddings."""
    state_embeddings = F.normalize(sentence_features.mean(dim=1), dim=-1)
    return StatePromptEmbeddings(state_embeddings, F.normalize(sentence_features, dim=-1))


@torch.no_grad()
def encode_sentences(backbone: CLIPBackbone, sentences: Sequence[str], text_batch_size: int = 128) -> torch.Tensor:
    """Plain CLIP text features ``[P, E]`` (not normalised, float32) of ``sentences``.

    With a causal text tower (CLIP's), nothing after a sentence's end-of-text token reaches it, so the
    padding past the longest sentence is cut off first: the features are unchanged and the pass is several
    times cheaper than at the full context length.
    """
    tokens = backbone.tokenize(sentences)
    eot_indices = tokens.argmax(dim=-1)
    if text_tower(backbone.clip).attn_mask is not None:
        tokens = tokens[:, : int(eot_indices.max()) + 1]
    features = [
        backbone.encode_prompt_embeddings(
            backbone.embed_tokens(tokens[start : start + text_batch_size]),
            eot_indices[start : start + text_batch_size],
        ).float()
        for start in range(0, len(sentences), text_batch_size)
    ]
    return torch.cat(features)


def encode_state_prompts(
    backbone: CLIPBackbone, class_name: str, domain: Domain, text_batch_size: int = 128
) -> StatePromptEmbeddings:
    """Encode the prompt ensemble of a (cleaned) ``class_name``: ``[2, E]`` state, ``[2, K, E]`` sentence embeddings."""
    normal, anomalous = state_sentences(class_name, domain)
    features = encode_sentences(backbone, normal + anomalous, text_batch_size)
    return summarise_sentence_features(features.view(2, len(normal), -1))
