"""Recipe reports: what each recipe took and dropped, its Yes/No balance and informativeness, as
JSON-ready dicts, a printed table, and two figures (the paper's figure 5 kind, concept coverage).

Informativeness and concept coverage are measured on the samples as drawn, before the balance step
drops "Yes" QAs from some of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svit_dataset.files import save_figure_atomic, write_json_atomic
from svit_dataset.recipes import yesno
from svit_dataset.recipes.concepts import ConceptSet
from svit_dataset.recipes.features import TaskFeatures
from svit_dataset.recipes.select import Selection

FIGURE_YES_NO = "yes_no.png"
FIGURE_CONCEPTS = "concepts.png"


def distribution(scores: np.ndarray) -> dict:
    """Histogram (value -> samples) and summary of integer scores."""
    if scores.size == 0:
        return {"samples": 0, "histogram": {}, "mean": None, "quartiles": None}
    values, counts = np.unique(scores, return_counts=True)
    return {
        "samples": int(scores.size),
        "histogram": {int(v): int(c) for v, c in zip(values, counts, strict=True)},
        "mean": round(float(scores.mean()), 3),
        "quartiles": [float(q) for q in np.percentile(scores, [25, 50, 75])],
    }


def coverage(masks: np.ndarray, concept_set: ConceptSet) -> dict:
    """Share of samples covering each concept."""
    n = max(masks.size, 1)
    return {c: round(float(((masks >> i) & 1).sum()) / n, 4) for i, c in enumerate(concept_set.names)}


def _gather(features: dict[str, TaskFeatures], rows: dict[str, np.ndarray], attr: str) -> np.ndarray:
    parts = []
    for task, r in rows.items():
        source = features[task]
        value = getattr(source.info, attr) if hasattr(source.info, attr) else getattr(source, attr)
        parts.append(value[r])
    return np.concatenate(parts) if parts else np.zeros(0)


def train_analysis(features: dict[str, TaskFeatures], concept_set: ConceptSet, score: str) -> dict:
    """SVIT-train as the recipes see it: per task, QAs, Yes/No counts, informativeness, coverage."""
    out = {}
    for task, f in features.items():
        out[task] = {
            "samples": f.n,
            "yes_no": yesno.summary(int(f.yes.sum()), int(f.no.sum()), int(f.n_qas.sum())),
            "informativeness": distribution(f.info.score(score)),
            "concept_coverage": coverage(f.info.concept_mask, concept_set),
        }
    return out


def recipe_report(
    selection: Selection,
    features: dict[str, TaskFeatures],
    concept_set: ConceptSet,
    params_dict: dict,
) -> dict:
    """The JSON report of one SVIT recipe."""
    facts = selection.facts
    rows = selection.rows
    qas_before = int(sum(features[t].n_qas[r].sum() for t, r in rows.items()))
    yes_before = int(sum(features[t].yes[r].sum() for t, r in rows.items()))
    no = int(sum(features[t].no[r].sum() for t, r in rows.items()))
    dropped = sum(len(q) for d in selection.dropped_qas.values() for q in d.values())
    balance = facts.get("balance")
    # before: the draw as it was before the balance step (for other recipes, the selection itself)
    drawn = balance["yes_no_before"] if balance else {"yes": yes_before, "no": no, "qas": qas_before}
    before = yesno.summary(drawn["yes"], drawn["no"], drawn["qas"])
    after = yesno.summary(yes_before - dropped, no, qas_before - dropped)
    score = params_dict["informativeness"]
    report = {
        "config": selection.name,
        "steps": facts["steps"],
        "params": params_dict,
        "size": facts["size"],
        "total": selection.size,
        "asked": facts["asked"],
        "pool": facts["pool"],
        "short": facts["short"],
        "qas": qas_before - dropped,
        "yes_no_before": before,
        "yes_no_after": after,
        "informativeness": {
            "score": score,
            "selected": distribution(_gather(features, rows, score)),
        },
        "concept_coverage": coverage(_gather(features, rows, "concept_mask").astype(np.uint32), concept_set),
        "dropped": _dropped(facts),
        "notes": facts.get("notes", []),
    }
    if "diversity" in facts:
        report["diversity"] = facts["diversity"]
    if balance:
        report["balance"] = balance
    return report


def _dropped(facts: dict) -> dict:
    """What left the recipe, and why."""
    out = {}
    if "diversity" in facts:
        d = facts["diversity"]
        out["less_informative"] = {
            "samples": sum(d["dropped"].values()),
            "why": f"below the top {d['keep_fraction']:.0%} by informativeness ({d['score']}, per {d['scope']})",
            "by_task": d["dropped"],
        }
    if "balance" in facts:
        b = facts["balance"]
        out["yes_qas"] = {
            "qas": b["yes_qas_dropped"],
            "why": f"random 'Yes' QAs dropped to reach Y:N = {b['target_yes_per_no']:g}",
        }
        if b["samples_emptied"]:
            out["emptied_samples"] = {
                "samples": b["samples_emptied"],
                "refilled": b["samples_refilled"],
                "why": "every QA of the sample was a dropped 'Yes'; replaced by the next random sample",
            }
    return out


def mix_report(core: dict, counts: dict, writer_facts: dict, params_dict: dict) -> dict:
    total = writer_facts["rows"]
    return {
        "config": "mix_665k",
        "steps": ["core_150k", "replace LLaVA-Instruct-150K in LLaVA-v1.5-mix-665K"],
        "params": params_dict,
        "total": total,
        "core_150k": core["total"],
        "llava": counts,
        "by_source": writer_facts["by_source"],
        "yes_no_after": core["yes_no_after"],
        "notes": [
            f"{counts['replaced']:,} LLaVA-Instruct-150K records found in the mix (of "
            f"{counts['llava_instruct_records']:,} in the instruct file) and replaced by "
            f"{core['total']:,} core_150k samples"
        ]
        + core.get("notes", []),
    }


def recipe_summary(report: dict) -> dict:
    """The few numbers of a recipe report that go into build_report.json and the card."""
    if report["config"] == "mix_665k":
        return {
            "total": report["total"],
            "core_150k": report["core_150k"],
            "llava_instruct_replaced": report["llava"]["replaced"],
            "llava_kept": report["llava"]["kept_llava"],
            "notes": report["notes"],
        }
    return {
        "size": report["size"],
        "total": report["total"],
        "yes_per_no_before": report["yes_no_before"]["yes_per_no"],
        "yes_per_no_after": report["yes_no_after"]["yes_per_no"],
        "mean_informativeness": report["informativeness"]["selected"]["mean"],
        "dropped": {k: v.get("samples", v.get("qas")) for k, v in report["dropped"].items()},
        "notes": report["notes"],
    }


def format_recipe_table(reports: dict[str, dict]) -> str:
    """One line per recipe: sizes per task, Y:N before -> after, drops."""
    head = f"{'config':12s} {'conv':>7s} {'cplx':>7s} {'refer':>7s} {'detail':>7s} {'total':>8s}  {'Y:N before':>10s} -> {'after':>6s}  dropped"
    lines = [head, "-" * len(head)]
    for name, r in reports.items():
        if name == "mix_665k":
            lines.append(
                f"{name:12s} {'':>31s} {r['total']:8,d}  replaced {r['llava']['replaced']:,} LLaVA-Instruct "
                f"records by {r['core_150k']:,} core_150k samples; kept {r['llava']['kept_llava']:,} LLaVA records"
            )
            continue
        size = r["size"]
        cells = " ".join(
            f"{size.get(t, 0):7,d}"
            for t in ("conversation", "complex_reasoning", "referring_qa", "detail_description")
        )
        dropped = (
            "; ".join(
                f"{k.replace('_', ' ')} {v.get('samples', v.get('qas', 0)):,}"
                for k, v in r["dropped"].items()
            )
            or "-"
        )
        lines.append(
            f"{name:12s} {cells} {r['total']:8,d}  {_ratio(r['yes_no_before']):>10s} -> "
            f"{_ratio(r['yes_no_after']):>6s}  {dropped}"
        )
        lines += [f"{'':12s} note: {note}" for note in r["notes"]]
    return "\n".join(lines)


def _ratio(summary: dict) -> str:
    r = summary["yes_per_no"]
    return "-" if r is None else f"{r:.2f}"


def write_reports(folder: Path, reports: dict[str, dict], train: dict) -> list[Path]:
    """recipes/<config>.json, recipes/train.json and the two figures; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, report in {**reports, "train": train}.items():
        written.append(_write_json(folder / f"{name}.json", report))
    written.append(plot_yes_no(reports, train, folder / FIGURE_YES_NO))
    written.append(plot_concepts(reports, train, folder / FIGURE_CONCEPTS))
    return written


