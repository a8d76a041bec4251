"""Prompts: versioned templates, the scene rendered as the paper's input blocks, the token budget.

A request is two messages: the task's template (the paper's Figure 7 or 8 text) as the system
message, and the scene as the user message, laid out as in the paper's Figure 2:

    (1) captions:
    A man riding a horse on a beach.
    ...

    (2) objects:
    man: [0.120, 0.200, 0.480, 0.910]
    ...

    (3) regions:
    a man riding a horse                          <- conversation, complex reasoning, detail
    a man riding a horse: [0.100, 0.150, 0.600, 0.950]   <- referring QAs only (appendix A)

Token budget rule (`fit_to_budget`). Tokens are estimated as ceil(characters / 4) over both messages
plus 4 per message; no tokenizer is needed, so the rule is the same for every model. When a
prompt is over `max_prompt_tokens`:
  1. regions are dropped, the smallest box area first (ties: the later line first), until it fits;
  2. then objects, in the same order;
  3. captions and the template are never cut: when they alone are over the budget, the item fails
     as `prompt_over_budget` and no request is sent.
Large regions describe the scene as a whole and small ones its details, so the details go first.
The remaining lines keep their order. What was dropped is recorded in the item's provenance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

from svit_dataset.boxes import format_box
from svit_dataset.errors import SvitInputError
from svit_dataset.generation.annotations import Scene
from svit_dataset.schema import COMPLEX_REASONING, CONVERSATION, DETAIL_DESCRIPTION, REFERRING_QA, TASKS

TEMPLATES_ROOT = Path(__file__).parent / "templates"
DEFAULT_TEMPLATES = TEMPLATES_ROOT / "paper-v1"
DETAIL_INSTRUCTIONS_FILE = "detail_instructions.txt"

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4

# What each task asks for (paper section 3.2): (conversations, QAs per conversation).
EXPECTED_SHAPE = {
    CONVERSATION: (3, 5),
    COMPLEX_REASONING: (1, 15),
    REFERRING_QA: (1, 10),
    DETAIL_DESCRIPTION: (1, 1),
}

# Expected completion tokens of one response, for the dry-run estimate: the paper's mean words per
# question / answer (section 3.4; detail descriptions 361.5 words) times the QAs asked, plus the
# "Question:"/"Answer:" labels, at 4/3 tokens a word; referring answers add ~25 tokens of boxes a pair.
EXPECTED_COMPLETION_TOKENS = {
    CONVERSATION: round((15 * (9.6 + 27.9 + 2) + 3 * 6) * 4 / 3),
    COMPLEX_REASONING: round(15 * (12.6 + 26.6 + 2) * 4 / 3),
    REFERRING_QA: round(10 * ((11.3 + 20.6 + 2) * 4 / 3 + 25)),
    DETAIL_DESCRIPTION: round(361.5 * 4 / 3),
}


@dataclasses.dataclass(frozen=True)
class PromptTemplates:
    """The system prompt of each task and the detail-description instructions, with a version id."""

    version: str
    system: dict[str, str]
    detail_instructions: tuple[str, ...]


def load_templates(folder: str | Path | None = None, tasks: tuple[str, ...] = TASKS) -> PromptTemplates:
    """Templates of `folder` (default: the paper's, `templates/paper-v1`), checked for `tasks`.

    The version is `<folder name>@<12 hex of SHA-256 over the files>`, so any edit is a new version.
    """
    folder = Path(folder) if folder else DEFAULT_TEMPLATES
    if not folder.is_dir():
        raise SvitInputError(f"--templates {folder}: not a folder; pass a copy of {DEFAULT_TEMPLATES}")
    names = [f"{t}.txt" for t in tasks]
    if DETAIL_DESCRIPTION in tasks:
        names.append(DETAIL_INSTRUCTIONS_FILE)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SvitInputError(
            f"--templates {folder}: missing {', '.join(missing)}; every requested task needs its file "
            f"(see {DEFAULT_TEMPLATES})"
        )
    digest = hashlib.sha256()
    texts = {}
    for name in sorted(names):
        data = (folder / name).read_bytes()
        digest.update(name.encode() + b"\0" + data + b"\0")
        texts[name] = data.decode("utf-8").strip()
    empty = [n for n, t in texts.items() if not t]
    if empty:
        raise SvitInputError(f"--templates {folder}: {', '.join(empty)} is empty")
    instructions = tuple(
        line.strip() for line in texts.get(DETAIL_INSTRUCTIONS_FILE, "").splitlines() if line.strip()
    )
    return PromptTemplates(
        version=f"{folder.name}@{digest.hexdigest()[:12]}",
        system={t: texts[f"{t}.txt"] for t in tasks},
        detail_instructions=instructions,
    )


def detail_instruction(templates: PromptTemplates, image_id: int, seed: int) -> str:
    """The user turn of an image's detail description: one Figure 9 instruction, fixed by (seed, image)."""
    return random.Random(f"{seed}:{image_id}").choice(templates.detail_instructions)


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def _lines(scene: Scene, region_boxes: bool) -> tuple[list[str], list[str], list[str]]:
    objects = [f"{name}: {format_box(box)}" for name, box in scene.objects]
    if region_boxes:
        regions = [f"{phrase}: {format_box(box)}" for phrase, box in scene.regions]
    else:
        regions = [phrase for phrase, _ in scene.regions]
    return list(scene.captions), objects, regions


def render_scene(scene: Scene, region_boxes: bool) -> str:
    """The user message: the three input blocks of the paper's Figure 2."""
    captions, objects, regions = _lines(scene, region_boxes)
    return "\n".join(["(1) captions:", *captions, "", "(2) objects:", *objects, "", "(3) regions:", *regions])


def prompt_tokens(system: str, user: str) -> int:
    return estimate_tokens(system) + estimate_tokens(user) + 2 * TOKENS_PER_MESSAGE


class PromptOverBudget(ValueError):
    """Captions and template alone exceed the token budget."""


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def fit_to_budget(
    scene: Scene, system: str, max_prompt_tokens: int, region_boxes: bool
) -> tuple[Scene, dict[str, int]]:
    """The scene cut to fit `max_prompt_tokens` by the module's rule, and {"regions": n, "objects": n} dropped."""
    if prompt_tokens(system, render_scene(scene, region_boxes)) <= max_prompt_tokens:
        return scene, {}
    _, object_lines, region_lines = _lines(scene, region_boxes)
    # Characters allowed in the user message, from the token estimate's own arithmetic.
    allowed = (max_prompt_tokens - estimate_tokens(system) - 2 * TOKENS_PER_MESSAGE) * CHARS_PER_TOKEN
    length = len(render_scene(scene, region_boxes))
    dropped: dict[str, set[int]] = {"regions": set(), "objects": set()}
    for kind, items, lines in (
        ("regions", scene.regions, region_lines),
        ("objects", scene.objects, object_lines),
    ):
        order = sorted(range(len(items)), key=lambda i: (_area(items[i][1]), -i))
        for i in order:
            if length <= allowed:
                break
            dropped[kind].add(i)
            length -= len(lines[i]) + 1  # the line and its newline
    if length > allowed:
        raise PromptOverBudget(
            f"captions and template need ~{prompt_tokens(system, render_scene(_bare(scene), region_boxes))} "
            f"tokens, over --max-prompt-tokens {max_prompt_tokens}"
        )
    trimmed = dataclasses.replace(
        scene,
        regions=tuple(r for i, r in enumerate(scene.regions) if i not in dropped["regions"]),
        objects=tuple(o for i, o in enumerate(scene.objects) if i not in dropped["objects"]),
    )
    return trimmed, {k: len(v) for k, v in dropped.items() if v}


def _bare(scene: Scene) -> Scene:
    return dataclasses.replace(scene, objects=(), regions=())


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One task's request for one image: the messages, the scene they show, and what was trimmed."""

    task: str
    messages: tuple[dict[str, str], ...]
    scene: Scene  # as shown to the model (after trimming): the referring boxes are checked against it
    prompt_tokens: int  # estimated
    trimmed: dict[str, int]


def build_prompt(scene: Scene, task: str, templates: PromptTemplates, max_prompt_tokens: int) -> Prompt:
    """The request of `task` for `scene`; raises PromptOverBudget (see `fit_to_budget`)."""
    system = templates.system[task]
    region_boxes = task == REFERRING_QA
    shown, trimmed = fit_to_budget(scene, system, max_prompt_tokens, region_boxes)
    user = render_scene(shown, region_boxes)
    return Prompt(
        task=task,
        messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
        scene=shown,
        prompt_tokens=prompt_tokens(system, user),
        trimmed=trimmed,
    )
