"""GlocalCLIP: prompt layout, scoring, modes, prompt files and checkpoints, on the tiny random CLIP."""

from __future__ import annotations

import logging

import pytest
import torch
from anomalib import LearningType
from anomalib.data import ImageBatch
from lightning.pytorch.callbacks import Callback

from anomalib_glocalclip import GlocalCLIP
from anomalib_glocalclip.glocalclip import (
    PRESETS,
    GlocalPromptLearner,
    PromptFileError,
    PromptShape,
    read_prompt_file,
    save_prompt_file,
)
from anomalib_glocalclip.glocalclip.prompt_learner import placeholder_prompts

SHAPE = PromptShape(n_ctx=3, n_abnormal_ctx=2, deep_prompt_depth=4, deep_prompt_length=2)


def tiny_model(tiny_config, **kwargs) -> GlocalCLIP:
    """Tiny GlocalCLIP; prompts initialised from a fixed seed, so two models built alike are equal."""
    torch.manual_seed(0)
    return GlocalCLIP(backbone=str(tiny_config), pretrained=None, image_size=64, **kwargs)


class TestPromptLayout:
    def test_templates(self) -> None:
        assert placeholder_prompts(SHAPE) == [
            "X X X object.",
            "X X X X X damaged object.",
            "X X X object.",
            "X X X X X damaged object.",
        ]

    def test_token_layout(self, tiny_backbone) -> None:
        learner = GlocalPromptLearner(tiny_backbone, SHAPE)
        lengths = (learner.token_ids != 0).sum(dim=1).tolist()
        n, m = SHAPE.n_ctx, SHAPE.n_abnormal_ctx
        assert lengths == [n + 4, n + m + 5, n + 4, n + m + 5]  # SOS ... object . EOS
        assert learner.eot_indices.tolist() == [n + 3, n + m + 4, n + 3, n + m + 4]
        sot, eot = learner.token_ids[0, 0].item(), learner.token_ids.max().item()
        assert (learner.token_ids[:, 0] == sot).all()
        assert learner.token_ids[1, n + m + 4].item() == eot

    def test_context_vectors_sit_after_sos_and_are_shared_by_normal_and_anomalous(self, tiny_backbone) -> None:
        learner = GlocalPromptLearner(tiny_backbone, SHAPE)
        prompts = learner()
        n, m = SHAPE.n_ctx, SHAPE.n_abnormal_ctx
        torch.testing.assert_close(prompts[0, 1 : 1 + n], learner.global_normal_ctx)
        torch.testing.assert_close(prompts[1, 1 : 1 + n], learner.global_normal_ctx)
        torch.testing.assert_close(prompts[1, 1 + n : 1 + n + m], learner.global_anomalous_ctx)
        torch.testing.assert_close(prompts[3, 1 : 1 + n], learner.local_normal_ctx)
        torch.testing.assert_close(prompts[3, 1 + n : 1 + n + m], learner.local_anomalous_ctx)
        # fixed words and padding come from CLIP's token embedding
        fixed = tiny_backbone.embed_tokens(learner.token_ids)
        torch.testing.assert_close(prompts[:, 0], fixed[:, 0])
        torch.testing.assert_close(prompts[0, 1 + n :], fixed[0, 1 + n :])
        torch.testing.assert_close(prompts[1, 1 + n + m :], fixed[1, 1 + n + m :])

    def test_learnable_parameter_count_matches_the_spec(self, tiny_backbone) -> None:
        for shape in (*PRESETS.values(), SHAPE):
            learner = GlocalPromptLearner(tiny_backbone, shape)
            width = tiny_backbone.text_width
            expected = 2 * (shape.n_ctx + shape.n_abnormal_ctx) * width
            expected += (shape.deep_prompt_depth - 1) * shape.deep_prompt_length * width
            assert sum(p.numel() for p in learner.parameters()) == expected
            assert all(not name.startswith("token") for name in learner.state_dict())  # CLIP-derived: not saved

    def test_presets(self, tiny_config) -> None:
        model = tiny_model(tiny_config, preset="mvtec_to_industrial", deep_prompt_length=3)
        assert model.model.prompt_learner.shape == PromptShape(12, 13, 10, 3)
        with pytest.raises(ValueError, match="Unknown GlocalCLIP preset 'nope'"):
            tiny_model(tiny_config, preset="nope")


