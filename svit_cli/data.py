"""`svit build`, `svit push`, `svit export`, `svit demo`: the data commands (push takes training runs too).

Flags come from the library's dataclasses (BuildOptions, RecipeParams, ExportOptions) through
svit_cli/args.py: defaults and help texts live there, once.
"""

from __future__ import annotations

import json

from svit_cli.args import add_dataclass_flags, as_flag_type, dataclass_from_args
from svit_dataset.export_llava import ExportOptions
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_push import require_hub_repo_id
from svit_dataset.recipes.select import RecipeParams


def _build_hub_folder(args) -> None:
    from svit_cli.jobs.build import build_dataset_folder

    build_dataset_folder(
        dataclass_from_args(BuildOptions, args),
        dataclass_from_args(RecipeParams, args),
        push_to_hub=args.push_to_hub,
        private=args.private or None,
        print_fn=print,
    )


def _push(args) -> None:
    from svit_cli.jobs.push import push_folder

    print(push_folder(args.folder, args.repo_id, private=args.private or None))


def _export_llava_json(args) -> None:
    from svit_dataset.export_llava import export

    print(json.dumps(export(dataclass_from_args(ExportOptions, args)), indent=1))


def _main_job(args) -> None:
    from svit_cli.jobs.main_job import run_main_job

    run_main_job(args.output)


def register(sub) -> None:
    build = sub.add_parser(
        "build", help="released-format files -> Hub dataset folder (Parquet + README configs)"
    )
    add_dataclass_flags(build, BuildOptions)
    add_dataclass_flags(build.add_argument_group("recipe configs (defaults: the paper's)"), RecipeParams)
    build.add_argument(
        "--push-to-hub",
        metavar="ORG/NAME",
        type=as_flag_type(lambda value: require_hub_repo_id(value, "--push-to-hub"), "repo_id"),
        help="upload the result as a Hub dataset repo",
    )
    build.add_argument("--private", action="store_true", help="with --push-to-hub: a private repo")
    build.set_defaults(func=_build_hub_folder)

    push = sub.add_parser(
        "push",
        help="upload a built dataset folder or a `svit train` run, with its card (token: HF_TOKEN or `hf auth login`)",
    )
    push.add_argument("folder")
    push.add_argument("repo_id", metavar="ORG/NAME")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=_push)

    export = sub.add_parser("export", help="export to other training formats")
    export_sub = export.add_subparsers(dest="format", required=True)
    llava = export_sub.add_parser("llava", help="LLaVA-1.5 training JSON (upstream's format/llava-v1.5)")
    add_dataclass_flags(llava, ExportOptions)
    llava.set_defaults(func=_export_llava_json)

    demo = sub.add_parser(
        "demo", help="the main job on the bundled sample: build, train, eval, cards, Space (about 2 minutes)"
    )
    demo.add_argument("--output", default="out", help="the folder everything goes under (default: out)")
    demo.set_defaults(func=_main_job)
