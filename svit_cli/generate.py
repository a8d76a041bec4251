"""`svit generate`: SVIT-style data from VG + COCO annotations with any OpenAI-compatible LLM.

Flags come from the library's dataclasses (SceneSource, GenerationConfig, ClientSettings) through
svit_cli/args.py: defaults and help texts live there, once.
"""

from __future__ import annotations

import json

from svit_cli.args import add_dataclass_flags, dataclass_from_args
from svit_dataset.generation.batch_run import BatchSettings
from svit_dataset.generation.client import ClientSettings
from svit_dataset.generation.run import GenerationConfig, SceneSource


def _generate(args) -> None:
    from svit_dataset.generation.batch_run import generate_batch
    from svit_dataset.generation.output import collect_outputs
    from svit_dataset.generation.run import format_plan, generate, plan_generation

    if args.collect:
        print(json.dumps(collect_outputs(args.output_dir, overwrite=args.overwrite), indent=1))
        return
    client = dataclass_from_args(ClientSettings, args)
    config = dataclass_from_args(GenerationConfig, args, client=client)
    source = dataclass_from_args(SceneSource, args)
    batch = dataclass_from_args(BatchSettings, args)
    if args.dry_run:
        print(format_plan(plan_generation(source, config, batch.limits)))
        return
    summary = generate_batch(source, config, batch) if batch.active else generate(source, config)
    print(json.dumps(summary, indent=1))


def register(sub) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate SVIT-style data from VG + COCO annotations with an OpenAI-compatible LLM",
        description="Prompts of the SVIT paper, a resilient client, parsing, checks and regeneration; "
        "writes release-format <task>.json files that `svit build --input` takes. Resumable: run the "
        "same command again after an interruption. --batch sends through the Batch API at half the price; "
        "--write-batch/--read-batch trade JSONL batch files with vLLM and other engines. Key: $OPENAI_API_KEY "
        "(or --api-key-env).",
    )
    add_dataclass_flags(gen.add_argument_group("input (--annotations or --scenes)"), SceneSource)
    add_dataclass_flags(gen, GenerationConfig, skip=("client",))
    add_dataclass_flags(gen.add_argument_group("endpoint"), ClientSettings)
    add_dataclass_flags(
        gen.add_argument_group("Batch API and batch files (docs: README, Generate at scale)"), BatchSettings
    )
    gen.add_argument(
        "--dry-run", action="store_true", help="render prompts, count requests, tokens, cost; send nothing"
    )
    gen.add_argument(
        "--collect", action="store_true", help="only rewrite <task>.json from the ledgers in --output"
    )
    gen.set_defaults(func=_generate)
