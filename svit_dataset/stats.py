"""The statistics of paper section 3.4, from a built dataset folder.

Per task: samples, QAs, mean question and answer words (a word is a whitespace-separated token,
`len(text.split())`, punctuation attached: the rule of tools.synthetic), the mean length of the
detail descriptions, and the distribution of questions by their first three words (lower-cased,
punctuation removed), drawn like the paper's figure 3: one ring per word, inside out.

By default the numbers are over the four task configs, train and test together (the whole dataset,
as the paper counts it); `config=` gives them for one config's split instead (`train` unless `split=`;
e.g. `full`, a recipe, or a recipe's `test`), grouped by its `task` column. A config's files are its
`data_files` in the built README, as `load_dataset` reads them.

    svit stats OUT [--config core_150k [--split test]]
        ->  OUT/stats/<name>.json, <name>_first_words.png, <name>_lengths.png
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.data_files import sanitize_patterns
from huggingface_hub.repocard import metadata_load

from svit_dataset.errors import SvitInputError
from svit_dataset.files import save_figure_atomic, write_json_atomic
from svit_dataset.schema import (
    ASSISTANT,
    COMPLEX_REASONING,
    CONVERSATION,
    DETAIL_DESCRIPTION,
    REFERRING_QA,
    TASKS,
    USER,
)
from svit_dataset.settings import check_number

logger = logging.getLogger(__name__)

STATS_DIR = "stats"
# Paper 3.4 (and table 1), for comparison in the JSON and the figure.
PAPER = {
    CONVERSATION: {"qas": 1_565_797, "mean_question_words": 9.6, "mean_answer_words": 27.9},
    COMPLEX_REASONING: {"qas": 1_556_902, "mean_question_words": 12.6, "mean_answer_words": 26.6},
    REFERRING_QA: {"qas": 1_011_338, "mean_question_words": 11.3, "mean_answer_words": 20.6},
    DETAIL_DESCRIPTION: {"qas": 106_274, "mean_answer_words": 361.5},
}
QUESTION_TASKS = (CONVERSATION, COMPLEX_REASONING, REFERRING_QA)  # figure 3 has these three
_BATCH = 8000


def card_data_files(folder: Path) -> dict[str, dict[str, list[str]]]:
    """config -> split -> data file patterns (relative to `folder`), from the YAML `configs:` of the
    built README: the same files `load_dataset(folder, config)` reads. `full` and the recipes' `test`
    split have no folder of their own; they point at the task folders."""
    readme = folder / "README.md"
    if not readme.is_file():
        raise SvitInputError(
            f"{folder}: no README.md (the config list); pass a folder written by `svit build`"
        )
    configs = (metadata_load(readme) or {}).get("configs") or []
    return {c["config_name"]: sanitize_patterns(c.get("data_files", {})) for c in configs}


def _glob(folder: Path, patterns: list[str]) -> list[Path]:
    """The files of `patterns`, in pattern order (task order), sorted within a pattern."""
    paths: list[Path] = []
    for pattern in patterns:
        paths += [p for p in sorted(folder.glob(pattern)) if p not in paths]
    return paths


def _config_shards(folder: Path, config: str | None, split: str) -> dict[str | None, list[Path]]:
    """task -> shards of all splits (config=None), or None -> the shards of the config's `split`."""
    data_files = card_data_files(folder)
    if config is None:
        shards = {
            t: _glob(folder, [p for ps in data_files[t].values() for p in ps])
            for t in TASKS
            if t in data_files
        }
        shards = {t: p for t, p in shards.items() if p}
        if not shards:
            raise SvitInputError(
                f"{folder}: no task configs (conversation, ...) in README.md; build them with `svit build`, "
                "or pass --config NAME for another config"
            )
        return shards
    if config not in data_files:
        raise SvitInputError(
            f"{folder}: no config {config!r} in README.md (built: {', '.join(data_files) or 'none'}); "
            f"build it with `svit build --configs {config}`"
        )
    if split not in data_files[config]:
        raise SvitInputError(
            f"{folder}: config {config!r} has no {split!r} split (splits: {', '.join(data_files[config])})"
        )
    paths = _glob(folder, data_files[config][split])
    if not paths:
        raise SvitInputError(
            f"{folder}: config {config!r} has no {split} shards at {', '.join(data_files[config][split])}"
        )
    return {None: paths}


