"""Training recipes: YAML files of `svit train` arguments shipped in `training_recipes/`, addressed by name.

(Not the data recipes of `svit_dataset/recipes`, which build SVIT's mixes.) A training recipe is a mapping of
argument names (TRL's, transformers' and ours, see `arguments.py`) to values; its first comment line describes it.
`svit train --config NAME` and `--config path.yaml` both work; flags override it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from svit_dataset.errors import SvitInputError
from svit_model.training.arguments import check_training_recipe_values

TRAINING_RECIPES_DIR = Path(__file__).parent / "training_recipes"


def shipped_training_recipes() -> dict[str, Path]:
    return {path.stem: path for path in sorted(TRAINING_RECIPES_DIR.glob("*.yaml"))}


def describe(path: Path) -> str:
    """The recipe's first comment line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def list_training_recipes() -> dict[str, str]:
    """Shipped training recipe name -> description."""
    return {name: describe(path) for name, path in shipped_training_recipes().items()}


def training_recipe_path(name_or_path: str) -> Path:
    """The YAML file of a shipped recipe name or of a path; raises `SvitInputError` naming both options."""
    shipped = shipped_training_recipes()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    raise SvitInputError(
        f"--config {name_or_path}: neither a shipped recipe ({', '.join(shipped)}) nor a YAML file; "
        "see `svit train --list-recipes`"
    )


def load_training_recipe(name_or_path: str) -> tuple[Path, dict]:
    """(path, values) of a training recipe, its keys and value types checked."""
    path = training_recipe_path(name_or_path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise SvitInputError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    except RecursionError:  # PyYAML builds nested collections recursively; a recipe is a flat mapping
        raise SvitInputError(
            f"--config {path}: nested too deeply; a recipe is a flat mapping of arguments"
        ) from None
    if not isinstance(values, dict):
        raise SvitInputError(
            f"--config {path}: a YAML {type(values).__name__}; expected a mapping of arguments"
        )
    check_training_recipe_values(values, f"--config {path}")
    return path, values


__all__ = [
    "TRAINING_RECIPES_DIR",
    "list_training_recipes",
    "load_training_recipe",
    "shipped_training_recipes",
    "training_recipe_path",
]
