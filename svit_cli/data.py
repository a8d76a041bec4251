"""`svit build`, `svit push`, `svit export`, `svit demo`: the data commands."""

from __future__ import annotations

import json


def _recipe_params(args):
    from svit_dataset.recipes.select import RecipeParams, parse_split

    options = {
        "per_task": args.per_task,
        "yes_per_no": args.yes_per_no,
        "seed": args.recipe_seed,
        "keep_fraction": args.keep_fraction,
        "informativeness": args.informativeness,
        "diversity_scope": args.diversity_scope,
        "core_size": args.core_size,
        "concepts": args.concepts,
        "mix_image_prefix": args.mix_image_prefix,
    }
    if args.core_split:
        options["core_split"] = parse_split(args.core_split)
    return RecipeParams(**options)


def _build(args) -> None:
    from svit_dataset.hub_layout import build_hub_dataset, push_hub_dataset, recipe_table, report_table

    report = build_hub_dataset(
        args.input,
        args.output,
        args.configs,
        images_dir=args.images,
        image_data=args.image_data,
        test_ids=args.test_ids,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        max_bad_fraction=args.max_bad_fraction,
        max_shard_size=args.max_shard_size,
        num_proc=args.num_proc,
        overwrite=args.overwrite,
        recipe=_recipe_params(args),
        llava_mix=args.llava_mix,
        llava_instruct=args.llava_instruct,
        mix_llava_json=args.mix_llava_json,
    )
    print(report_table(report))
    if "recipes" in report:
        print(recipe_table(args.output))
    print(json.dumps(report["configs"], indent=1))
    if args.push_to_hub:
        print(push_hub_dataset(args.output, args.push_to_hub, private=args.private or None))


def _push(args) -> None:
    from svit_dataset.hub_layout import push_hub_dataset

    print(push_hub_dataset(args.folder, args.repo_id, private=args.private or None))


def _export_llava(args) -> None:
    from svit_dataset.export_llava import export_llava

    result = export_llava(
        args.input,
        args.output,
        images_dir=args.images,
        image_data=args.image_data,
        tasks=args.tasks.split(","),
        exclude_ids=args.exclude_ids,
        seed=args.seed,
        image_prefix=args.image_prefix,
        max_bad_fraction=args.max_bad_fraction,
        overwrite=args.overwrite,
    )
    print(json.dumps(result, indent=1))


def _demo(args) -> None:
    from svit_model.demo import run_main_job

    run_main_job(args.output)


def register(sub) -> None:

    build = sub.add_parser(
        "build", help="released-format files -> Hub dataset folder (Parquet + README configs)"
    )
    build.add_argument("--input", required=True, help="folder with <task>.json in the released SVIT format")
    build.add_argument(
        "--output", required=True, help="output folder (name it `svit` to load_dataset('svit', ...))"
    )
    build.add_argument(
        "--configs",
        default="all",
        help="comma-separated config names; 'all' = every subset, 'recipes' = svit_80k, svit_80k_d, "
        "svit_80k_b, core_150k, mix_665k (e.g. --configs all,recipes)",
    )
    build.add_argument(
        "--images", help="Visual Genome folder holding VG_100K/ and VG_100K_2/: embeds image bytes"
    )
    build.add_argument("--image-data", help="Visual Genome image_data.json: image sizes without the images")
    build.add_argument(
        "--test-ids", help="held-out image ids, one a line (default: a seeded share of images)"
    )
    build.add_argument("--test-fraction", type=float, default=0.1)
    build.add_argument("--split-seed", type=int, default=0)
    build.add_argument(
        "--max-bad-fraction", type=float, default=0.001, help="malformed records per file that fail it"
    )
    build.add_argument("--max-shard-size", default="500MB")
    build.add_argument(
        "--num-proc", type=int, help="processes (default: one per task up to the CPUs for large inputs)"
    )
    build.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    recipe = build.add_argument_group("recipe configs (defaults: the paper's)")
    recipe.add_argument("--per-task", type=int, default=20_000, help="svit_80k*: samples per task")
    recipe.add_argument("--yes-per-no", type=float, default=8.0, help="target Y:N of the balance step")
    recipe.add_argument("--recipe-seed", type=int, default=0)
    recipe.add_argument(
        "--keep-fraction", type=float, default=0.5, help="diversity: share of the most informative kept"
    )
    recipe.add_argument(
        "--informativeness",
        choices=("keys", "concepts"),
        default="keys",
        help="score: distinct concept key words matched (default) or concepts covered",
    )
    recipe.add_argument(
        "--diversity-scope",
        choices=("task", "train"),
        default="task",
        help="cut the less informative part per task (default) or over SVIT-train as a whole",
    )
    recipe.add_argument("--core-size", type=int, default=157_712, help="core_150k: samples")
    recipe.add_argument(
        "--core-split", help="core_150k: task=weight,... (default: equal shares of the four tasks)"
    )
    recipe.add_argument("--concepts", help="your concept set: JSON/YAML {concept: [key words]}")
    recipe.add_argument("--llava-mix", help="mix_665k: llava_v1_5_mix665k.json")
    recipe.add_argument("--llava-instruct", help="mix_665k: llava_instruct_150k.json (to find its records)")
    recipe.add_argument("--mix-llava-json", help="mix_665k: also write it as LLaVA-1.5 training JSON here")
    recipe.add_argument(
        "--mix-image-prefix", default="vg/", help="mix_665k: folder of VG images in LLaVA's layout"
    )
    build.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the result as a Hub dataset repo")
    build.add_argument("--private", action="store_true")
    build.set_defaults(func=_build)

    push = sub.add_parser(
        "push", help="upload a built folder to the Hub (token: HF_TOKEN or `hf auth login`)"
    )
    push.add_argument("folder")
    push.add_argument("repo_id", metavar="ORG/NAME")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=_push)

    export = sub.add_parser("export", help="export to other training formats")
    export_sub = export.add_subparsers(dest="format", required=True)
    llava = export_sub.add_parser("llava", help="LLaVA-1.5 training JSON (upstream's format/llava-v1.5)")
    llava.add_argument("--input", required=True, help="folder with <task>.json in the released SVIT format")
    llava.add_argument("--output", required=True, help="output .json file")
    llava.add_argument("--images", help="Visual Genome folder (image sizes are read from the files)")
    llava.add_argument("--image-data", help="Visual Genome image_data.json (image sizes)")
    llava.add_argument(
        "--tasks",
        default=",".join(("conversation", "complex_reasoning", "referring_qa", "detail_description")),
    )
    llava.add_argument("--exclude-ids", help="image ids to leave out (e.g. the held-out test list)")
    llava.add_argument("--image-prefix", default="", help="prefix of the `image` paths, e.g. 'vg/'")
    llava.add_argument("--seed", type=int, default=0, help="seed of the referring-question suffixes")
    llava.add_argument("--max-bad-fraction", type=float, default=0.001)
    llava.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    llava.set_defaults(func=_export_llava)

    demo = sub.add_parser("demo", help="the main job on the bundled sample")
    demo.add_argument("--output", default="out/svit")
    demo.set_defaults(func=_demo)