def _words(texts: pa.Array) -> np.ndarray:
    return pc.list_value_length(pc.utf8_split_whitespace(texts)).to_numpy(zero_copy_only=False)


def _first_three(questions: pa.Array) -> pa.Array:
    """'what is the' for 'What is the color...?': lower-cased, punctuation removed, up to 3 words."""
    plain = pc.replace_substring_regex(pc.utf8_lower(questions), r"<st>|<ed>", "")  # grounding tags
    words = pc.utf8_split_whitespace(plain, max_splits=3)
    head = pc.binary_join(pc.list_slice(words, 0, 3), " ")
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(head, r"[^\p{L}\p{N}' ]+", ""))


class _TaskTally:
    def __init__(self) -> None:
        self.samples = self.qas = self.question_words = self.answer_words = 0
        self.heads: list[pa.Array] = []

    def add(self, messages: pa.Array) -> None:
        flat = pc.list_flatten(messages)
        role = pc.struct_field(flat, "role")
        content = pc.struct_field(flat, "content")
        questions = content.filter(pc.equal(role, USER))
        answers = content.filter(pc.equal(role, ASSISTANT))
        self.samples += len(messages)
        self.qas += len(answers)
        self.question_words += int(_words(questions).sum())
        self.answer_words += int(_words(answers).sum())
        self.heads.append(_first_three(questions))

    def result(self, top: int) -> tuple[dict, Counter]:
        out = {
            "samples": self.samples,
            "qas": self.qas,
            "question_words": self.question_words,
            "answer_words": self.answer_words,
            "mean_question_words": round(self.question_words / self.qas, 4) if self.qas else None,
            "mean_answer_words": round(self.answer_words / self.qas, 4) if self.qas else None,
        }
        counts = pc.value_counts(pa.chunked_array(self.heads, pa.string())) if self.heads else None
        trigrams = Counter()
        if counts is not None and len(counts):
            trigrams = Counter(
                dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
            )
        out["first_words"] = first_words_distribution(trigrams, top)
        return out, trigrams


def first_words_distribution(trigrams: Counter, top: int = 20) -> dict:
    """Shares of questions by first word, first two and first three words (top `top` each), and
    the share of "how many" among "how" questions (paper 3.4)."""
    total = sum(trigrams.values()) or 1
    levels = {}
    for depth, name in ((1, "first_word"), (2, "first_two_words"), (3, "first_three_words")):
        counter: Counter = Counter()
        for head, n in trigrams.items():
            counter[" ".join(head.split(" ")[:depth])] += n
        levels[name] = [[k, round(n / total, 4)] for k, n in counter.most_common(top)]
    how = sum(n for h, n in trigrams.items() if h.split(" ")[0] == "how")
    how_many = sum(n for h, n in trigrams.items() if h.split(" ")[:2] == ["how", "many"])
    levels["how_many_share_of_how"] = round(how_many / how, 4) if how else None
    levels["questions"] = sum(trigrams.values())
    return levels


def compute_stats(folder: str | Path, config: str | None = None, top: int = 20, split: str = "train") -> dict:
    """Section 3.4 numbers of a built folder (see the module docstring)."""
    return _compute(Path(folder), config, top, split)[0]