def _write_json(path: Path, data: dict) -> Path:
    write_json_atomic(path, data, indent=2)
    return path


def _save(fig, path: Path) -> Path:
    return save_figure_atomic(fig, path, dpi=110, bbox_inches="tight")


def plot_yes_no(reports: dict[str, dict], train: dict, path: Path) -> Path:
    """Paper figure 5 kind: Y:N of each subset and recipe against the share of "Yes" among the
    Yes/No answers, with arrows from before to after the balance step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    grid = np.logspace(-1, 2, 200)
    ax.plot(grid, 100 * grid / (1 + grid), color="0.85", lw=1, zorder=0, label="share = r / (1 + r)")
    markers = iter("sDvP^<>")
    for task, t in train.items():
        s = t["yes_no"]
        if s["yes_per_no"] is not None:
            ax.scatter(
                s["yes_per_no"],
                100 * s["yes_share_of_yes_no"],
                marker=next(markers, "s"),
                color="0.45",
                label=f"SVIT-train {task}: Y:N {s['yes_per_no']:.2f}",
            )
    targets = set()
    for i, (name, r) in enumerate((n, r) for n, r in reports.items() if "yes_no_before" in r):
        color = plt.cm.tab10(i)
        b, a = r["yes_no_before"], r["yes_no_after"]
        if b["yes_per_no"] is None:
            continue
        label = f"{name}: Y:N {b['yes_per_no']:.2f}" + (
            f" -> {a['yes_per_no']:.2f}" if a["yes_per_no"] is not None and a != b else ""
        )
        ax.scatter(
            b["yes_per_no"], 100 * b["yes_share_of_yes_no"], color=color, marker="o", s=50, label=label
        )
        if a["yes_per_no"] is not None and a != b:
            ax.scatter(a["yes_per_no"], 100 * a["yes_share_of_yes_no"], color=color, marker="*", s=120)
            ax.annotate(
                "",
                (a["yes_per_no"], 100 * a["yes_share_of_yes_no"]),
                (b["yes_per_no"], 100 * b["yes_share_of_yes_no"]),
                arrowprops={"arrowstyle": "->", "color": color},
            )
        if "balance" in r:
            targets.add(r["balance"]["target_yes_per_no"])
    for target in sorted(targets):
        ax.axvline(target, color="0.3", ls="--", lw=0.8)
        ax.text(target, 5, f" target Y:N = {target:g}", fontsize=8, color="0.3")
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel('"Yes" : "No" answers in the training data (log)')
    ax.set_ylabel('share of "Yes" among Yes/No answers (%)')
    ax.set_title("Yes/No balance (paper figure 5): recipes before (o) and after (*) the balance step")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_concepts(reports: dict[str, dict], train: dict, path: Path) -> Path:
    """Concept coverage (share of samples mentioning each concept) of SVIT-train and each recipe,
    and the informativeness histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipes = {n: r for n, r in reports.items() if "concept_coverage" in r}
    train_samples = sum(t["samples"] for t in train.values()) or 1
    concepts = list(next(iter(train.values()))["concept_coverage"]) if train else []
    train_cov = {
        c: sum(t["concept_coverage"][c] * t["samples"] for t in train.values()) / train_samples
        for c in concepts
    }
    series = {"SVIT-train": train_cov} | {n: r["concept_coverage"] for n, r in recipes.items()}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(concepts))
    for i, (name, cov) in enumerate(series.items()):
        left.bar(x + i * width, [100 * cov[c] for c in concepts], width, label=name)
    left.set_xticks(x + width * (len(series) - 1) / 2, concepts, rotation=15)
    left.set_ylabel("samples covering the concept (%)")
    left.set_title("Concept coverage")
    left.legend(fontsize=8)
    hist_train: dict[int, int] = {}
    for t in train.values():
        for v, c in t["informativeness"]["histogram"].items():
            hist_train[int(v)] = hist_train.get(int(v), 0) + c
    histograms = {"SVIT-train": hist_train} | {
        n: r["informativeness"]["selected"]["histogram"] for n, r in recipes.items()
    }
    for name, hist in histograms.items():
        if not hist:
            continue
        values = sorted(int(v) for v in hist)
        total = sum(hist.values())
        right.step(
            values, [100 * hist.get(v, hist.get(str(v), 0)) / total for v in values], where="mid", label=name
        )
    score = next(iter(recipes.values()))["informativeness"]["score"] if recipes else "keys"
    right.set_xlabel(f"informativeness ({score})")
    right.set_ylabel("samples (%)")
    right.set_title("Informativeness distribution")
    right.legend(fontsize=8)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
