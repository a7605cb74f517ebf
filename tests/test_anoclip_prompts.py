"""AnoCLIP's domain-aware state prompt ensemble: counts, exact wording, class names, state embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from anomalib_glocalclip.anoclip.prompts import (
    ANOMALOUS_STATES,
    NORMAL_STATES,
    clean_class_name,
    default_domain,
    domain_templates,
    encode_sentences,
    encode_state_prompts,
    state_sentences,
    summarise_sentence_features,
)
from anomalib_glocalclip.backbone import CLIPBackbone
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG


def test_seven_states_each() -> None:
    assert len(NORMAL_STATES) == len(ANOMALOUS_STATES) == 7
    assert NORMAL_STATES[0] == "normal {}"
    assert ANOMALOUS_STATES[-1] == "{} with damage"


@pytest.mark.parametrize("domain", ["object", "texture"])
def test_66_templates_and_462_sentences_per_state(domain: str) -> None:
    templates = domain_templates(domain)
    assert len(templates) == len(set(templates)) == 66
    normal, anomalous = state_sentences("bottle", domain)
    assert len(normal) == len(anomalous) == 7 * 66
    assert len(set(normal)) == len(normal)
    # Sentence order: template-major, then state phrase (as the reference builds them).
    assert normal[3 * 7 + 5] == templates[3].format("bottle without defect")


def test_object_sentences_word_for_word() -> None:
    normal, anomalous = state_sentences("bottle", "object")
    assert normal[0] == "a cropped industrial photo of the normal bottle"
    assert normal[6] == "a cropped industrial photo of the bottle without damage"
    assert anomalous[7] == "a cropped industrial photo of a damaged bottle"
    assert "an industrial photo of the small flawless bottle" in normal
    assert "an industrial image of a bottle with defect for visual inspection" in anomalous
    assert "a jpeg corrupted manufacturing image of the imperfect bottle" in anomalous
    assert anomalous[-1] == "a manufacturing image of a bottle with damage for anomaly detection"
    assert not any("textural" in sentence or "surface" in sentence for sentence in normal + anomalous)


def test_texture_sentences_word_for_word() -> None:
    normal, anomalous = state_sentences("carpet", "texture")
    assert normal[0] == "a cropped industrial photo of the normal carpet"
    assert "a textural photo of a large perfect carpet" in normal
    assert "a blurry surface picture of the blemished carpet" in anomalous
    assert anomalous[-1] == "a surface picture of a carpet with damage for anomaly detection"
    assert not any("manufacturing" in sentence or "industrial image" in sentence for sentence in normal)


def test_unknown_domain_is_rejected() -> None:
    with pytest.raises(ValueError, match="domain"):
        domain_templates("fabric")


def test_class_names_and_domains_follow_the_reference() -> None:
    assert clean_class_name("macaroni1") == "macaroni"
    assert clean_class_name("macaroni2") == "macaroni"
    assert clean_class_name("metal_nut") == "metal_nut"  # the reference keeps underscores
    assert clean_class_name("pipe_fryum") == "pipe_fryum"
    for texture in ("carpet", "grid", "leather", "tile", "wood"):
        assert default_domain(texture) == "texture"
    for thing in ("bottle", "metal_nut", "object", "pcb1"):
        assert default_domain(thing) == "object"


def test_state_embedding_is_normalised_mean_of_unnormalised_sentences() -> None:
    features = torch.tensor(
        [
            [[3.0, 0.0], [0.0, 1.0]],  # normal: mean (1.5, 0.5)
            [[0.0, -2.0], [4.0, 0.0]],  # anomalous: mean (2, -1)
        ]
    )
    prompts = summarise_sentence_features(features)
    expected_states = torch.tensor([[1.5, 0.5], [2.0, -1.0]])
    expected_states /= expected_states.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(prompts.state_embeddings, expected_states)
    torch.testing.assert_close(
        prompts.sentence_embeddings,
        torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, -1.0], [1.0, 0.0]]]),
    )
    # Not the mean of the normalised sentences: that would give (0.5, 0.5) -> 45 degrees for "normal".
    assert not torch.allclose(prompts.state_embeddings[0], F.normalize(torch.tensor([0.5, 0.5]), dim=0))


def test_encoded_prompts_match_plain_clip_text_features(tmp_path: Path) -> None:
    config = json.loads(TINY_CLIP_CONFIG.read_text())
    config["text_cfg"]["layers"] = 2  # depth does not matter here, and a full ensemble is 924 sentences
    config_path = tmp_path / "shallow-text-clip.json"
    config_path.write_text(json.dumps(config))
    tiny_backbone = CLIPBackbone(config_path, pretrained=None, image_size=64)
    normal, anomalous = state_sentences("bottle", "object")
    prompts = encode_state_prompts(tiny_backbone, "bottle", "object")
    embed_dim = tiny_backbone.embed_dim
    assert prompts.state_embeddings.shape == (2, embed_dim)
    assert prompts.sentence_embeddings.shape == (2, 462, embed_dim)

    # Plain CLIP text features at the full context length, for a few sentences of each state.
    picked = [0, 100, 461]
    sentences = [normal[i] for i in picked] + [anomalous[i] for i in picked]
    plain = tiny_backbone.encode_text(tiny_backbone.tokenize(sentences))
    torch.testing.assert_close(encode_sentences(tiny_backbone, sentences), plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        prompts.sentence_embeddings[:, picked].reshape(-1, embed_dim),
        F.normalize(plain, dim=-1),
        atol=1e-5,
        rtol=1e-5,
    )
    all_features = encode_sentences(tiny_backbone, normal + anomalous).view(2, 462, -1)
    torch.testing.assert_close(prompts.state_embeddings, F.normalize(all_features.mean(dim=1), dim=-1))
