"""The training step: the batched local loss of all map layers, and the compiled step on cached features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from anomalib.engine import Engine
from lightning.pytorch import seed_everything

from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP, compat
from anomalib_glocalclip.backbone import clip_backbone
from anomalib_glocalclip.backbone.vv_attention import dual_stream_forward
from anomalib_glocalclip.glocalclip import anomaly_map, lightning_model, training_step
from anomalib_glocalclip.glocalclip.loss import local_loss
from anomalib_glocalclip.glocalclip.training_step import (
    CompiledStepError,
    cached_batch_losses,
    run_compiled_cached_losses,
)
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_visa
from training_helpers import StepRecorder

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64}


def loop_over_layers(maps: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The local loss written out layer by layer and term by term: focal + dice(anomalous) + dice(normal).

    Args:
        maps: ``[K, B, 2, H, W]`` probabilities.
        mask: ``[B, H, W]`` float 0/1.
        weights: ``[B]`` float 0/1.
    """
    total = maps.new_zeros(())
    for layer in maps:
        one_hot = torch.stack([1 - mask, mask], dim=1).clamp(1e-5, 1 - 1e-5)
        p_t = (one_hot * layer).sum(dim=1) + 1e-5
        focal = (-((1 - p_t) ** 2) * p_t.log()).mean(dim=(1, 2))
        terms = [focal]
        for probabilities, target in ((layer[:, 1], mask), (layer[:, 0], 1 - mask)):
            intersection = (probabilities * target).sum(dim=(1, 2))
            terms.append(1 - (2 * intersection + 1) / (probabilities.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1))
        for per_image in terms:
            total = total + (per_image * weights).sum() / weights.sum()
    return total


