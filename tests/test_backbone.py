"""The shared CLIP backbone: V-V and deep-prompt hooks against explicit maths, loading, checkpoint hygiene."""

from __future__ import annotations

import json
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

from anomalib_glocalclip.backbone import (
    CLIPBackbone,
    WeightsMismatchError,
    WeightsNotFoundError,
    build_clip,
    dual_attention,
    dual_stream_forward,
    read_state_dict,
    resize_positional_embedding,
    text_tower,
)
from anomalib_glocalclip.backbone.text_prompts import encode_token_embeddings
from anomalib_glocalclip.backbone.vv_attention import residual_block


def explicit_attention(z: torch.Tensor, attn: torch.nn.MultiheadAttention, vv: bool) -> torch.Tensor:
    """Multi-head attention written out with matrix products, one head at a time (``z``: ``[L, D]``)."""
    width = z.shape[-1]
    heads = attn.num_heads
    head_dim = width // heads
    w_q, w_k, w_v = attn.in_proj_weight.split(width)
    b_q, b_k, b_v = attn.in_proj_bias.split(width)
    q, k, v = z @ w_q.T + b_q, z @ w_k.T + b_k, z @ w_v.T + b_v
    outputs = []
    for h in range(heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        query, key, value = (v, v, v) if vv else (q, k, v)
        scores = query[:, cols] @ key[:, cols].T / math.sqrt(head_dim)
        outputs.append(torch.softmax(scores, dim=-1) @ value[:, cols])
    return torch.cat(outputs, dim=-1) @ attn.out_proj.weight.T + attn.out_proj.bias


def explicit_streams(
    visual: torch.nn.Module, image: torch.Tensor, start: int, layers: list[int]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Both streams of one image from the definition (glocalclip.md section 2), with no product code.

    The original stream is vanilla CLIP: ``h' = h + O_ori(LN1(h))``, ``h = h' + MLP(LN2(h'))``. The V-V stream
    starts as ``h^{start-1}`` (``ln_pre`` of the patch embedding for ``start = 1``) and only adds
    ``O_vv(LN1(h_ori))``: no MLP, no LayerNorm of its own. Returns the CLS token after the last block and,
    per requested layer, the V-V stream after it (the one shared stream for a layer before ``start``).
    """
    x = visual.conv1(image[None]).flatten(2).transpose(1, 2)[0]
    x = torch.cat([visual.class_embedding[None], x]) + visual.positional_embedding
    hidden = visual.ln_pre(x)
    vv, collected = None, {}
    for index, block in enumerate(visual.transformer.resblocks, start=1):
        z = block.ln_1(hidden)
        if index == start:
            vv = hidden.clone()
        if index >= start:
            vv = vv + explicit_attention(z, block.attn, vv=True)
        hidden = hidden + explicit_attention(z, block.attn, vv=False)
        hidden = hidden + block.mlp(block.ln_2(hidden))
        collected[index] = hidden if vv is None else vv
    return hidden[0], [collected[layer] for layer in layers]


class TestBatchFirstBlocks:
    def test_residual_block_equals_open_clip_block(self, tiny_backbone: CLIPBackbone) -> None:
        block = tiny_backbone.clip.visual.transformer.resblocks[5]
        hidden = torch.randn(3, 65, block.attn.embed_dim, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            ours = residual_block(block, hidden)
            theirs = block(hidden.transpose(0, 1)).transpose(0, 1)  # open_clip: [L, B, D], nn.MultiheadAttention
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize(("start", "layers"), [(6, [6, 12, 24]), (1, [3]), (10, [2, 10]), (25, [])])
    def test_forward_equals_explicit_maths(
        self, tiny_backbone: CLIPBackbone, images: torch.Tensor, start: int, layers: list[int]
    ) -> None:
        with torch.no_grad():
            ours = dual_stream_forward(tiny_backbone.clip.visual, images, start, layers)
            assert len(ours.vv_tokens) == len(layers)
            for i in range(len(images)):
                class_token, tokens = explicit_streams(tiny_backbone.clip.visual, images[i], start, layers)
                torch.testing.assert_close(ours.class_token[i], class_token, atol=1e-4, rtol=1e-4)
                for a, b in zip(ours.vv_tokens, tokens, strict=True):
                    torch.testing.assert_close(a[i], b, atol=1e-4, rtol=1e-4)

    def test_no_multihead_attention_module_is_called(self, tiny_backbone: CLIPBackbone, images: torch.Tensor) -> None:
        calls = []
        hooks = [
            block.attn.register_forward_hook(lambda *_: calls.append(1))
            for block in tiny_backbone.clip.visual.transformer.resblocks
        ]
        try:
            with torch.no_grad():
                tiny_backbone.encode_image(images, vv_start_layer=6, out_layers=[12])
        finally:
            for hook in hooks:
                hook.remove()
        assert calls == []  # every block ran batch first on the weights, not through nn.MultiheadAttention

    def test_bf16_matmuls_and_streams(self, tiny_config, images: torch.Tensor) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        matmuls = {"addmm", "mm", "bmm", "linear", "convolution", "_scaled_dot_product_flash_attention_for_cpu",
                   "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention", "baddbmm",
                   "add", "cat"}  # and the residual streams

        class Recorder(TorchDispatchMode):
            def __init__(self) -> None:
                super().__init__()
                self.dtypes: dict[str, set] = {}

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                name = func.overloadpacket.__name__
                if name in matmuls:
                    first = out[0] if isinstance(out, tuple) else out
                    self.dtypes.setdefault(name, set()).add(first.dtype)
                return out

        backbone = CLIPBackbone(tiny_config, pretrained=None, precision="bf16")
        recorder = Recorder()
        with torch.no_grad(), recorder:
            output = backbone.encode_image(images, vv_start_layer=6, out_layers=[6, 24])
        assert recorder.dtypes, "no matrix product recorded"
        assert all(dtypes == {torch.bfloat16} for dtypes in recorder.dtypes.values()), recorder.dtypes
        assert output.class_token.dtype == torch.bfloat16
        assert {t.dtype for t in output.vv_tokens} == {torch.bfloat16}


class TestCompile:
    def test_compiled_vision_pass_equals_eager(
        self, tiny_config, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from anomalib_glocalclip.backbone import clip_backbone

        real_compile, calls = torch.compile, []

        def eager_compile(function, **kwargs):  # dynamo without compiling C++ (fast, toolchain-free)
            calls.append(kwargs)
            return real_compile(function, backend="eager", dynamic=kwargs.get("dynamic"))

        monkeypatch.setattr(torch, "compile", eager_compile)
        clip_backbone.compiled_vision_forward.cache_clear()
        try:
            plain = CLIPBackbone(tiny_config, pretrained=None)
            compiled = CLIPBackbone(tiny_config, pretrained=None, compile=True, cuda_graphs=True)
            with torch.no_grad():
                expected = plain.encode_image(images, vv_start_layer=6, out_layers=[6, 12])
                output = compiled.encode_image(images, vv_start_layer=6, out_layers=[6, 12])
        finally:
            clip_backbone.compiled_vision_forward.cache_clear()
        assert calls == [{"dynamic": False, "mode": None}]  # CUDA graphs only on CUDA devices
        torch.testing.assert_close(output.class_token, expected.class_token, atol=1e-5, rtol=1e-5)
        for a, b in zip(output.vv_tokens, expected.vv_tokens, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert callable(compiled.compile)  # nn.Module.compile is not shadowed by the option


class TestVVAttention:
    def test_dual_attention_equals_explicit_products(self, tiny_backbone: CLIPBackbone) -> None:
        block = tiny_backbone.clip.visual.transformer.resblocks[3]
        z = torch.randn(2, 9, block.attn.embed_dim, generator=torch.Generator().manual_seed(1))
        original, vv = dual_attention(z, block.attn)
        for i in range(2):
            expected_original = explicit_attention(z[i], block.attn, vv=False)
            torch.testing.assert_close(original[i], expected_original, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(vv[i], explicit_attention(z[i], block.attn, vv=True), atol=1e-5, rtol=1e-5)

    def test_original_stream_equals_vanilla_open_clip(self, tiny_backbone: CLIPBackbone, images: torch.Tensor) -> None:
        visual = tiny_backbone.clip.visual
        with torch.no_grad():
            vanilla = tiny_backbone.clip.encode_image(images)
            output = tiny_backbone.encode_image(images, vv_start_layer=6, out_layers=[6, 12, 24])
            ours = tiny_backbone.project(output.class_token)
        torch.testing.assert_close(ours, vanilla, atol=1e-5, rtol=1e-5)
        assert [t.shape for t in output.vv_tokens] == [(2, 1 + 8 * 8, visual.transformer.width)] * 3

    @pytest.mark.parametrize(("start", "layer"), [(6, 6), (6, 24), (1, 12), (20, 21)])
    def test_vv_stream_equals_explicit_maths(
        self, tiny_backbone: CLIPBackbone, images: torch.Tensor, start: int, layer: int
    ) -> None:
        with torch.no_grad():
            output = tiny_backbone.encode_image(images, vv_start_layer=start, out_layers=[layer])
            for i in range(len(images)):
                expected = explicit_streams(tiny_backbone.clip.visual, images[i], start, [layer])[1][0]
                torch.testing.assert_close(output.vv_tokens[0][i], expected, atol=1e-4, rtol=1e-4)

    def test_layers_are_distinct_and_not_aliased(self, tiny_backbone: CLIPBackbone, images: torch.Tensor) -> None:
        # The reference stores the stream without copying it, so all its layers equal the last one.
        with torch.no_grad():
            tokens = tiny_backbone.encode_image(images, vv_start_layer=6, out_layers=[6, 12, 24]).vv_tokens
            alone = tiny_backbone.encode_image(images, vv_start_layer=6, out_layers=[6]).vv_tokens[0]
        assert not torch.allclose(tokens[0], tokens[2])
        torch.testing.assert_close(tokens[0], alone)

    def test_hooks_off_is_plain_open_clip(self, tiny_backbone: CLIPBackbone, images: torch.Tensor) -> None:
        visual = tiny_backbone.clip.visual
        blocks_before = [type(block) for block in visual.transformer.resblocks]
        with torch.no_grad():
            before = tiny_backbone.clip.encode_image(images)
            off = tiny_backbone.encode_image(images, vv_start_layer=visual.transformer.layers + 1, out_layers=[])
            tiny_backbone.encode_image(images, vv_start_layer=1, out_layers=[24])
            after = tiny_backbone.clip.encode_image(images)
        torch.testing.assert_close(tiny_backbone.project(off.class_token), before, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after, before)  # nothing patched or left behind in open_clip's modules
        assert [type(block) for block in visual.transformer.resblocks] == blocks_before
        assert not any(block._forward_hooks or block._forward_pre_hooks for block in visual.transformer.resblocks)

    def test_layer_outside_tower_is_an_error(self, tiny_backbone: CLIPBackbone, images: torch.Tensor) -> None:
        with pytest.raises(ValueError, match=r"outside 1..24"):
            tiny_backbone.encode_image(images, vv_start_layer=6, out_layers=[25])


class TestTextTower:
    def test_plain_encoding_equals_open_clip(self, tiny_backbone: CLIPBackbone) -> None:
        tokens = tiny_backbone.tokenize(["a photo of a damaged bottle.", "object."])
        with torch.no_grad():
            torch.testing.assert_close(tiny_backbone.encode_text(tokens), tiny_backbone.clip.encode_text(tokens))

    def test_deep_prompts_overwrite_positions_1_to_t_at_layers_2_to_depth(self, tiny_backbone: CLIPBackbone) -> None:
        tower = text_tower(tiny_backbone.clip)
        tokens = tiny_backbone.tokenize(["x x x x x object.", "x x x x x x x damaged object."])
        embeddings = tower.token_embedding(tokens)
        generator = torch.Generator().manual_seed(3)
        deep = [torch.randn(3, embeddings.shape[-1], generator=generator) for _ in range(4)]
        with torch.no_grad():
            ours = encode_token_embeddings(tower, embeddings, tokens.argmax(-1), deep_prompts=deep)
            # By hand: layer by layer, in-place replacement before layers 2..5.
            x = (embeddings + tower.positional_embedding).transpose(0, 1).clone()
            for index, block in enumerate(tower.transformer.resblocks):
                if 1 <= index <= len(deep):
                    x[1:4] = deep[index - 1][:, None, :]
                x = block(x, attn_mask=tower.attn_mask)
            x = tower.ln_final(x.transpose(0, 1))
            expected = x[torch.arange(2), tokens.argmax(-1)] @ tower.text_projection
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)

    def test_deep_prompts_change_the_features(self, tiny_backbone: CLIPBackbone) -> None:
        tower = text_tower(tiny_backbone.clip)
        tokens = tiny_backbone.tokenize(["x x x x object."])
        embeddings = tower.token_embedding(tokens)
        deep = [torch.ones(2, embeddings.shape[-1])]
        with torch.no_grad():
            plain = encode_token_embeddings(tower, embeddings, tokens.argmax(-1))
            prompted = encode_token_embeddings(tower, embeddings, tokens.argmax(-1), deep_prompts=deep)
        assert not torch.allclose(plain, prompted)

    def test_fp16_rounding_of_deep_prompts(self, tiny_backbone: CLIPBackbone) -> None:
        tower = text_tower(tiny_backbone.clip)
        tokens = tiny_backbone.tokenize(["x x x x object."])
        embeddings = tower.token_embedding(tokens)
        deep = [torch.full((2, embeddings.shape[-1]), 0.1000061)]  # not representable in fp16
        rounded = [deep[0].half().float()]
        with torch.no_grad():
            a = encode_token_embeddings(tower, embeddings, tokens.argmax(-1), deep, round_deep_prompts_to_fp16=True)
            b = encode_token_embeddings(tower, embeddings, tokens.argmax(-1), rounded)
        torch.testing.assert_close(a, b, atol=0, rtol=0)


    def test_fp16_deep_prompt_gradient_is_the_sum_of_rounded_per_prompt_gradients(
        self, tiny_backbone: CLIPBackbone
    ) -> None:
        tower = text_tower(tiny_backbone.clip)
        tokens = tiny_backbone.tokenize(["x x x x object.", "x x x damaged object.", "x x x x x flawless object."])
        embeddings = tower.token_embedding(tokens).detach()
        generator = torch.Generator().manual_seed(5)
        deep = torch.randn(3, embeddings.shape[-1], generator=generator).requires_grad_()
        inputs = []  # the hidden state entering layer 2, whose positions 1..3 hold the deep prompt of each prompt
        hook = tower.transformer.resblocks[1].register_forward_pre_hook(
            lambda _, args: inputs.append(args[0].requires_grad_().retain_grad() or args[0])
        )
        try:
            features = encode_token_embeddings(tower, embeddings, tokens.argmax(-1), [deep],
                                               round_deep_prompts_to_fp16=True)
        finally:
            hook.remove()
        weights = torch.randn(features.shape, generator=generator) * 1000  # gradients well inside fp16's range
        (features * weights).sum().backward()
        per_prompt = inputs[0].grad[1:4]  # [t, P, D] fp32, each prompt's gradient
        expected = per_prompt.half().float().sum(dim=1)  # rounded per prompt, then summed (the reference)
        rounded_sum = per_prompt.sum(dim=1).half().float()  # summed, then rounded (the former order)
        assert not torch.allclose(expected, rounded_sum, rtol=1e-6, atol=0)  # the two orders differ here
        torch.testing.assert_close(deep.grad, expected, rtol=1e-6, atol=1e-9)


class TestLoading:
    def test_random_backbone_is_reproducible(self, tiny_config) -> None:
        first = build_clip(tiny_config, pretrained=None)
        torch.manual_seed(123)
        second = build_clip(tiny_config, pretrained=None)
        for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
            assert torch.equal(a, b), name

    @pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".jit.pt"])
    def test_local_weight_files(self, tiny_config, tmp_path, suffix: str) -> None:
        torch.manual_seed(7)
        source = open_clip.CLIP(**__import__("json").loads(tiny_config.read_text()))
        path = tmp_path / f"weights{suffix}"
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
        elif suffix == ".jit.pt":
            torch.jit.save(torch.jit.script(source), str(path))  # OpenAI ships TorchScript archives
        else:
            torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
        loaded = build_clip(tiny_config, pretrained=path)
        for name, value in source.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)

    def test_torchscript_archive_implies_quick_gelu(self, tiny_config, tmp_path) -> None:
        source = open_clip.CLIP(**__import__("json").loads(tiny_config.read_text()))
        path = tmp_path / "ViT-tiny.pt"
        torch.jit.save(torch.jit.script(source), str(path))
        loaded = build_clip(tiny_config, pretrained=path)
        assert isinstance(loaded.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
        assert not isinstance(build_clip(tiny_config, None).visual.transformer.resblocks[0].mlp.gelu,
                              open_clip.transformer.QuickGELU)

    @pytest.mark.parametrize("trait", ["partial_fp16", "scalars"])
    def test_openai_layout_state_dict_implies_quick_gelu(self, tiny_config, tmp_path, trait: str) -> None:
        config = json.loads(tiny_config.read_text())
        source = open_clip.CLIP(**config, quick_gelu=True)
        if trait == "partial_fp16":  # what OpenAI's model.state_dict() holds: fp16 weights, fp32 LayerNorms
            open_clip.model.convert_weights_to_fp16(source)
            state_dict = source.state_dict()
            assert state_dict["visual.ln_pre.weight"].dtype == torch.float32
        else:  # what OpenAI's TorchScript archive's state_dict() holds besides the weights
            state_dict = {**source.state_dict(), "input_resolution": torch.tensor(64),
                          "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
        path = tmp_path / "openai_layout.pt"
        torch.save(state_dict, path)
        loaded = build_clip(tiny_config, pretrained=path)
        assert isinstance(loaded.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
        assert isinstance(loaded.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
        images = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            source.float()
            torch.testing.assert_close(loaded.encode_image(images), source.encode_image(images))
        # An explicit choice wins over the weights: the argument, or the config's own key.
        assert not isinstance(build_clip(tiny_config, pretrained=path, quick_gelu=False)
                              .visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
        explicit = tmp_path / "tiny-gelu.json"
        explicit.write_text(json.dumps({**config, "quick_gelu": False}))
        assert not isinstance(build_clip(explicit, pretrained=path).visual.transformer.resblocks[0].mlp.gelu,
                              open_clip.transformer.QuickGELU)

    def test_open_clip_state_dict_keeps_gelu(self, tiny_config, tmp_path) -> None:
        path = tmp_path / "open_clip.pt"
        torch.save(build_clip(tiny_config, pretrained=None).state_dict(), path)  # fp32, no OpenAI scalars
        loaded = build_clip(tiny_config, pretrained=path)
        assert not isinstance(loaded.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)

    def test_positional_embedding_resized_when_loading_at_another_size(self, tiny_config, tmp_path) -> None:
        source = build_clip(tiny_config, pretrained=None)
        path = tmp_path / "w.pt"
        torch.save(source.state_dict(), path)
        bigger = build_clip(tiny_config, pretrained=path, image_size=96)  # grid 8x8 -> 12x12
        old = source.visual.positional_embedding.detach()
        grid = old[1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)
        expected = F.interpolate(grid, size=(12, 12), mode="bilinear", align_corners=False)
        expected = torch.cat([old[:1], expected.permute(0, 2, 3, 1).reshape(144, -1)])
        torch.testing.assert_close(bigger.visual.positional_embedding.detach(), expected)
        assert bigger.visual.grid_size == (12, 12)
        with torch.no_grad():
            assert bigger.encode_image(torch.randn(1, 3, 96, 96)).shape == (1, 32)

    def test_resize_keeps_class_row_and_identity_size(self) -> None:
        table = torch.randn(1 + 16, 5)
        assert resize_positional_embedding(table, (4, 4)) is table
        resized = resize_positional_embedding(table, (6, 6))
        assert resized.shape == (37, 5)
        torch.testing.assert_close(resized[0], table[0])

    def test_missing_openai_weights_give_one_clear_message(self, tmp_path) -> None:
        with pytest.raises(WeightsNotFoundError) as error:
            build_clip("ViT-L-14-336", pretrained="openai", cache_dir=tmp_path)
        message = str(error.value)
        assert "ViT-L-14-336px.pt" in message  # the file expected
        assert str(tmp_path) in message  # the cache folder
        assert "--model.pretrained /path/to/ViT-L-14-336px.pt" in message  # how to pass a local file
        assert "urlopen" not in message
        assert "Traceback" not in message

    def test_missing_local_file_and_unknown_tag(self, tmp_path) -> None:
        with pytest.raises(WeightsNotFoundError, match="does not exist"):
            build_clip("ViT-L-14-336", pretrained=tmp_path / "nope.pt")
        with pytest.raises(WeightsNotFoundError, match="Unknown pretrained tag 'laion9000'"):
            build_clip("ViT-L-14-336", pretrained="laion9000")
        with pytest.raises(ValueError, match="Unknown CLIP model"):
            build_clip("ViT-Q-99", pretrained=None)

    def test_corrupt_weight_file(self, tiny_config, tmp_path) -> None:
        path = tmp_path / "broken.pt"
        path.write_bytes(b"not a checkpoint")
        with pytest.raises(WeightsNotFoundError, match=r"Could not read CLIP weights from .*broken\.pt"):
            read_state_dict(path)

    def test_weights_of_another_architecture(self, tiny_config, tmp_path) -> None:
        path = tmp_path / "other.pt"
        torch.save({"visual.conv1.weight": torch.zeros(1)}, path)
        with pytest.raises(WeightsMismatchError, match=rf"{path.name} do not fit the model .*{tiny_config.name}"):
            build_clip(tiny_config, pretrained=path)

    def test_weights_with_missing_tensors(self, tiny_config, tmp_path) -> None:
        path = tmp_path / "partial.pt"
        torch.save({"logit_scale": torch.zeros(())}, path)
        with pytest.raises(WeightsMismatchError, match=r"partial\.pt do not fit the model .*missing"):
            build_clip(tiny_config, pretrained=path)


class TestCheckpointHygiene:
    def test_frozen_weights_stay_out_of_state_dict(self, tiny_config) -> None:
        backbone = CLIPBackbone(tiny_config, pretrained=None)
        assert backbone.state_dict() == {}
        assert len(backbone.state_dict(persist_all=True)) > 100
        holder = torch.nn.Module()
        holder.backbone = backbone
        holder.head = torch.nn.Linear(2, 2)
        assert set(holder.state_dict()) == {"head.weight", "head.bias"}
        before = backbone.clip.visual.proj.detach().clone()
        holder.load_state_dict({"head.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2)}, strict=True)
        torch.testing.assert_close(backbone.clip.visual.proj, before)

    def test_persist_weights_keeps_them(self, tiny_config) -> None:
        backbone = CLIPBackbone(tiny_config, pretrained=None, persist_weights=True)
        assert "clip.visual.proj" in backbone.state_dict()

    def test_backbone_is_frozen_and_stays_in_eval(self, tiny_config) -> None:
        backbone = CLIPBackbone(tiny_config, pretrained=None)
        backbone.train()
        assert not backbone.training
        assert not backbone.clip.training
        assert not any(p.requires_grad for p in backbone.parameters())