def _compute(folder: Path, config: str | None, top: int, split: str) -> tuple[dict, dict[str, Counter]]:
    check_number("--top", top, 1)  # `most_common(0 or less)` is an empty list: a table with no first words
    tallies: dict[str, _TaskTally] = defaultdict(_TaskTally)
    for task, paths in _config_shards(folder, config, split).items():
        columns = ["messages"] if task else ["task", "messages"]
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH, columns=columns):
                if task:
                    tallies[task].add(batch.column("messages"))
                    continue
                tasks = batch.column("task")
                for name in pc.unique(tasks).to_pylist():
                    tallies[name].add(batch.column("messages").filter(pc.equal(tasks, name)))
    order = [t for t in TASKS if t in tallies] + sorted(t for t in tallies if t not in TASKS)
    results = {t: tallies[t].result(top) for t in order}
    result = {t: r for t, (r, _) in results.items()}
    out = {
        "folder": str(folder),
        "config": config or "the four task configs, train + test",
        "split": split if config else "train + test",
        "word_rule": "whitespace-separated tokens (len(text.split())), punctuation attached",
        "tasks": result,
        "total_qas": sum(r["qas"] for r in result.values()),
        "paper": PAPER,
    }
    if DETAIL_DESCRIPTION in result:
        out["mean_description_words"] = result[DETAIL_DESCRIPTION]["mean_answer_words"]
    return out, {t: trigrams for t, (_, trigrams) in results.items()}


def write_stats(
    folder: str | Path,
    config: str | None = None,
    output_dir: str | Path | None = None,
    top: int = 20,
    split: str = "train",
) -> dict:
    """compute_stats, then <output>/<name>.json and the two figures; returns the stats and the paths."""
    folder = Path(folder)
    stats, trigrams = _compute(folder, config, top, split)
    output_dir = Path(output_dir) if output_dir else folder / STATS_DIR
    output_dir.mkdir(parents=True, exist_ok=True)
    name = (config if split == "train" else f"{config}_{split}") if config else "tasks"
    paths = {
        "json": output_dir / f"{name}.json",
        "first_words": output_dir / f"{name}_first_words.png",
        "lengths": output_dir / f"{name}_lengths.png",
    }
    write_json_atomic(paths["json"], stats, indent=2)
    plot_first_words(trigrams, paths["first_words"])
    plot_lengths(stats, paths["lengths"])
    stats["written"] = {k: str(v) for k, v in paths.items()}
    return stats


def format_stats_table(stats: dict) -> str:
    head = f"{'task':20s} {'samples':>9s} {'QAs':>10s} {'q words':>8s} {'a words':>8s}  {'paper q / a':>13s}  top first word"
    lines = [head, "-" * len(head)]
    for task, r in stats["tasks"].items():
        paper = PAPER.get(task, {})
        ref = (
            f"{paper.get('mean_question_words', '-')} / {paper.get('mean_answer_words', '-')}"
            if paper
            else "-"
        )
        first = r["first_words"]["first_word"][:1]
        lines.append(
            f"{task:20s} {r['samples']:9,d} {r['qas']:10,d} {_fmt(r['mean_question_words']):>8s} "
            f"{_fmt(r['mean_answer_words']):>8s}  {ref:>13s}  "
            + (f"{first[0][0]} ({first[0][1]:.0%})" if first else "-")
        )
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _save(fig, path: Path) -> None:
    save_figure_atomic(fig, path, dpi=110, bbox_inches="tight")


def sunburst_rings(
    trigrams: Counter, first: int = 8, second: int = 4, third: int = 3
) -> list[list[tuple[str, int]]]:
    """Three rings of (label, count), inside out; each ring's wedges nest in the ring inside it.
    Beyond the top `first` first words (and top children per parent) counts go to an unlabelled
    remainder wedge (label "")."""
    by_first: dict[str, Counter] = defaultdict(Counter)
    for head, n in trigrams.items():
        words = head.split(" ")
        by_first[words[0]][" ".join(words[:3])] += n
    totals = Counter({w: sum(c.values()) for w, c in by_first.items()})
    inner, middle, outer = [], [], []
    ranked = [w for w, _ in totals.most_common(first)]
    rest = sum(n for w, n in totals.items() if w not in ranked)
    for word in ranked:
        inner.append((word, totals[word]))
        pairs: Counter = Counter()
        for head, n in by_first[word].items():
            pairs[" ".join(head.split(" ")[:2])] += n
        shown2 = [p for p, _ in pairs.most_common(second)]
        for pair in shown2:
            middle.append((pair, pairs[pair]))
            triples = Counter({h: n for h, n in by_first[word].items() if " ".join(h.split(" ")[:2]) == pair})
            shown3 = triples.most_common(third)
            outer += [(h, n) for h, n in shown3]
            outer.append(("", pairs[pair] - sum(n for _, n in shown3)))
        left = totals[word] - sum(pairs[p] for p in shown2)
        middle.append(("", left))
        outer.append(("", left))
    if rest:
        inner.append(("", rest))
        middle.append(("", rest))
        outer.append(("", rest))
    return [inner, middle, outer]


