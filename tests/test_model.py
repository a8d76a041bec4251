"""SVIT-LLaVA model: Auto classes, exact save/load, batched generation, remote code, plain-llava export, build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPImageProcessorPil,
    CLIPVisionModel,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
)

import svit_model
from svit_model import SvitLlavaConfig, SvitLlavaForConditionalGeneration, SvitLlavaModel, SvitLlavaProcessor
from svit_model.stock_llava import export_llava_checkpoint
from svit_model.tiny import build_tiny_svit_llava, tiny_text_config, tiny_vision_config

PROMPTS = [
    "<image>\nWhere is the red ball? Answer with a bounding box.",
    "<image>\nDescribe the image.",
]


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (30, 60), (10, 10, 200))]


def _inputs(processor, padding_side="right"):
    texts = [
        processor.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)
        for p in PROMPTS
    ]
    return processor(
        images=_images(),
        text=texts,
        padding=True,
        padding_side=padding_side,
        add_special_tokens=False,
        return_tensors="pt",
    )


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_svit_llava(seed=1)


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    model, processor = tiny
    folder = tmp_path_factory.mktemp("svit-llava")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


_LOAD_AND_SAVE = """
model = AutoModelForImageTextToText.from_pretrained(sys.argv[1])
processor = AutoProcessor.from_pretrained(sys.argv[1])
assert type(model).__name__ == "SvitLlavaForConditionalGeneration", type(model)
assert type(processor).__name__ == "SvitLlavaProcessor", type(processor)
model.save_pretrained(sys.argv[2])
auto_map = json.load(open(sys.argv[2] + "/config.json"))["auto_map"]
assert auto_map["AutoModelForImageTextToText"].endswith("SvitLlavaForConditionalGeneration"), auto_map
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "imports",
    [
        # the README's order; the package's names load on first use
        """
import svit_model
assert "torch" not in sys.modules and "transformers" not in sys.modules
assert {"SvitLlavaConfig", "SvitLlavaProcessor", "build"} <= set(dir(svit_model))
try:
    svit_model.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("an unknown name was found")
from transformers import AutoModelForImageTextToText, AutoProcessor
""",
        # a module of svit_model that imports transformers itself, then the Auto classes
        """
import svit_model.tiny
from transformers import AutoModelForImageTextToText, AutoProcessor
""",
    ],
    ids=["svit-first", "a-submodule-first"],
)
def test_import_svit_model_registers_the_auto_classes(saved, tmp_path, imports):
    """`import svit_model` loads no classes (and no torch) itself; the Auto classes still know `svit_llava` once
    transformers is imported, and a checkpoint saved afterwards names its code. (svit_model imported after
    transformers registers at once, as `test_auto_classes_with_the_package_imported` shows in this process.)"""
    script = "import json, sys\n" + imports + _LOAD_AND_SAVE
    result = subprocess.run(
        [sys.executable, "-c", script, str(saved), str(tmp_path / "again")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        svit_model.SvitLlavaConfig is SvitLlavaConfig and svit_model.build.__module__ == "svit_model.building"
    )


def test_auto_classes_with_the_package_imported(saved):
    assert type(AutoConfig.from_pretrained(saved)) is SvitLlavaConfig
    assert type(AutoModel.from_pretrained(saved)) is SvitLlavaModel
    assert type(AutoModelForImageTextToText.from_pretrained(saved)) is SvitLlavaForConditionalGeneration
    assert type(AutoProcessor.from_pretrained(saved)) is SvitLlavaProcessor
    config = json.loads((saved / "config.json").read_text())
    assert config["model_type"] == "svit_llava"
    assert (
        config["auto_map"]["AutoModelForImageTextToText"]
        == "modeling_svit_llava.SvitLlavaForConditionalGeneration"
    )
    processor_config = json.loads((saved / "processor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoProcessor": "processing_svit_llava.SvitLlavaProcessor"}
    for name in (
        "configuration_svit_llava.py",
        "modeling_svit_llava.py",
        "processing_svit_llava.py",
        "svit_boxes.py",
    ):
        assert (saved / name).is_file()


def test_save_load_round_trip_is_exact(tiny, saved, tmp_path):
    model, processor = tiny
    loaded = AutoModelForImageTextToText.from_pretrained(saved).eval()

    # The config comes back equal, except that loading records the sub-configs' dtype; from then on,
    # save and load are a fixed point, file for file.
    def comparable(config):
        fields = config.to_dict()
        fields.pop("_name_or_path")
        for sub in ("vision_config", "text_config"):
            assert fields[sub].pop("dtype") in (None, "float32")
        return fields

    assert comparable(loaded.config) == comparable(model.config)
    loaded.save_pretrained(tmp_path / "a")
    AutoModelForImageTextToText.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    inputs = _inputs(processor)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)


def test_batched_generation_with_left_padding(tiny):
    model, processor = tiny
    batch = _inputs(processor, padding_side="left")
    assert (batch["attention_mask"][:, 0] == 0).any(), "the prompts should differ in length"
    with torch.no_grad():
        together = model.generate(**batch, max_new_tokens=8, do_sample=False)
    prompt_length = batch["input_ids"].shape[1]
    for i, (prompt, image) in enumerate(zip(PROMPTS, _images(), strict=True)):
        text = processor.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True
        )
        single = processor(images=image, text=text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            alone = model.generate(**single, max_new_tokens=8, do_sample=False)
        assert together[i, prompt_length:].tolist() == alone[0, single["input_ids"].shape[1] :].tolist()


@pytest.mark.slow
def test_plain_llava_export_and_remote_code_load_without_svit(tiny, saved, tmp_path):
    """In a process where svit cannot be imported: our folder loads with trust_remote_code=True, the exported
    folder with stock LlavaForConditionalGeneration, used as llava-hf's cards use theirs; both give our logits
    exactly."""
    model, processor = tiny
    exported = export_llava_checkpoint(saved, tmp_path / "llava")
    assert json.loads((exported / "config.json").read_text())["model_type"] == "llava"
    assert not list(exported.glob("*.py"))

    with torch.no_grad():
        expected = model(**_inputs(processor)).logits
    script = textwrap.dedent(
        """
        import json
        import sys
        import torch
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration, LlavaProcessor
        try:
            import svit_model
        except ImportError:
            pass
        else:
            raise SystemExit("svit is importable: the test would prove nothing")
        ours, llava, out, prompts = sys.argv[1:]
        prompts = json.loads(prompts)
        images = [Image.new("RGB", (64, 48), (200, 10, 10)), Image.new("RGB", (30, 60), (10, 10, 200))]
        logits = {}
        for name, folder, remote in (("remote", ours, True), ("llava", llava, False)):
            processor = AutoProcessor.from_pretrained(folder, trust_remote_code=remote)
            model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=remote).eval()
            if not remote:
                assert type(model) is LlavaForConditionalGeneration and type(processor) is LlavaProcessor
            else:
                assert type(model).__name__ == "SvitLlavaForConditionalGeneration"
                assert type(processor).__name__ == "SvitLlavaProcessor"
                _, entities = processor.post_process_generation("<st>a<ed> [0.25, 0.5, 0.75, 0.75]", image_size=(200, 100))
                assert entities == [("a", (0, 1), [(50.0, 50.0, 150.0, 100.0)])], entities
            texts = [processor.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
            # ours writes <s> in its template; the llava export leaves it to the tokenizer, as llava-hf's checkpoints
            # (their cards: `processor(images=..., text=apply_chat_template(...))`): one <s> either way
            inputs = processor(images=images, text=texts, padding=True, add_special_tokens=not remote, return_tensors="pt")
            with torch.no_grad():
                logits[name] = model(**inputs).logits
        torch.save(logits, out)
        """
    )
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {
        **os.environ,
        "PYTHONPATH": site_packages,  # `-S` skips site: svit's editable-install hook never runs
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
    }
    out = tmp_path / "logits.pt"
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, str(saved), str(exported), str(out), json.dumps(PROMPTS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logits = torch.load(out)
    assert torch.equal(logits["remote"], expected)
    assert torch.equal(logits["llava"], expected)


def test_export_refuses_a_folder_without_a_checkpoint(tmp_path):
    from svit_dataset.errors import SvitInputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(SvitInputError, match="config.json"):
        export_llava_checkpoint(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(SvitInputError, match="inside --input .*inputs are never written"):
        export_llava_checkpoint(tmp_path, tmp_path / "out")  # an output inside its input


class _Saves:
    """A model or processor stand-in whose `save_pretrained` writes `name` (or fails)."""

    def __init__(self, name: str, fail: bool = False):
        self.name, self.fail = name, fail

    def save_pretrained(self, folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, self.name), "w") as f:
            f.write("new")
        if self.fail:
            raise OSError("disk full")


def _checkpoint_with(folder, weights: str) -> None:
    """An older checkpoint: a model config and `weights`."""
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "old"}')
    (folder / weights).write_text("old")


def test_save_checkpoint_refuses_an_existing_folder_without_overwrite(tmp_path):
    from svit_dataset.errors import SvitInputError
    from svit_model.building import save_checkpoint

    _checkpoint_with(tmp_path / "ckpt", "model.safetensors")
    with pytest.raises(SvitInputError, match="pass --overwrite"):
        save_checkpoint(_Saves("config.json"), _Saves("processor.json"), tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").read_text() == "old"


def test_save_checkpoint_that_fails_keeps_the_old_one_and_no_temp_folder(tmp_path):
    from svit_model.building import save_checkpoint

    _checkpoint_with(tmp_path / "ckpt", "model.safetensors")
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_Saves("config.json"), _Saves("processor.json", fail=True), tmp_path / "ckpt", True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert (tmp_path / "ckpt" / "model.safetensors").read_text() == "old"


def test_save_checkpoint_replaces_the_old_one_only_once_the_new_one_is_in_place(tmp_path, monkeypatch):
    """The old folder is deleted last: a kill at any point leaves the old checkpoint or the new one, whole."""
    import shutil

    from svit_dataset import files
    from svit_model import building

    _checkpoint_with(tmp_path / "ckpt", "stale.bin")
    seen = []
    rmtree = shutil.rmtree

    def spy(path, *args, **kwargs):
        seen.append(sorted(p.name for p in (tmp_path / "ckpt").iterdir()))
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(files.shutil, "rmtree", spy)  # the one home of the folder swap
    building.save_checkpoint(
        _Saves("config.json"), _Saves("processor.json"), tmp_path / "ckpt", overwrite=True
    )
    assert seen and seen[-1] == ["config.json", "processor.json"]  # when the old one goes, the new one is in
    assert all(names in (["config.json", "stale.bin"], ["config.json", "processor.json"]) for names in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "processor.json"]


def _plain_bpe_tokenizer():
    """An LLM tokenizer as released: no <image>, no grounding tokens, no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(["a red ball on a table", "USER: ASSISTANT:"], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_build_from_vision_and_llm_checkpoints(tmp_path):
    torch.manual_seed(0)
    vision = CLIPVisionModel(tiny_vision_config()).eval()
    vision.save_pretrained(tmp_path / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}).save_pretrained(
        tmp_path / "clip"
    )
    tokenizer = _plain_bpe_tokenizer()
    llm = LlamaForCausalLM(tiny_text_config(tokenizer)).eval()
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")

    model, processor = svit_model.build(tmp_path / "clip", tmp_path / "llm", tmp_path / "built", seed=3)
    old = len(tokenizer)
    assert len(processor.tokenizer) == old + 3  # <image>, <st>, <ed>; pad is the unknown token, as LLaVA-1.5
    assert processor.tokenizer.pad_token == "<unk>"
    embeddings = model.get_input_embeddings().weight
    mean = llm.get_input_embeddings().weight.mean(dim=0)
    assert all(torch.allclose(embeddings[i], mean) for i in range(old, old + 3))
    assert torch.allclose(model.lm_head.weight[old:], llm.lm_head.weight.mean(dim=0).expand(3, -1))
    assert all(
        torch.equal(v, model.model.vision_tower.state_dict()[k]) for k, v in vision.state_dict().items()
    )
    assert processor.pads_images and processor.image_processor.size == {"shortest_edge": 28}

    # Text the LLM knew: the same logits as the LLM alone (new rows are never read).
    ids = tokenizer("a red ball", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits[..., :old], llm(input_ids=ids).logits, atol=1e-6)
        # And with an image, the model runs end to end.
        inputs = processor(images=Image.new("RGB", (40, 20)), text="<image>\na red ball", return_tensors="pt")
        assert model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1]

    # Saved, it loads back through the Auto classes; the projector's seed makes the build reproducible.
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "built")
    assert torch.equal(
        reloaded.model.multi_modal_projector.linear_1.weight,
        model.model.multi_modal_projector.linear_1.weight,
    )
    again, _ = svit_model.build(tmp_path / "clip", tmp_path / "llm", seed=3)
    assert torch.equal(
        again.model.multi_modal_projector.linear_2.weight, model.model.multi_modal_projector.linear_2.weight
    )


def test_build_refuses_a_non_clip_vision_model(tmp_path):
    from svit_dataset.errors import SvitInputError

    tokenizer = _plain_bpe_tokenizer()
    LlamaForCausalLM(tiny_text_config(tokenizer)).save_pretrained(tmp_path / "llm")
    with pytest.raises(SvitInputError, match="CLIP"):
        svit_model.build(tmp_path / "llm", tmp_path / "llm")
    # An existing output folder is refused before anything is loaded (so even with a wrong vision model).
    (tmp_path / "existing").mkdir()
    with pytest.raises(SvitInputError, match="pass --overwrite"):
        svit_model.build(tmp_path / "llm", tmp_path / "llm", tmp_path / "existing")
    # An input is never the output, even with overwrite.
    with pytest.raises(SvitInputError, match="is --vision .*inputs are never written"):
        svit_model.build(tmp_path / "llm", tmp_path / "llm", tmp_path / "llm", overwrite=True)


def test_draw_entities_outlines_the_boxes():
    from svit_model.draw import draw_entities

    image = Image.new("RGB", (100, 50), (0, 0, 0))
    drawn = draw_entities(
        image, [("ball", (0, 4), [(10.0, 10.0, 40.0, 40.0)]), ("", (5, 5), [(60, 5, 90, 45)])]
    )
    assert image.getpixel((10, 25)) == (0, 0, 0)  # the input is untouched
    assert drawn.getpixel((10, 25)) != (0, 0, 0) and drawn.getpixel((60, 25)) != (0, 0, 0)
    assert drawn.getpixel((25, 25)) == (0, 0, 0)  # outlines only
    normalized = draw_entities(image, [("", (0, 0), [(0.1, 0.2, 0.4, 0.8)])], normalized=True)
    assert normalized.getpixel((10, 25)) != (0, 0, 0)


def test_cli_export_llava(saved, tmp_path, capsys):
    from svit_cli.main import main

    assert main(["model", "export-llava", "--input", str(saved), "--output", str(tmp_path / "out")]) == 0
    assert LlavaForConditionalGeneration.from_pretrained(tmp_path / "out").config.model_type == "llava"
    # An existing --output is replaced only with --overwrite.
    again = ["model", "export-llava", "--input", str(saved), "--output", str(tmp_path / "out")]
    assert main(again) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*again, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (
        main(["model", "export-llava", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "x")])
        == 2
    )


@pytest.mark.slow
def test_svit_model_demo_prints_a_parsed_grounded_answer(tmp_path):
    """The main job's model part: the taught answer comes back parsed, its box in the original image's pixels."""
    from svit_cli.jobs.grounded_answer import run_grounded_answer
    from svit_dataset.boxes import to_pixels
    from svit_dataset.grounded_text import parse_grounded_text

    lines = []
    result = run_grounded_answer(print_fn=lines.append, steps=60, drawing=tmp_path / "drawn.png")
    # The drawing is written under a temporary name and renamed into place: nothing else is left.
    assert [p.name for p in tmp_path.iterdir()] == ["drawn.png"]
    assert Image.open(tmp_path / "drawn.png").format == "PNG"
    assert any(line.startswith("post_process_generation -> ") for line in lines)
    reference_clean, reference_entities = parse_grounded_text(result["reference"])
    assert result["clean_text"] == reference_clean
    ((phrase, span, (box,)),) = result["entities"]
    ((ref_phrase, ref_span, (ref_box,)),) = reference_entities
    assert (phrase, span) == (ref_phrase, ref_span)
    width, height = 160, 96  # the bundled image VG_100K/1.jpg
    assert all(abs(a - b) <= 1.0 for a, b in zip(box, to_pixels(ref_box, width, height), strict=True))