class TestScoring:
    def test_score_is_the_global_anomalous_probability(self, tiny_config, images) -> None:
        model = tiny_model(tiny_config).eval()
        text = model.model.encode_text()
        features = model.model.encode_image(images)
        logits = features.global_features @ text[:2].T / 0.07
        with torch.no_grad():
            output = model.model(images)
        torch.testing.assert_close(output.pred_score, logits.softmax(-1)[:, 1])

    def test_global_feature_skips_ln_post_unless_asked(self, tiny_config, images) -> None:
        model = tiny_model(tiny_config).eval()
        backbone = model.model.backbone
        cls = backbone.encode_image(images, 6, []).class_token
        expected = torch.nn.functional.normalize(cls @ backbone.clip.visual.proj, dim=-1)
        torch.testing.assert_close(model.model.encode_image(images).global_features, expected)
        with_ln = tiny_model(tiny_config, global_ln_post=True).eval()
        vanilla = torch.nn.functional.normalize(backbone.clip.encode_image(images), dim=-1)
        torch.testing.assert_close(with_ln.model.encode_image(images).global_features, vanilla, atol=1e-5, rtol=1e-5)

    def test_reference_map_is_layer_count_times_the_last_layer(self, tiny_config, images) -> None:
        reference = tiny_model(tiny_config, sigma=0).eval()
        per_layer = tiny_model(tiny_config, sigma=0, per_layer_features=True, feature_layers=[24]).eval()
        with torch.no_grad():
            four = reference.model(images).anomaly_map
            one = per_layer.model(images).anomaly_map
        torch.testing.assert_close(four, 4 * one)
        assert reference.model.map_layers == (24,)

    def test_per_layer_map_sums_each_layers_probability(self, tiny_config, images) -> None:
        model = tiny_model(tiny_config, sigma=0, per_layer_features=True, feature_layers=[6, 12]).eval()
        text = model.model.text_features
        with torch.no_grad():
            features = model.model.encode_image(images)
            maps = model.model.probability_maps(features.patch_features, text, (64, 64))
            output = model.model(images)
        assert features.patch_features.shape == (2, 2, 64, 32)
        torch.testing.assert_close(output.anomaly_map, maps[0, :, 1] + maps[1, :, 1])
        assert not torch.allclose(maps[0], maps[1])

    def test_map_is_smoothed(self, tiny_config, images) -> None:
        from anomalib_glocalclip.glocalclip.anomaly_map import gaussian_blur

        raw = tiny_model(tiny_config, sigma=0).eval()
        smooth = tiny_model(tiny_config, sigma=8).eval()
        with torch.no_grad():
            expected = gaussian_blur(raw.model(images).anomaly_map, 8)
            torch.testing.assert_close(smooth.model(images).anomaly_map, expected)

    def test_batch_of_one(self, tiny_config) -> None:
        model = tiny_model(tiny_config)
        image = torch.randn(1, 3, 64, 64)
        batch = ImageBatch(image=image, gt_label=torch.tensor([1]), gt_mask=torch.zeros(1, 64, 64, dtype=torch.bool))
        batch.gt_mask[0, 10:20, 10:20] = True
        losses = model.compute_losses(model.model.encode_image(batch.image), batch.gt_label, batch.gt_mask)
        assert torch.isfinite(losses["loss"])
        assert losses["loss_local"] > 0
        losses["loss"].backward()
        assert model.model.prompt_learner.global_normal_ctx.grad is not None
        model.eval()
        with torch.no_grad():
            output = model.model(image)
        assert output.pred_score.shape == (1,)
        assert output.anomaly_map.shape == (1, 64, 64)

    def test_only_prompts_get_gradients(self, tiny_config) -> None:
        model = tiny_model(tiny_config)
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        assert trainable
        assert all(name.startswith("model.prompt_learner.") for name in trainable)
        optimizer = model.configure_optimizers()
        assert isinstance(optimizer, torch.optim.Adam)
        assert optimizer.defaults["lr"] == 1e-3
        assert optimizer.defaults["betas"] == (0.5, 0.999)