def plot_first_words(trigrams: dict[str, Counter], path: Path) -> None:
    """Figure 3 of the paper: questions of each task by their first three words, as nested rings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in QUESTION_TASKS if t in trigrams] or list(trigrams)
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(6.5 * max(len(tasks), 1), 6.5), squeeze=False)
    cmap = plt.cm.tab10
    for ax, task in zip(axes[0], tasks, strict=False):
        rings = sunburst_rings(trigrams[task])
        total = sum(n for _, n in rings[0]) or 1
        colors_inner = [
            cmap(i % 10) if label else (0.93, 0.93, 0.93, 1) for i, (label, _) in enumerate(rings[0])
        ]
        for depth, ring in enumerate(rings):
            if depth == 0:
                colors = colors_inner
            else:
                colors, parent, acc = [], 0, 0
                parent_bounds = np.cumsum([n for _, n in rings[0]])
                for label, n in ring:
                    while parent < len(parent_bounds) - 1 and acc >= parent_bounds[parent]:
                        parent += 1
                    base = colors_inner[parent]
                    alpha = 0.75 - 0.2 * depth
                    colors.append((*base[:3], alpha) if label else (0.96, 0.96, 0.96, 1))
                    acc += n
            labels = [
                (label.split(" ")[-1] if depth else label) if label and n / total >= 0.015 else ""
                for label, n in ring
            ]
            ax.pie(
                [max(n, 0) for _, n in ring],
                radius=0.45 + 0.27 * depth,
                labels=labels,
                labeldistance=0.78 if depth < 2 else 0.83,
                colors=colors,
                startangle=90,
                counterclock=False,
                wedgeprops={"width": 0.27, "edgecolor": "white", "linewidth": 0.6},
                textprops={"fontsize": 7 if depth else 9},
                rotatelabels=depth > 0,
            )
        ax.set_title(f"{task.replace('_', ' ')}\n({total:,} questions)", fontsize=11)
        ax.set(aspect="equal")
    fig.suptitle("Questions by their first three words (inner ring: first word)", fontsize=12)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


def plot_lengths(stats: dict, path: Path) -> None:
    """Mean question and answer words per task, with the paper's numbers as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(stats["tasks"])
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(tasks))
    for offset, key, label in (
        (-0.2, "mean_question_words", "question"),
        (0.2, "mean_answer_words", "answer"),
    ):
        values = [stats["tasks"][t][key] or 0 for t in tasks]
        bars = ax.bar(x + offset, values, 0.4, label=f"{label} (this dataset)")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        paper = [PAPER.get(t, {}).get(key) for t in tasks]
        ax.scatter(
            [x[i] + offset for i, v in enumerate(paper) if v],
            [v for v in paper if v],
            marker="_",
            s=400,
            color="black",
            zorder=3,
            label=f"{label} (paper)" if offset < 0 else None,
        )
    ax.set_yscale("log")
    ax.set_xticks(x, [t.replace("_", "\n") for t in tasks])
    ax.set_ylabel("mean words (log)")
    ax.set_title("Question and answer lengths (detail description: the description)")
    ax.legend(fontsize=8)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)
