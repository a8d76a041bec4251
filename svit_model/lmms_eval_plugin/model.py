"""The lmms-eval model `svit_llava`: any checkpoint svit produces, answering as `svit eval` asks it.

    python -m lmms_eval --model svit_llava --model_args pretrained=RUN --tasks mme,pope,refcoco_bbox_rec_val
    accelerate launch --num_processes 8 -m lmms_eval --model svit_llava --model_args pretrained=RUN --tasks ...

`pretrained` is an SVIT-LLaVA checkpoint, a LoRA run (loaded unmerged), a merged run or a plain `llava` export,
a folder or a Hub id: what `svit eval --model` takes (`harness.load_for_eval`). Questions are asked as
`svit eval` asks them (`harness.generate_batch`: the checkpoint's chat template, the images first, greedy,
left-padded batches of `batch_size`). Under `accelerate launch` each process loads the model on its own device
and lmms-eval gives it its share of the questions.

Boxes: the model writes boxes in the padded square it reads (LLaVA-1.5's `pad` mode); lmms-eval's RefCOCO
tasks read `[x1, y1, x2, y2]` as fractions of the original image. Every answer about one image has its boxes
moved back to that image's frame (`box_frame=original`, the default; `box_frame=model` leaves them), as
written otherwise: not clamped, corners not reordered, so lmms-eval scores what the model said.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from svit_dataset.boxes import move_boxes_in_text
from svit_dataset.errors import SvitInputError
from svit_model.evaluation.benchmark import MAX_NEW_TOKENS
from svit_model.evaluation.harness import generate_batch, load_for_eval, process_state

logger = logging.getLogger(__name__)

BOX_FRAMES = ("original", "model")
DTYPES = ("float32", "bfloat16", "float16")
# Decimals of a box moved back to the original image: enough that lmms-eval's IoU of the text equals the IoU
# of the exact box to 1e-5.
ANSWER_BOX_DECIMALS = 6
# lmms-eval's llava_hf answers up to 1024 new tokens when a task does not say; so does this model.
DEFAULT_MAX_NEW_TOKENS = 1024


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """`text` up to the first of the task's stop strings (lmms-eval's `until`)."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


def to_image_frame(processor, text: str, images: Sequence) -> str:
    """The answer's boxes moved from the padded square back into the original image's [0, 1] frame, as
    written (one image, a padding processor; else the text as it is)."""
    if len(images) != 1 or not getattr(processor, "pads_images", False):
        return text
    width, height = images[0].size
    return move_boxes_in_text(text, width, height, to_padded=False, decimals=ANSWER_BOX_DECIMALS)[0]


def generation_settings(task: str, gen_kwargs: dict) -> tuple[int, list[str]]:
    """(max_new_tokens, until) of a task's `generation_kwargs`; sampling is refused: svit_llava answers
    greedily, as the papers' tables were made."""
    if gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature") or 0) > 0:
        raise SvitInputError(
            f"svit_llava: task {task} asks to sample (do_sample/temperature {gen_kwargs.get('temperature')}); "
            "svit_llava answers greedily: pass --gen_kwargs temperature=0"
        )
    until = gen_kwargs.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    max_new_tokens = int(gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise SvitInputError(
            f"svit_llava: task {task}: max_new_tokens {max_new_tokens}, not 1 to {MAX_NEW_TOKENS}"
        )
    return max_new_tokens, until


class SvitLlava(lmms):
    """lmms-eval's view of an SVIT-LLaVA checkpoint (see the module docstring for `model_args`)."""

    def __init__(
        self,
        pretrained: str,
        batch_size: int | str = 1,
        dtype: str | None = None,
        device: str | None = None,
        box_frame: str = "original",
        **unknown,
    ) -> None:
        super().__init__()
        if unknown:
            raise SvitInputError(
                f"svit_llava: unknown model_args {', '.join(sorted(unknown))}; it takes pretrained, batch_size, "
                "dtype, device, box_frame"
            )
        if box_frame not in BOX_FRAMES:
            raise SvitInputError(f"svit_llava: box_frame={box_frame}; pass one of {', '.join(BOX_FRAMES)}")
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise SvitInputError(f"svit_llava: batch_size={batch_size}; pass a whole number, 1 or more")
        if dtype is not None and dtype not in DTYPES:
            raise SvitInputError(f"svit_llava: dtype={dtype}; pass one of {', '.join(DTYPES)}")
        self.batch_size = int(batch_size)
        self.box_frame = box_frame
        state = process_state()
        self._rank, self._world_size = state.process_index, state.num_processes
        self.model, self.processor = load_for_eval(pretrained, dtype=dtype, device=device)

    @property
    def device(self):
        return self.model.device

    def _images(self, request: Instance) -> list:
        doc_to_visual, doc_id, task, split = (
            request.args[2],
            request.args[3],
            request.args[4],
            request.args[5],
        )
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
        if not visuals:
            raise SvitInputError(
                f"svit_llava: task {task} doc {doc_id} has no image; LLaVA-style models answer about an image"
            )
        return [image.convert("RGB") for image in visuals]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            # one batch per generation setting: a chunk mixing tasks is split where the settings change
            groups: dict[tuple, list[int]] = {}
            settings = [generation_settings(r.args[4], r.args[1]) for r in chunk]
            for i, (max_new_tokens, until) in enumerate(settings):
                groups.setdefault((max_new_tokens, tuple(until)), []).append(i)
            texts = [""] * len(chunk)
            for (max_new_tokens, until), members in groups.items():
                images = [self._images(chunk[i]) for i in members]
                outputs = generate_batch(
                    self.model, self.processor, [chunk[i].args[0] for i in members], images, max_new_tokens
                )
                for i, output, visuals in zip(members, outputs, images, strict=True):
                    text = cut_at_stop(output, until)
                    if self.box_frame == "original":
                        text = to_image_frame(self.processor, text, visuals)
                    texts[i] = text
            answers.extend(texts)
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(mean negative log-likelihood of the continuation, whether greedy decoding would write it), per
        request: lmms-eval's multiple-choice tasks pick the choice of least loss."""
        results = []
        for request in requests:
            context, continuation = request.args[0], request.args[1]
            if callable(continuation):
                task, split, doc_id = request.args[4], request.args[5], request.args[3]
                continuation = continuation(self.task_dict[task][split][doc_id])
            results.append(self._continuation_loss(context, str(continuation), self._images(request)))
        return results

    def _continuation_loss(self, context: str, continuation: str, images: list) -> tuple[float, bool]:
        messages = [
            {
                "role": "user",
                "content": [
                    *({"type": "image", "image": im} for im in images),
                    {"type": "text", "text": context},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": continuation}]},
        ]
        inputs = self.processor.apply_chat_template(
            [messages],
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            return_assistant_tokens_mask=True,
        )
        mask = inputs.pop("assistant_masks").bool()
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        labels = inputs["input_ids"].masked_fill(~mask.to(self.model.device), -100)
        with torch.inference_mode():
            output = self.model(**inputs, labels=labels)
        # logits at position t predict token t + 1
        predicted = output.logits[0, :-1].argmax(-1)
        targets, scored = inputs["input_ids"][0, 1:], mask[0, 1:].to(predicted.device)
        greedy = bool((predicted[scored] == targets[scored]).all())
        return float(output.loss), greedy

    def generate_until_multi_round(self, requests) -> list[str]:
        task = requests[0].args[5] if requests else "?"
        raise NotImplementedError(f"svit_llava: multi-round generation (task {task}) is not supported")
