"""`svit model build | convert | export-llava | demo`: the SVIT-LLaVA checkpoint commands."""

from __future__ import annotations


def _ranged(name: str):
    """An argparse type for the numeric flag `name`, checked against the library's range for it (out of range:
    argparse's one-line error naming the flag, exit 2). The check imports on use: `svit --help` stays quick."""

    def convert(text: str):
        from svit_model.training.arguments import MODEL_FLAG_RANGES, range_type

        return range_type(MODEL_FLAG_RANGES[name])(text)

    convert.__name__ = "int"
    return convert


def _dtype(name: str | None):
    if name is None:
        return None
    import torch

    return getattr(torch, name)


def _build_model(args) -> None:
    from svit_model.building import build_svit_llava

    build_svit_llava(
        args.vision,
        args.llm,
        args.output,
        pad=not args.no_pad,
        seed=args.seed,
        dtype=_dtype(args.dtype),
        overwrite=args.overwrite,
    )
    print(f"SVIT-LLaVA written to {args.output}")


def _convert(args) -> None:
    from svit_model.convert import convert_upstream_checkpoint

    convert_upstream_checkpoint(
        args.input,
        args.output,
        base_model=args.base_model,
        vision_tower=args.vision_tower,
        dtype=_dtype(args.dtype),
        overwrite=args.overwrite,
    )
    print(f"SVIT-LLaVA written to {args.output}")


def _export_stock_llava(args) -> None:
    from svit_model.stock_llava import export_llava_checkpoint

    written = export_llava_checkpoint(args.input, args.output, overwrite=args.overwrite)
    print(f"llava checkpoint written to {written}")


def _grounded_answer(args) -> None:
    from svit_cli.jobs.grounded_answer import run_grounded_answer

    run_grounded_answer(seed=args.seed, steps=args.steps, drawing=args.drawing, overwrite=args.overwrite)


def _tiny(args) -> None:
    from svit_model.tiny import save_tiny_svit_llava

    written = save_tiny_svit_llava(args.output, seed=args.seed, overwrite=args.overwrite)
    print(f"tiny SVIT-LLaVA written to {written}")


def _merge(args) -> None:
    from svit_model.training.checkpoint import merge_lora_run

    written = merge_lora_run(args.input, args.output, base_model=args.base_model, overwrite=args.overwrite)
    print(f"merged SVIT-LLaVA written to {written}")


def _add_output_flags(parser) -> None:
    """`--output` and `--overwrite`, as every command that writes a checkpoint folder takes them."""
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def register(sub) -> None:
    model = sub.add_parser("model", help="SVIT-LLaVA checkpoints: build, convert, export, tiny, merge, demo")
    model_sub = model.add_subparsers(dest="model_command", required=True)

    build = model_sub.add_parser("build", help="a fresh SVIT-LLaVA from a CLIP and an LLM checkpoint")
    build.add_argument(
        "--vision", required=True, help="CLIP checkpoint, e.g. openai/clip-vit-large-patch14-336"
    )
    build.add_argument("--llm", required=True, help="Llama-family LLM, e.g. lmsys/vicuna-7b-v1.5")
    _add_output_flags(build)
    build.add_argument(
        "--no-pad", action="store_true", help="resize and center-crop instead of LLaVA-1.5's pad"
    )
    build.add_argument(
        "--seed", type=_ranged("seed"), default=0, help="seed of the projector's initialisation"
    )
    build.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], help="default: the checkpoints'"
    )
    build.set_defaults(func=_build_model)

    convert = model_sub.add_parser(
        "convert", help="upstream LLaVA-1.5 / SVIT-v1.5 checkpoint (full or LoRA) -> ours"
    )
    convert.add_argument(
        "--input", required=True, help="upstream folder (config.json + shards, or LoRA adapter)"
    )
    _add_output_flags(convert)
    convert.add_argument("--base-model", help="LLM a LoRA adapter was trained on (default: the adapter's)")
    convert.add_argument("--vision-tower", help="CLIP checkpoint (default: the config's mm_vision_tower)")
    convert.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], help="default: the checkpoint's"
    )
    convert.set_defaults(func=_convert)

    export = model_sub.add_parser(
        "export-llava", help="write a plain `llava` checkpoint (stock transformers, vLLM)"
    )
    export.add_argument("--input", required=True, help="SVIT-LLaVA checkpoint folder")
    _add_output_flags(export)
    export.set_defaults(func=_export_stock_llava)

    tiny = model_sub.add_parser(
        "tiny",
        help="a tiny SVIT-LLaVA (2-layer CLIP + 2-layer Llama) for CPU: the tiny recipes start from it",
    )
    _add_output_flags(tiny)
    tiny.add_argument("--seed", type=_ranged("seed"), default=0, help="seed of the random weights")
    tiny.set_defaults(func=_tiny)

    merge = model_sub.add_parser(
        "merge", help="merge a LoRA run (adapter + projector) into a full checkpoint"
    )
    merge.add_argument("--input", required=True, help="LoRA run folder (or one of its checkpoint-* folders)")
    _add_output_flags(merge)
    merge.add_argument("--base-model", help="the base model (default: the one the adapter config names)")
    merge.set_defaults(func=_merge)

    demo = model_sub.add_parser(
        "demo", help="a tiny SVIT-LLaVA answers with grounded boxes on a bundled image"
    )
    demo.add_argument("--seed", type=_ranged("seed"), default=0)
    demo.add_argument(
        "--steps",
        type=_ranged("steps"),
        default=60,
        help="optimizer steps teaching the tiny model its answer",
    )
    demo.add_argument("--drawing", help="write the image with the parsed boxes drawn here (PNG)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing --drawing PNG")
    demo.set_defaults(func=_grounded_answer)
