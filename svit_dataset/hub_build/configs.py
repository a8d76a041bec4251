"""The configs a build can write (one Hub config each): the four task subsets, `full`, and the recipes."""

from __future__ import annotations

from svit_dataset.errors import SvitInputError
from svit_dataset.recipes.select import RECIPE_NAMES
from svit_dataset.schema import TASKS

# Subsets of the released data: config name -> tasks it holds. Names are final (Hub configs).
SUBSETS: dict[str, tuple[str, ...]] = {task: (task,) for task in TASKS} | {"full": TASKS}
# Recipe configs (paper 4.2, 5.2): drawn from the train split of all four tasks. Names are final.
RECIPE_CONFIGS: dict[str, tuple[str, ...]] = {name: TASKS for name in RECIPE_NAMES}
CONFIGS: dict[str, tuple[str, ...]] = SUBSETS | RECIPE_CONFIGS
DEFAULT_CONFIG = "full"
# What each config holds, in words: the dataset card's table and `dataset_info` say it.
CONFIG_DESCRIPTIONS: dict[str, str] = {
    "conversation": "multi-turn conversations about the image",
    "complex_reasoning": "questions that need reasoning over the scene",
    "referring_qa": "QAs whose objects are grounded with boxes",
    "detail_description": "one long description per image",
    "full": "all four tasks",
    "svit_80k": "SVIT-80K: 20K random samples per task from SVIT-train",
    "svit_80k_d": "SVIT-80K-D (diversity): the more informative half of SVIT-train, then 20K per task",
    "svit_80k_b": "SVIT-80K-B (balance): SVIT-80K with random 'Yes' QAs dropped to Y:N = 8, refilled to 80,000",
    "core_150k": "SVIT-core-150K: diversity, then balance, 157,712 samples",
    "mix_665k": "SVIT-mix-665K: LLaVA-v1.5-mix-665K with LLaVA-Instruct-150K replaced by core_150k",
}
# Names that stand for groups of configs in --configs.
CONFIG_GROUPS = {"all": tuple(SUBSETS), "recipes": tuple(RECIPE_CONFIGS)}


def resolve_configs(names: list[str] | str | None) -> list[str]:
    """Validated config names, in registry order. None or "all" means every subset; "recipes" every
    recipe config (svit_80k, svit_80k_d, svit_80k_b, core_150k, mix_665k); both may be listed."""
    if names is None:
        names = ["all"]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    wanted = {m for n in names for m in CONFIG_GROUPS.get(n, (n,))}
    unknown = [n for n in names if n not in CONFIGS and n not in CONFIG_GROUPS]
    if unknown:
        raise SvitInputError(
            f"--configs: unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)} "
            f"(or {' / '.join(CONFIG_GROUPS)})"
        )
    return [n for n in CONFIGS if n in wanted]


def named_explicitly(configs: list[str] | str | None) -> set[str]:
    """Configs the user named one by one (not through a group such as "all" or "recipes")."""
    if configs is None:
        return set()
    names = configs.split(",") if isinstance(configs, str) else configs
    return {n.strip() for n in names if n.strip() in CONFIGS}