def batch_of(model: GlocalCLIP, size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Raw features of ``size`` random images, labels and masks: normal, anomalous, and anomalous without mask."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 3, 64, 64, generator=generator)
    global_features, patch_features = model.model.encode_image_raw(images)
    labels = torch.tensor([0, 1, 1, 1] * size)[:size]
    masks = torch.zeros(size, 64, 64, dtype=torch.bool)
    masks[1::4, 8:40, 16:30] = True
    masks[3::4] = torch.rand(masks[3::4].shape, generator=generator) > 0.7  # label 1, empty mask at index 2: no pixels
    return global_features, patch_features, labels, masks


def prompt_gradients(model: GlocalCLIP) -> list[torch.Tensor]:
    return [parameter.grad.clone() for parameter in model.model.prompt_learner.parameters()]


class TestBatchedLocalLoss:
    def test_stack_equals_a_loop_over_layers(self) -> None:
        generator = torch.Generator().manual_seed(0)
        maps = torch.rand(3, 4, 2, 9, 7, generator=generator).softmax(dim=2)
        mask = (torch.rand(4, 9, 7, generator=generator) > 0.6).float()
        weights = torch.tensor([1.0, 0.0, 1.0, 1.0])
        torch.testing.assert_close(local_loss(maps, mask, weights), loop_over_layers(maps, mask, weights),
                                   atol=1e-6, rtol=1e-6)
        # One layer, as a stack of one or alone: the same.
        torch.testing.assert_close(local_loss(maps[:1], mask, weights), local_loss(maps[0], mask, weights),
                                   atol=1e-6, rtol=1e-6)

    @pytest.mark.parametrize("per_layer_features", [True, False])
    def test_losses_and_prompt_gradients_equal_the_loop(self, per_layer_features: bool) -> None:
        torch.manual_seed(0)
        layers = {"per_layer_features": True, "feature_layers": (4, 8, 12)} if per_layer_features else {}
        # Unrounded deep prompts: fp16 rounding of their gradients would turn float32 rounding into fp16 steps.
        model = GlocalCLIP(**TINY, **layers, round_deep_prompts_to_fp16=False)
        global_features, patch_features, labels, masks = batch_of(model, 4)
        features = model.model.normalize_features(global_features, patch_features)
        assert features.patch_features.shape[0] == (3 if per_layer_features else 1)
        text = model.model.encode_text()
        maps = model.model.probability_maps(features.patch_features, text, (64, 64)).detach().requires_grad_()
        weights = torch.tensor([1.0, 1.0, 0.0, 1.0])  # the anomalous image without mask teaches no pixel

        # The batched loss and its gradient with respect to the maps: equal up to float32 rounding.
        fused = local_loss(maps, masks.float(), weights)
        (fused_map_gradient,) = torch.autograd.grad(fused, maps)
        expected = loop_over_layers(maps, masks.float(), weights)
        (expected_map_gradient,) = torch.autograd.grad(expected, maps)
        torch.testing.assert_close(fused, expected, atol=1e-6, rtol=1e-6)
        scale = float(expected_map_gradient.abs().max())  # about 1 / (B H W): an absolute 1e-6 would say nothing
        torch.testing.assert_close(fused_map_gradient, expected_map_gradient, atol=1e-6 * scale, rtol=1e-6)

        # Through the model (scoring, upsampling, text tower) to the prompts.
        loss = model.compute_losses(features, labels, masks)["loss_local"]
        loss.backward()
        fused_gradients = prompt_gradients(model)
        model.model.prompt_learner.zero_grad()
        text = model.model.encode_text()
        maps = model.model.probability_maps(features.patch_features, text, (64, 64))
        expected = features.layer_weight * loop_over_layers(maps, masks.float(), weights)
        expected.backward()
        torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)
        for got, want in zip(fused_gradients, prompt_gradients(model), strict=True):
            # The map gradients differ in their last bits (the terms are added in another order); the text tower's
            # backward sums thousands of them per entry: up to 2e-6 of the gradient's scale seen, 1e-5 allowed.
            torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=1e-6)

    def test_all_layers_are_upsampled_in_one_call(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls = []
        interpolate = F.interpolate

        def counting_interpolate(*args, **kwargs) -> torch.Tensor:
            calls.append(args[0].shape)
            return interpolate(*args, **kwargs)

        torch.manual_seed(0)
        model = GlocalCLIP(**TINY, per_layer_features=True, feature_layers=(4, 8, 12))
        global_features, patch_features, labels, masks = batch_of(model, 2)
        monkeypatch.setattr(anomaly_map.F, "interpolate", counting_interpolate)
        cached_batch_losses(model.model, global_features, patch_features, labels, masks, 1.0, 0.0)
        assert calls == [(3 * 2, 2, 8, 8)]  # K * B maps of 2 states on the 8 x 8 patch grid


class TestCompiledCachedStep:
    def test_compiled_equals_eager_over_two_steps(self) -> None:
        models = []
        for _ in range(2):
            torch.manual_seed(0)
            # Unrounded deep prompts: fp16 rounding of their gradients would turn float32 rounding into fp16 steps.
            models.append(GlocalCLIP(**TINY, per_layer_features=True, feature_layers=(6, 12),
                                     round_deep_prompts_to_fp16=False))
        eager, compiled = models
        optimizers = [torch.optim.Adam(model.model.prompt_learner.parameters(), lr=1e-2) for model in models]
        for step in range(2):
            batch = batch_of(eager, 4, seed=step)
            expected = cached_batch_losses(eager.model, *batch, 1.0, 0.0)
            got = run_compiled_cached_losses(compiled.model, *batch, 1.0, 0.0, backend="aot_eager")
            for optimizer, losses in zip(optimizers, (expected, got), strict=True):
                optimizer.zero_grad()
                losses["loss"].backward()
            for name in training_step.LOSS_NAMES:
                torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5, msg=name)
            for a, b in zip(prompt_gradients(compiled), prompt_gradients(eager), strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
            for optimizer in optimizers:
                optimizer.step()

    def test_one_graph_per_batch_size(self) -> None:
        graphs = []

        def counting_backend(graph: torch.fx.GraphModule, example_inputs: list) -> object:
            del example_inputs
            graphs.append(graph)
            return graph.forward

        torch.manual_seed(0)
        model = GlocalCLIP(**TINY)
        for size in (4, 4, 2, 4):  # a smaller last batch compiles once more, then both are reused
            run_compiled_cached_losses(model.model, *batch_of(model, size), 1.0, 0.0, backend=counting_backend)
        assert len(graphs) == 2
        # The whole step is in the graph: the text tower's blocks and the upsampling of the maps.
        targets = {str(node.target) for node in graphs[0].graph.nodes}
        assert any("interpolate" in target or "upsample" in target for target in targets), targets

    def test_compile_failure_names_the_argument(self) -> None:
        def broken_backend(graph: torch.fx.GraphModule, example_inputs: list) -> object:
            msg = "no C++ compiler here"
            raise RuntimeError(msg)

        torch.manual_seed(0)
        model = GlocalCLIP(**TINY)
        with pytest.raises(CompiledStepError, match=r"no C\+\+ compiler here.*compile=False.*--model.compile false"):
            run_compiled_cached_losses(model.model, *batch_of(model, 2), 1.0, 0.0, backend=broken_backend)

    def test_recompile_limit_falls_back_to_the_eager_step(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        (limit_hit,) = compat.recompile_limit_errors()

        def at_the_limit(*args, **kwargs) -> dict[str, torch.Tensor]:
            msg = "recompile limit reached"
            raise limit_hit(msg)

        monkeypatch.setattr(training_step, "compiled_cached_batch_losses", lambda *_: at_the_limit)
        torch.manual_seed(0)
        model = GlocalCLIP(**TINY)
        batch = batch_of(model, 2)
        got = run_compiled_cached_losses(model.model, *batch, 1.0, 0.0)
        expected = cached_batch_losses(model.model, *batch, 1.0, 0.0)
        for name in training_step.LOSS_NAMES:
            torch.testing.assert_close(got[name], expected[name], atol=0, rtol=0)
        assert "computing it eagerly" in caplog.text

    @pytest.mark.slow
    def test_inductor_equals_eager(self) -> None:
        torch.manual_seed(0)
        # fp16-rounded deep prompts would turn float rounding differences into fp16 steps of the gradients.
        model = GlocalCLIP(**TINY, round_deep_prompts_to_fp16=False)
        batch = batch_of(model, 2)
        expected = cached_batch_losses(model.model, *batch, 1.0, 0.0)
        expected["loss"].backward()
        want = prompt_gradients(model)
        model.model.prompt_learner.zero_grad()
        got = run_compiled_cached_losses(model.model, *batch, 1.0, 0.0, backend="inductor")
        got["loss"].backward()
        for name in training_step.LOSS_NAMES:
            torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5, msg=name)
        for a, b in zip(prompt_gradients(model), want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_fit_with_compile_takes_the_compiled_step_and_learns_the_same(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    visa = generate_visa(tmp_path / "visa", categories=("candle", "pcb1"), seed=0)
    # The vision pass of the caching pass stays eager here (its compilation is the backbone's, tested there).
    monkeypatch.setattr(clip_backbone, "compiled_vision_forward", lambda *_: dual_stream_forward)
    compiled_calls = []

    def spy(*args, **kwargs) -> dict[str, torch.Tensor]:
        compiled_calls.append(kwargs["backend"])
        return run_compiled_cached_losses(*args, **kwargs)

    monkeypatch.setattr(lightning_model, "run_compiled_cached_losses", spy)

    def fit(compile_step: bool) -> tuple[GlocalCLIP, StepRecorder]:
        seed_everything(5)
        model = GlocalCLIP(**TINY, compile=compile_step)
        model.compile_backend = "aot_eager"
        recorder = StepRecorder()
        datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(visa)), train_batch_size=4,
                                       num_workers=0)
        engine = Engine(default_root_dir=tmp_path / str(compile_step), accelerator="cpu", max_epochs=2, logger=False,
                        callbacks=[recorder], enable_progress_bar=False, enable_model_summary=False)
        engine.fit(model, datamodule=datamodule)
        return model, recorder

    compiled, compiled_steps = fit(compile_step=True)
    assert compiled_calls == ["aot_eager"] * 6  # 2 epochs of 10 images in batches of 4
    eager, eager_steps = fit(compile_step=False)
    assert len(compiled_calls) == 6
    assert all(compiled_steps.cached)
    torch.testing.assert_close(torch.tensor(compiled_steps.losses), torch.tensor(eager_steps.losses),
                               atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(compiled.model.prompt_learner.state_dict().items(),
                            eager.model.prompt_learner.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)
