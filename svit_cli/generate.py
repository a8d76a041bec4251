"""`svit generate`: SVIT-style data from VG + COCO annotations with any OpenAI-compatible LLM."""

from __future__ import annotations

import json

from svit_dataset.schema import TASKS


def _generate(args) -> None:
    from svit_dataset.generation.client import ClientSettings
    from svit_dataset.generation.output import collect_outputs
    from svit_dataset.generation.run import (
        GenerationConfig,
        SceneSource,
        format_plan,
        generate,
        parse_shard,
        plan_generation,
    )

    if args.collect:
        print(json.dumps(collect_outputs(args.output, overwrite=args.overwrite), indent=1))
        return
    settings = ClientSettings(
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        rpm=args.rpm,
        tpm=args.tpm,
        timeout=args.timeout,
        max_retries=args.max_retries,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        max_tokens_field=args.max_tokens_field,
    )
    config = GenerationConfig(
        output_dir=args.output,
        client=settings,
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
        concurrency=args.concurrency,
        max_images=args.max_images,
        shard=parse_shard(args.shard),
        templates_dir=args.templates,
        max_prompt_tokens=args.max_prompt_tokens,
        max_attempts=args.max_attempts,
        iou_threshold=args.iou_threshold,
        seed=args.seed,
        prices=args.prices,
        price_input=args.price_input,
        price_output=args.price_output,
        overwrite=args.overwrite,
    )
    source = SceneSource(
        annotations=args.annotations, coco_captions=tuple(args.coco_captions or ()), scenes=args.scenes
    )
    if args.dry_run:
        print(format_plan(plan_generation(source, config)))
        return
    summary = generate(source, config)
    print(json.dumps(summary, indent=1))


def register(sub) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate SVIT-style data from VG + COCO annotations with an OpenAI-compatible LLM",
        description="Prompts of the SVIT paper, a resilient client, parsing, checks and regeneration; "
        "writes release-format <task>.json files that `svit build --input` takes. Resumable: run the "
        "same command again after an interruption. Key: $OPENAI_API_KEY (or --api-key-env).",
    )
    source = gen.add_argument_group("input (one of)")
    source.add_argument(
        "--annotations",
        metavar="VG_DIR",
        help="folder with image_data.json, objects.json, region_descriptions.json",
    )
    source.add_argument("--scenes", metavar="FILE", help="scenes JSONL with normalized boxes (see docs)")
    gen.add_argument(
        "--coco-captions",
        metavar="FILE",
        action="append",
        help="COCO captions_train2017.json (repeat for captions_val2017.json); linked by VG's coco_id",
    )
    gen.add_argument("--output", required=True, metavar="DIR", help="output folder (also the resume ledger)")
    gen.add_argument(
        "--overwrite",
        action="store_true",
        help="replace release files already in --output that no svit generate run wrote",
    )
    gen.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all four)")
    gen.add_argument("--model", default="gpt-4o-mini", help="model name at the endpoint")
    gen.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM)")
    gen.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    gen.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    gen.add_argument("--rpm", type=float, help="requests-per-minute cap (retries included)")
    gen.add_argument("--tpm", type=float, help="tokens-per-minute cap (estimated, corrected by usage)")
    gen.add_argument("--max-images", type=int, help="only the first N images (after --shard)")
    gen.add_argument("--shard", metavar="i/n", help="this machine's share of the images, i in 0..n-1")
    gen.add_argument(
        "--dry-run", action="store_true", help="render prompts, count requests, tokens, cost; send nothing"
    )
    gen.add_argument(
        "--collect", action="store_true", help="only rewrite <task>.json from the ledgers in --output"
    )
    gen.add_argument(
        "--templates", metavar="DIR", help="your prompt templates (a copy of templates/paper-v1)"
    )
    gen.add_argument(
        "--max-prompt-tokens", type=int, default=6000, help="token budget of a prompt (trim rule in docs)"
    )
    gen.add_argument(
        "--max-attempts", type=int, default=3, help="responses per item before it counts as failed"
    )
    gen.add_argument(
        "--iou-threshold", type=float, default=0.5, help="referring boxes must match a scene box this well"
    )
    gen.add_argument("--temperature", type=float, help="sampling temperature (default: the endpoint's)")
    gen.add_argument("--max-tokens", type=int, default=2048, help="completion token limit per request")
    gen.add_argument(
        "--max-tokens-field",
        default="max_tokens",
        choices=("max_tokens", "max_completion_tokens"),
        help="request field of that limit (newer OpenAI models want max_completion_tokens)",
    )
    gen.add_argument("--timeout", type=float, default=120.0, help="seconds per request before a retry")
    gen.add_argument("--max-retries", type=int, default=6, help="retries per request on 429/5xx/timeouts")
    gen.add_argument("--seed", type=int, default=0, help="run seed (per-request seeds, detail instructions)")
    gen.add_argument(
        "--prices", metavar="FILE", help='price table JSON {"models": {name: {"input", "output"}}}'
    )
    gen.add_argument("--price-input", type=float, help="USD per 1M prompt tokens for --model")
    gen.add_argument("--price-output", type=float, help="USD per 1M completion tokens for --model")
    gen.set_defaults(func=_generate)
