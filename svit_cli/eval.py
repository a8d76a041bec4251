"""`svit eval <benchmark> | mme-score | card`: score checkpoints the way the reference tools do.

One sub-command per registered benchmark (svit_model.evaluation.benchmark: mme, pope, refcoco, svit-referring,
and grounding, the former spelling of the last two), its help line and flags from the benchmark (its options
dataclass, through svit_cli/args.py). Importing them takes seconds, so, as `svit train`, the `eval` parser takes
the rest of the command line and builds its own parser only when `svit eval` runs: other commands start as fast
as before.
"""

from __future__ import annotations

import argparse

from svit_cli.args import add_dataclass_flags, add_passthrough_command, dataclass_from_args


def _benchmark(name: str):
    def run(args) -> None:
        from svit_model.evaluation.run import BENCHMARKS, run_eval

        run_eval(name, dataclass_from_args(BENCHMARKS[name].options, args), print_fn=print)

    return run


def _mme_score(args) -> None:
    from svit_model.evaluation.mme import score_mme_folder, scores_text

    print(scores_text(score_mme_folder(args.results_dir, args.output, args.subtasks, args.overwrite)))


def _card(args) -> None:
    from hub_cards.model_card import add_eval_results
    from svit_model.evaluation.results import check_card_folder

    check_card_folder(args.model_dir, args.results)
    print(f"model card written: {add_eval_results(args.model_dir, args.results, force=args.force)}")


def eval_parser() -> argparse.ArgumentParser:
    from svit_model.evaluation.run import BENCHMARKS

    parser = argparse.ArgumentParser(prog="svit eval", description="evaluate SVIT-LLaVA checkpoints")
    eval_sub = parser.add_subparsers(dest="eval_command", required=True)
    for name, benchmark in sorted(BENCHMARKS.items()):
        command = eval_sub.add_parser(name, help=benchmark.help)
        add_dataclass_flags(command, benchmark.options)
        command.set_defaults(func=_benchmark(name))

    score = eval_sub.add_parser(
        "mme-score", help="score an MME results folder as the official calculation.py"
    )
    score.add_argument(
        "results_dir", help="folder with one <subtask>.txt per subtask (image, question, gt, pred)"
    )
    score.add_argument(
        "--output",
        required=True,
        help="scores JSON file (outside the results folder; new unless --overwrite)",
    )
    score.add_argument("--subtasks", help="comma-separated subtasks to score (default: all 14)")
    score.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output (only a scores file this command wrote)",
    )
    score.set_defaults(func=_mme_score)

    card = eval_sub.add_parser("card", help="add results.json files to a model folder's card as model-index")
    card.add_argument(
        "results", nargs="+", help="results.json files of svit eval runs, or lmms-eval results files"
    )
    card.add_argument(
        "--model-dir",
        required=True,
        help="model folder whose README.md gets the model-index (not a dataset's)",
    )
    card.add_argument(
        "--force",
        action="store_true",
        help="attach results.json files that name another model (its results under another name)",
    )
    card.set_defaults(func=_card)
    return parser


def _run(args) -> None:
    parsed = eval_parser().parse_args(args.argv)
    parsed.func(parsed)


def register(sub) -> None:
    add_passthrough_command(
        sub,
        "eval",
        "evaluate a checkpoint: svit eval BENCHMARK | mme-score | card ... (`svit eval --help` lists the benchmarks)",
        _run,
    )