class TestModesAndFiles:
    def test_learning_type_follows_prompt_weights(self, tiny_config, tmp_path) -> None:
        model = tiny_model(tiny_config)
        assert model.learning_type == LearningType.ONE_CLASS
        path = model.save_prompts(tmp_path / "prompts.pt")
        zero_shot = tiny_model(tiny_config, prompt_weights=str(path))
        assert zero_shot.learning_type == LearningType.ZERO_SHOT
        assert zero_shot.configure_optimizers() is None

    def test_prompt_file_round_trip_reproduces_scores(self, tiny_config, tmp_path, images) -> None:
        model = tiny_model(tiny_config, preset="visa_to_mvtec")
        with torch.no_grad():
            for parameter in model.model.prompt_learner.parameters():
                parameter.add_(torch.randn_like(parameter))
        model.model.refresh_text_features()
        path = model.save_prompts(tmp_path / "prompts.pt")
        assert path.stat().st_size < 100_000
        loaded = tiny_model(tiny_config, prompt_weights=str(path))  # sizes come from the file
        assert loaded.model.prompt_learner.shape == PRESETS["visa_to_mvtec"]
        model.eval(), loaded.eval()
        with torch.no_grad():
            a, b = model.model(images), loaded.model(images)
        torch.testing.assert_close(a.pred_score, b.pred_score, atol=0, rtol=0)
        torch.testing.assert_close(a.anomaly_map, b.anomaly_map, atol=0, rtol=0)

    def test_explicit_sizes_that_disagree_with_the_file(self, tiny_config, tmp_path) -> None:
        path = tiny_model(tiny_config).save_prompts(tmp_path / "p.pt")
        with pytest.raises(PromptFileError, match=r"Drop --model.preset"):
            tiny_model(tiny_config, prompt_weights=str(path), n_ctx=5)

    def test_reference_checkpoint_is_read(self, tiny_config, tmp_path) -> None:
        model = tiny_model(tiny_config)
        learner = model.model.prompt_learner
        width = learner.global_normal_ctx.shape[-1]
        reference = {
            "ctx_global_pos": torch.randn(1, 1, 12, width),
            "ctx_global_neg": torch.randn(1, 1, 12, width),
            "ctx_local_pos": torch.randn(1, 1, 12, width),
            "ctx_local_neg": torch.randn(1, 1, 12, width),
            **{f"compound_prompts_text.{i}": torch.randn(4, width) for i in range(8)},
            **{f"compound_prompt_projections.{i}.weight": torch.randn(896, width) for i in range(8)},
            "token_prefix_global_pos": torch.randn(1, 1, 1, width),
        }
        path = tmp_path / "epoch_15.pth"
        torch.save({"prompt_learner": reference}, path)
        loaded = tiny_model(tiny_config, prompt_weights=str(path))
        torch.testing.assert_close(loaded.model.prompt_learner.local_anomalous_ctx, reference["ctx_local_neg"][0, 0])
        torch.testing.assert_close(loaded.model.prompt_learner.deep_prompts[7], reference["compound_prompts_text.7"])

    def test_unreadable_and_unfitting_prompt_files(self, tiny_config, tmp_path) -> None:
        broken = tmp_path / "broken.pt"
        broken.write_bytes(b"\x00garbage")
        with pytest.raises(PromptFileError, match=r"Could not read prompt file .*broken.pt"):
            tiny_model(tiny_config, prompt_weights=str(broken))
        with pytest.raises(PromptFileError, match="does not exist"):
            tiny_model(tiny_config, prompt_weights=str(tmp_path / "missing.pt"))
        other_width = GlocalPromptLearner.__new__(GlocalPromptLearner)
        torch.nn.Module.__init__(other_width)
        other_width.shape = SHAPE
        for name, size in (("global_normal_ctx", 3), ("global_anomalous_ctx", 2), ("local_normal_ctx", 3),
                           ("local_anomalous_ctx", 2)):
            setattr(other_width, name, torch.nn.Parameter(torch.zeros(size, 7)))
        other_width.deep_prompts = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(2, 7)) for _ in range(3)])
        path = save_prompt_file(other_width, tmp_path / "w7.pt")
        assert read_prompt_file(path).shape == SHAPE
        with pytest.raises(PromptFileError, match="does not fit this backbone"):
            tiny_model(tiny_config, prompt_weights=str(path))

    def test_checkpoint_holds_no_clip_weights(self, tiny_config) -> None:
        model = tiny_model(tiny_config)
        keys = list(model.state_dict())
        assert not any(".backbone." in key for key in keys)
        assert "model.prompt_learner.global_normal_ctx" in keys

    def test_natural_thresholds_without_validation(self, tiny_config) -> None:
        post = tiny_model(tiny_config).post_processor
        assert post._image_threshold.item() == 0.5
        assert post.image_max.item() == 1.0
        assert post._pixel_threshold.item() == 2.0
        assert post.pixel_max.item() == 4.0


class _StopAtStart(Callback):
    """Record the epoch limit the fit runs under, then stop before any step."""

    max_epochs: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.max_epochs = trainer.fit_loop.max_epochs
        trainer.should_stop = True


@pytest.mark.parametrize(("engine_args", "expected"), [({}, 1000), ({"max_epochs": 3}, 3), ({"max_epochs": 15}, 15),
                                                       ({"max_steps": 4}, -1)])
def test_the_epoch_count_is_the_users(tiny_config, tmp_path, caplog, engine_args, expected) -> None:
    """The model leaves the epoch count alone (the paper's 15 are in the configs); Lightning's 1000 get a warning."""
    from anomalib.engine import Engine

    from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer
    from anomalib_glocalclip.testing import generate_visa

    visa = generate_visa(tmp_path / "visa", categories=("candle",), seed=0)
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(visa)), train_batch_size=4, num_workers=0)
    recorder = _StopAtStart()
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", logger=False, callbacks=[recorder],
                    enable_progress_bar=False, enable_model_summary=False, **engine_args)
    with caplog.at_level(logging.WARNING, logger="anomalib_glocalclip.glocalclip.lightning_model"):
        engine.fit(tiny_model(tiny_config, cache_features=False), datamodule=datamodule)
    assert recorder.max_epochs == expected
    assert ("pass max_epochs=15" in caplog.text) == (expected == 1000)
