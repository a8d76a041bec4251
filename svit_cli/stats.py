"""`svit stats`: the paper's section 3.4 statistics of a built dataset (recipes build with `svit build`)."""

from __future__ import annotations


def _stats(args) -> None:
    from svit_dataset.stats import format_stats_table, write_stats

    stats = write_stats(args.folder, args.config, args.output, args.top, args.split)
    print(format_stats_table(stats))
    for kind, path in stats["written"].items():
        print(f"{kind}: {path}")


def register(sub) -> None:
    stats = sub.add_parser(
        "stats", help="statistics of a built dataset (paper 3.4): QAs, mean words, first-words figure"
    )
    stats.add_argument("folder", metavar="OUT", help="a folder written by `svit build`")
    stats.add_argument(
        "--config",
        help="one config (e.g. full, core_150k), its files as its README lists them; "
        "default: the four task configs, all splits",
    )
    stats.add_argument("--split", default="train", help="with --config: the split (default: train)")
    stats.add_argument("--output", help="where to write the JSON and PNGs (default: OUT/stats)")
    stats.add_argument("--top", type=int, default=20, help="first words listed per level in the JSON")
    stats.set_defaults(func=_stats)
