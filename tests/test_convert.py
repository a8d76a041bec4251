"""Upstream original-LLaVA checkpoints (full shards; LoRA + non_lora_trainables.bin) convert with equal logits.

The upstream checkpoints are written here by hand with upstream's key names and config fields (as
haotian-liu/LLaVA saves `LlavaLlamaForCausalLM`), from a tiny SVIT-LLaVA whose logits are the reference.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, CLIPImageProcessorPil, LlamaForCausalLM

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_model.convert import convert_upstream_checkpoint, upstream_key_to_ours
from svit_model.tiny import build_tiny_svit_llava

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def upstream_config(model, vision_tower: str) -> dict:
    """config.json as upstream writes it for LLaVA-1.5 (llava-v1.5-7b's fields, tiny sizes)."""
    text = model.config.text_config
    return {
        "_name_or_path": "./checkpoints/vicuna-7b-v1-5",
        "architectures": ["LlavaLlamaForCausalLM"],
        "bos_token_id": text.bos_token_id,
        "eos_token_id": text.eos_token_id,
        "freeze_mm_mlp_adapter": False,
        "freeze_mm_vision_resampler": False,
        "hidden_act": "silu",
        "hidden_size": text.hidden_size,
        "image_aspect_ratio": "pad",
        "initializer_range": 0.02,
        "intermediate_size": text.intermediate_size,
        "max_length": 4096,
        "max_position_embeddings": text.max_position_embeddings,
        "mm_hidden_size": model.config.vision_config.hidden_size,
        "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2,
        "mm_vision_tower": vision_tower,
        "model_type": "llava",
        "num_attention_heads": text.num_attention_heads,
        "num_hidden_layers": text.num_hidden_layers,
        "num_key_value_heads": text.num_key_value_heads,
        "pad_token_id": text.pad_token_id,
        "pretraining_tp": 1,
        "rms_norm_eps": text.rms_norm_eps,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.31.0",
        "tune_mm_mlp_adapter": False,
        "tune_mm_vision_resampler": False,
        "unfreeze_mm_vision_tower": False,
        "use_cache": True,
        "use_mm_proj": True,
        "vocab_size": text.vocab_size,
    }


def llm_state(model) -> dict[str, torch.Tensor]:
    """The LLM's weights under Llama's (and upstream's) names."""
    state = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
    state["lm_head.weight"] = model.lm_head.weight
    return state


def projector_state(model, prefix: str = "model.mm_projector.") -> dict[str, torch.Tensor]:
    projector = model.model.multi_modal_projector
    return {
        f"{prefix}0.weight": projector.linear_1.weight,
        f"{prefix}0.bias": projector.linear_1.bias,
        f"{prefix}2.weight": projector.linear_2.weight,
        f"{prefix}2.bias": projector.linear_2.bias,
    }


def _inputs(processor):
    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": "<image>\nWhere is the ball? Answer with a bounding box."}],
            add_generation_prompt=True,
        ),
        processor.apply_chat_template(
            [{"role": "user", "content": "<image>\nDescribe it."}], add_generation_prompt=True
        ),
    ]
    images = [Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (30, 60), (20, 90, 200))]
    return processor(images=images, text=texts, padding=True, add_special_tokens=False, return_tensors="pt")


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.fixture(scope="module")
def original():
    return build_tiny_svit_llava(seed=5)


@pytest.fixture(scope="module")
def clip_dir(original, tmp_path_factory):
    """The vision tower as its own CLIP checkpoint (upstream's `mm_vision_tower`)."""
    model, _ = original
    folder = tmp_path_factory.mktemp("clip")
    model.model.vision_tower.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}).save_pretrained(
        folder
    )
    return folder


