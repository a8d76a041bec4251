"""The five recipes as small deterministic functions over per-sample features (features.py).

Every recipe draws from the `train` split of the four tasks only, so nothing of the held-out test
images can enter a recipe. A selection is, per task, sorted row indices into that task's train split,
plus the QAs dropped from some of those rows by the balance step. Given the same features and
`RecipeParams`, a selection is the same on any machine (numpy PCG64 streams seeded from the seed,
a fixed tag per step and the task name).

- `svit_80k`: `per_task` (20,000) samples of each task, at random.
- `svit_80k_d` (diversity): per task, drop the less-informative half (`keep_fraction` 0.5; ties
  broken at random), then `per_task` samples of each task at random from what is left.
- `svit_80k_b` (balance): the draw of `svit_80k` (the same seed gives the same 80K), then "Yes" QAs
  are dropped at random until Y:N is `yes_per_no` (8). A dropped QA leaves the conversation (its
  user question and its answer); the sample stays with its other QAs. A sample left with no QA at all
  leaves the selection and is replaced by the next sample of the same task in the random order (its
  own QAs counted in turn), so the size stays exact. If refills raise the allowed number of "Yes",
  the most recent drops are undone, so Y equals floor(yes_per_no * N) exactly.
- `core_150k`: diversity, then balance, `core_size` (157,712) samples split over the tasks by
  `core_split` (default: equal shares, 39,428 each).
- `mix_665k` is built from `core_150k` (mix.py).

Scope of the diversity cut. Informativeness counts concept words over a whole conversation, so a
361-word detail description outscores a 1-QA sample of another task by length alone; the default cuts
each task at its own median (`diversity_scope="task"`). `diversity_scope="train"` cuts SVIT-train as
a whole, the paper's literal wording; either way the 20K per task are drawn afterwards.

Too small an input: a task with fewer qualifying samples than asked gives all it has, and the
report says so (`short`).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import deque

import numpy as np

from svit_dataset.errors import SvitInputError
from svit_dataset.recipes.concepts import DEFAULT_SCORE, SCORES
from svit_dataset.recipes.features import TaskFeatures
from svit_dataset.recipes.yesno import yes_target
from svit_dataset.schema import TASKS
from svit_dataset.settings import setting

SVIT_80K, SVIT_80K_D, SVIT_80K_B, CORE_150K, MIX_665K = (
    "svit_80k",
    "svit_80k_d",
    "svit_80k_b",
    "core_150k",
    "mix_665k",
)
RECIPE_NAMES: tuple[str, ...] = (SVIT_80K, SVIT_80K_D, SVIT_80K_B, CORE_150K, MIX_665K)
DIVERSITY_SCOPES = ("task", "train")


@dataclasses.dataclass(frozen=True)
class RecipeParams:
    """Recipe parameters; the defaults are the paper's."""

    per_task: int = setting(20_000, "svit_80k*: samples per task")
    yes_per_no: float = setting(8.0, "target Y:N of the balance step (paper figure 5: 8 works best)")
    seed: int = setting(0, "seed of the recipes' random draws", flag="--recipe-seed")
    keep_fraction: float = setting(0.5, "diversity: share of the most informative samples kept")
    informativeness: str = setting(
        DEFAULT_SCORE,
        "score: distinct concept key words matched (keys) or concepts covered (concepts)",
        choices=SCORES,
    )
    diversity_scope: str = setting(
        "task",
        "cut the less informative part per task (task) or over SVIT-train as a whole (train)",
        choices=DIVERSITY_SCOPES,
    )
    core_size: int = setting(157_712, "core_150k: samples (the size of LLaVA-Instruct-150K)")
    core_split: tuple[tuple[str, float], ...] = setting(
        tuple((t, 1.0) for t in TASKS),
        "core_150k: task=weight,... (task -> weight)",
        parse=lambda text: parse_split(text),
        show_default="equal shares of the four tasks",
    )
    concepts: str | None = setting(
        None, "your concept set: JSON/YAML {concept: [key words]} (default: table 4)"
    )
    mix_image_prefix: str = setting("vg/", "mix_665k: folder of VG images in LLaVA's layout (vg/VG_100K/...)")

    def __post_init__(self) -> None:
        if self.per_task < 0 or self.core_size < 0:
            raise SvitInputError("--per-task and --core-size must be >= 0")
        if not 0 < self.yes_per_no < float("inf"):
            raise SvitInputError(f"--yes-per-no must be > 0 and finite, got {self.yes_per_no}")
        if self.seed < 0:  # numpy's generators take no negative seed
            raise SvitInputError(f"--recipe-seed must be 0 or more, got {self.seed}")
        if not 0 < self.keep_fraction <= 1:
            raise SvitInputError(f"--keep-fraction must be in (0, 1], got {self.keep_fraction}")
        if self.informativeness not in SCORES:
            raise SvitInputError(
                f"--informativeness {self.informativeness!r}: expected one of {', '.join(SCORES)}"
            )
        if self.diversity_scope not in DIVERSITY_SCOPES:
            raise SvitInputError(
                f"--diversity-scope {self.diversity_scope!r}: expected one of {', '.join(DIVERSITY_SCOPES)}"
            )
        unknown = [t for t, _ in self.core_split if t not in TASKS]
        if (
            unknown
            or not all(0 <= w < float("inf") for _, w in self.core_split)  # NaN fails it too
            or not any(w > 0 for _, w in self.core_split)
        ):
            raise SvitInputError(
                f"--core-split {format_split(self.core_split)}: give task=weight for tasks among "
                f"{', '.join(TASKS)}, weights >= 0, at least one > 0"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["core_split"] = dict(self.core_split)
        return d


def parse_split(text: str) -> tuple[tuple[str, float], ...]:
    """'conversation=1,referring_qa=2' -> (('conversation', 1.0), ('referring_qa', 2.0))."""
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        task, sep, weight = part.partition("=")
        try:
            out.append((task.strip(), float(weight)))
        except ValueError:
            raise SvitInputError(f"--core-split: {part!r} is not task=weight") from None
        if not sep:
            raise SvitInputError(f"--core-split: {part!r} is not task=weight")
    return tuple(out)


def format_split(split) -> str:
    return ",".join(f"{t}={w:g}" for t, w in split)


def split_sizes(total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` shared by weight, largest remainder first (ties in task order): sums to `total`."""
    tasks = [t for t in TASKS if weights.get(t, 0) > 0]
    w = np.array([weights[t] for t in tasks], dtype=np.float64)
    exact = total * w / w.sum()
    sizes = np.floor(exact).astype(np.int64)
    order = sorted(range(len(tasks)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: total - int(sizes.sum())]:
        sizes[i] += 1
    return {t: int(s) for t, s in zip(tasks, sizes, strict=True)}


@dataclasses.dataclass
class Selection:
    """One recipe's choice: rows per task (sorted indices into the task's train split) and the QAs
    dropped from some of them (row -> sorted QA indices)."""

    name: str
    rows: dict[str, np.ndarray]
    dropped_qas: dict[str, dict[int, tuple[int, ...]]]
    facts: dict  # what happened, for the report (report.py adds the distributions)

    @property
    def size(self) -> int:
        return int(sum(r.size for r in self.rows.values()))


def _rng(seed: int, step: str, task: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(step.encode()), zlib.crc32(task.encode())])


def random_order(pool: np.ndarray, seed: int, task: str) -> np.ndarray:
    """The pool in the seeded random order of `task`: a draw of n is its first n."""
    return pool[_rng(seed, "draw", task).permutation(pool.size)]


def diversity_pools(features: dict[str, TaskFeatures], params: RecipeParams) -> tuple[dict, dict]:
    """Per task, the row indices kept by the diversity cut (sorted), and what the cut did."""
    scores = {t: f.info.score(params.informativeness) for t, f in features.items()}
    ties = {t: _rng(params.seed, "diversity", t).random(f.n) for t, f in features.items()}
    kept: dict[str, np.ndarray] = {}
    if params.diversity_scope == "task":
        for t, f in features.items():
            kept[t] = _top(scores[t], ties[t], _keep_count(f.n, params.keep_fraction))
    else:
        tasks = list(features)
        offsets = np.cumsum([0] + [features[t].n for t in tasks])
        all_kept = _top(
            np.concatenate([scores[t] for t in tasks]),
            np.concatenate([ties[t] for t in tasks]),
            _keep_count(int(offsets[-1]), params.keep_fraction),
        )
        for i, t in enumerate(tasks):
            inside = all_kept[(all_kept >= offsets[i]) & (all_kept < offsets[i + 1])]
            kept[t] = inside - offsets[i]
    facts = {
        "score": params.informativeness,
        "scope": params.diversity_scope,
        "keep_fraction": params.keep_fraction,
        "train": {t: f.n for t, f in features.items()},
        "kept": {t: int(kept[t].size) for t in features},
        "dropped": {t: f.n - int(kept[t].size) for t, f in features.items()},
        # the lowest score kept: samples below it were dropped, at it some were (tie-break)
        "cut_score": {t: int(scores[t][kept[t]].min()) if kept[t].size else None for t in features},
    }
    return kept, facts


def _keep_count(n: int, fraction: float) -> int:
    return min(n, int(np.floor(n * fraction + 0.5)))


def _top(score: np.ndarray, tie: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores (random tie-break), sorted."""
    order = np.lexsort((tie, -score.astype(np.int64)))
    return np.sort(order[:k])


@dataclasses.dataclass
class _Draw:
    chosen: dict[str, list[int]]
    queue: dict[str, deque]
    asked: dict[str, int]
    pool: dict[str, int]


def draw(pools: dict[str, np.ndarray], sizes: dict[str, int], seed: int) -> _Draw:
    chosen, queue, asked, pool = {}, {}, {}, {}
    for task, size in sizes.items():
        order = random_order(pools[task], seed, task) if task in pools else np.zeros(0, dtype=np.int64)
        chosen[task] = order[:size].tolist()
        queue[task] = deque(order[size:].tolist())
        asked[task] = size
        pool[task] = int(order.size)
    return _Draw(chosen, queue, asked, pool)


def balance(features: dict[str, TaskFeatures], d: _Draw, yes_per_no: float, seed: int) -> dict:
    """Drop random "Yes" QAs of the drawn samples until Y = floor(yes_per_no * N), refilling samples
    left without QAs from the task's queue. Mutates `d.chosen`; returns drops and counts."""
    # task -> (bounds, QA indices): the "Yes" QAs of row r are index[bounds[r]:bounds[r + 1]]
    yes_of = {
        task: (np.searchsorted(f.yes_qa_sample, np.arange(f.n + 1)), f.yes_qa_index)
        for task, f in features.items()
    }
    rng = _rng(seed, "balance", "all")

    def yes_qas(task, rows):
        bounds, index = yes_of[task]
        return [(task, r, int(q)) for r in rows for q in index[bounds[r] : bounds[r + 1]]]

    selected = {t: set(rows) for t, rows in d.chosen.items()}
    y = sum(int(features[t].yes[rows].sum()) for t, rows in d.chosen.items() if rows)
    n = sum(int(features[t].no[rows].sum()) for t, rows in d.chosen.items() if rows)
    qas = sum(int(features[t].n_qas[rows].sum()) for t, rows in d.chosen.items() if rows)
    before = {"yes": y, "no": n, "qas": qas}
    candidates = [qa for t, rows in d.chosen.items() for qa in yes_qas(t, rows)]
    pending = deque(candidates[i] for i in rng.permutation(len(candidates)))
    drops: list[tuple[str, int, int]] = []
    dropped_in: dict[tuple[str, int], int] = {}
    emptied = refilled = 0
    while y > yes_target(n, yes_per_no) and pending:
        task, row, q = pending.popleft()
        if row not in selected[task]:
            continue
        drops.append((task, row, q))
        dropped_in[(task, row)] = dropped_in.get((task, row), 0) + 1
        y -= 1
        if dropped_in[(task, row)] < features[task].n_qas[row]:
            continue
        # Every QA of the sample was a dropped "Yes": the sample goes, the next one of its task comes.
        selected[task].discard(row)
        emptied += 1
        if d.queue[task]:
            new = d.queue[task].popleft()
            selected[task].add(new)
            refilled += 1
            y += int(features[task].yes[new])
            n += int(features[task].no[new])
            more = yes_qas(task, [new])
            pending.extend(more[i] for i in rng.permutation(len(more)))
    restored = 0
    while y < yes_target(n, yes_per_no) and drops:
        task, row, q = drops.pop()
        if row in selected[task]:
            dropped_in[(task, row)] -= 1
            y += 1
            restored += 1
    dropped: dict[str, dict[int, list[int]]] = {t: {} for t in d.chosen}
    for task, row, q in drops:
        if row in selected[task]:
            dropped[task].setdefault(row, []).append(q)
    for task in d.chosen:
        d.chosen[task] = sorted(selected[task])
    return {
        "dropped": {t: {r: tuple(sorted(qs)) for r, qs in rows.items()} for t, rows in dropped.items()},
        "yes_no_before": before,
        "yes_no_after": {"yes": y, "no": n},
        "target_yes_per_no": yes_per_no,
        "yes_qas_dropped": sum(len(v) for rows in dropped.values() for v in rows.values()),
        "samples_emptied": emptied,
        "samples_refilled": refilled,
        "drops_undone": restored,
        "target_yes": yes_target(n, yes_per_no),
        # False only when the draw was already at or below the target: nothing to drop
        "reached": y == yes_target(n, yes_per_no),
    }


def _finish(name: str, d: _Draw, facts: dict, dropped=None) -> Selection:
    rows = {t: np.array(sorted(r), dtype=np.int64) for t, r in d.chosen.items()}
    short = {t: d.asked[t] - int(rows[t].size) for t in rows if rows[t].size < d.asked[t]}
    facts |= {
        "asked": dict(d.asked),
        "pool": dict(d.pool),
        "size": {t: int(r.size) for t, r in rows.items()},
        "short": short,
    }
    if short:
        facts.setdefault("notes", []).append(
            "input too small, took all that qualifies: "
            + ", ".join(f"{t} {rows[t].size:,} of {d.asked[t]:,} asked" for t in short)
        )
    return Selection(name, rows, dropped or {t: {} for t in rows}, facts)


def _all_rows(features: dict[str, TaskFeatures]) -> dict[str, np.ndarray]:
    return {t: np.arange(f.n, dtype=np.int64) for t, f in features.items()}


def select_svit_80k(features: dict[str, TaskFeatures], params: RecipeParams) -> Selection:
    sizes = {t: params.per_task for t in TASKS}
    return _finish(SVIT_80K, draw(_all_rows(features), sizes, params.seed), {"steps": ["random"]})


def select_svit_80k_d(features: dict[str, TaskFeatures], params: RecipeParams) -> Selection:
    pools, diversity = diversity_pools(features, params)
    sizes = {t: params.per_task for t in TASKS}
    d = draw(pools, sizes, params.seed)
    return _finish(SVIT_80K_D, d, {"steps": ["diversity", "random"], "diversity": diversity})


def select_svit_80k_b(features: dict[str, TaskFeatures], params: RecipeParams) -> Selection:
    sizes = {t: params.per_task for t in TASKS}
    d = draw(_all_rows(features), sizes, params.seed)
    result = balance(features, d, params.yes_per_no, params.seed)
    dropped = result.pop("dropped")
    return _finish(
        SVIT_80K_B, d, {"steps": ["random", "balance"], "balance": result} | _balance_note(result), dropped
    )


def select_core_150k(features: dict[str, TaskFeatures], params: RecipeParams) -> Selection:
    pools, diversity = diversity_pools(features, params)
    sizes = split_sizes(params.core_size, dict(params.core_split))
    d = draw(pools, sizes, params.seed)
    result = balance(features, d, params.yes_per_no, params.seed)
    dropped = result.pop("dropped")
    facts = {"steps": ["diversity", "random", "balance"], "diversity": diversity, "balance": result}
    facts |= _balance_note(result)
    return _finish(CORE_150K, d, facts, dropped)


def _balance_note(result: dict) -> dict:
    if result["reached"]:
        return {}
    before = result["yes_no_before"]
    if before["yes"] <= yes_target(before["no"], result["target_yes_per_no"]):
        why = "the draw was already at or below the target Y:N: nothing dropped"
    else:
        why = (
            f"Y:N ended below the target ({result['yes_no_after']['yes']} Yes for {result['target_yes']} "
            "allowed): the drops that could be undone had emptied samples"
        )
    return {"notes": [why]}


SELECTORS = {
    SVIT_80K: select_svit_80k,
    SVIT_80K_D: select_svit_80k_d,
    SVIT_80K_B: select_svit_80k_b,
    CORE_150K: select_core_150k,
}


def select(name: str, features: dict[str, TaskFeatures], params: RecipeParams) -> Selection:
    """The selection of recipe `name` (one of the four SVIT recipes; the mix builds on core_150k)."""
    missing = [t for t in TASKS if t not in features]
    if missing:
        raise SvitInputError(f"recipe {name}: no features for task(s) {', '.join(missing)}")
    return SELECTORS[name](features, params)


def drop_qa_pairs(messages: list[dict], qa_indices: tuple[int, ...]) -> list[dict]:
    """The conversation without the QAs at `qa_indices` (QA k = messages 2k and 2k+1)."""
    gone = {2 * q for q in qa_indices} | {2 * q + 1 for q in qa_indices}
    return [m for i, m in enumerate(messages) if i not in gone]