@pytest.mark.parametrize("tower_in_shards", [False, True], ids=["tower-from-clip", "tower-in-shards"])
def test_full_checkpoint_converts_with_equal_logits(original, clip_dir, tmp_path, tower_in_shards):
    model, processor = original
    upstream = tmp_path / "llava-v1.5-tiny"
    upstream.mkdir()
    state = {**llm_state(model), **projector_state(model)}
    # What transformers 4.31 also saved, and current Llama recomputes.
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    if tower_in_shards:
        tower = model.model.vision_tower.state_dict()
        state.update({f"model.vision_tower.vision_tower.{k}": v for k, v in tower.items()})
    keys = sorted(state)
    shards = {
        "pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
        "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2 :],
    }
    for name, shard_keys in shards.items():
        torch.save({k: state[k].clone() for k in shard_keys}, upstream / name)
    weight_map = {k: name for name, shard_keys in shards.items() for k in shard_keys}
    (upstream / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    # A tower named in the config that cannot be reached would fail: the path is local.
    (upstream / "config.json").write_text(json.dumps(upstream_config(model, str(clip_dir))))
    processor.tokenizer.save_pretrained(upstream)

    convert_upstream_checkpoint(upstream, tmp_path / "converted")
    converted = AutoModelForImageTextToText.from_pretrained(tmp_path / "converted").eval()
    converted_processor = AutoProcessor.from_pretrained(tmp_path / "converted")
    assert converted_processor.pads_images
    inputs = _inputs(processor)
    assert all(torch.equal(inputs[k], _inputs(converted_processor)[k]) for k in inputs)
    assert torch.equal(_logits(converted, inputs), _logits(model, inputs))

    # `svit model convert` replaces an existing --output only with --overwrite.
    from svit_cli.main import main

    argv = ["model", "convert", "--input", str(upstream), "--output", str(tmp_path / "converted")]
    assert main(argv) == 2
    assert main([*argv, "--overwrite"]) == 0
    reconverted = AutoModelForImageTextToText.from_pretrained(tmp_path / "converted").eval()
    assert torch.equal(_logits(reconverted, inputs), _logits(model, inputs))
    assert not list(tmp_path.glob(".converted*"))


def test_lora_checkpoint_converts_with_equal_logits(original, clip_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, processor = original
    # The base LLM (upstream's --model-base, e.g. vicuna-7b-v1.5).
    base = tmp_path / "vicuna-tiny"
    llm = LlamaForCausalLM(model.config.text_config)
    llm.load_state_dict(llm_state(model))
    llm.save_pretrained(base)
    processor.tokenizer.save_pretrained(base)

    # The LoRA run's output folder: adapter, non_lora_trainables.bin (projector), config.json.
    run = tmp_path / "llava-v1.5-tiny-lora"
    peft_model = get_peft_model(
        LlamaForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"),
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: give the adapter an effect
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    peft_model.save_pretrained(run, safe_serialization=False)  # adapter_model.bin, as upstream's peft wrote
    assert (run / "adapter_model.bin").is_file()
    trained = copy.deepcopy(model)
    with torch.no_grad():
        for param in trained.model.multi_modal_projector.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    torch.save(
        {k: v.clone() for k, v in projector_state(trained, "base_model.model.model.mm_projector.").items()},
        run / "non_lora_trainables.bin",
    )
    (run / "config.json").write_text(json.dumps(upstream_config(model, str(clip_dir))))

    # The reference: the merged weights computed by hand, W + (alpha / r) * B @ A.
    lora = {name: param for name, param in peft_model.named_parameters() if "lora_" in name}
    with torch.no_grad():
        for name, module in trained.model.language_model.named_modules():
            if name.rsplit(".", 1)[-1] in LORA_TARGETS:
                prefix = f"base_model.model.model.{name}"
                a, b = lora[f"{prefix}.lora_A.default.weight"], lora[f"{prefix}.lora_B.default.weight"]
                module.weight.add_((8 / 4) * b @ a)

    convert_upstream_checkpoint(run, tmp_path / "converted", vision_tower=clip_dir)
    converted = AutoModelForImageTextToText.from_pretrained(tmp_path / "converted").eval()
    inputs = _inputs(processor)
    expected = _logits(trained, inputs)
    assert not torch.allclose(expected, _logits(model, inputs), atol=1e-3)  # the adapter and projector matter
    assert torch.allclose(_logits(converted, inputs), expected, atol=1e-5)

    (run / "non_lora_trainables.bin").unlink()
    with pytest.raises(SvitInputError, match="non_lora_trainables.bin"):
        convert_upstream_checkpoint(run, vision_tower=clip_dir)


def test_unsupported_architecture_is_refused(original, clip_dir, tmp_path):
    model, _ = original
    config = upstream_config(model, str(clip_dir))
    config["mm_projector_type"] = "linear"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(SvitFormatError, match="mm_projector_type"):
        convert_upstream_checkpoint(tmp_path)
    with pytest.raises(SvitInputError, match="config.json"):
        convert_upstream_checkpoint(tmp_path / "missing")


def test_upstream_key_names():
    assert (
        upstream_key_to_ours("model.mm_projector.0.weight") == "model.multi_modal_projector.linear_1.weight"
    )
    assert upstream_key_to_ours("model.mm_projector.2.bias") == "model.multi_modal_projector.linear_2.bias"
    assert (
        upstream_key_to_ours("model.vision_tower.vision_tower.vision_model.embeddings.class_embedding")
        == "model.vision_tower.vision_model.embeddings.class_embedding"
    )
    assert (
        upstream_key_to_ours("model.layers.3.mlp.up_proj.weight")
        == "model.language_model.layers.3.mlp.up_proj.weight"
    )
    assert upstream_key_to_ours("lm_head.weight") == "lm_head.weight"
    with pytest.raises(SvitFormatError):
        upstream_key_to_ours("vision_tower.weird")
