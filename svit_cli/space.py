"""`svit space RUN OUT` and `svit app --model CKPT`: the grounded-chat Space, written as a folder or served."""

from __future__ import annotations

# Unset flags are left out of the call: the defaults live in the library (svit_model/space/app.py, AppSettings),
# which is imported only when the command runs (it imports transformers).


def _set(args) -> dict:
    return {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}


def _space(args) -> None:
    from svit_model.space import write_space

    written = write_space(
        args.run,
        args.out,
        overwrite=args.overwrite,
        title=args.title,
        license=args.license,
        base_model=args.base_model,
        model_id=args.model_id,
        **_set(args),
    )
    print(
        f"Space folder written to {written}: run it with `pip install -r requirements.txt && python app.py`"
    )


def _app(args) -> None:
    from svit_model.space import serve

    serve(args.model, host=args.host, port=args.port, title=args.title, **_set(args))


def _add_app_flags(parser) -> None:
    parser.add_argument("--title", help="the app's title (default: the app's)")
    parser.add_argument(
        "--max-new-tokens", type=int, help="longest answer in tokens, greedy decoding (default: the app's)"
    )


def register(sub) -> None:
    space = sub.add_parser(
        "space",
        help="write a ready Hub Space folder (Gradio grounded chat) for a run or checkpoint",
        description="Writes app.py, requirements.txt, README.md (Space metadata), space.json, example images "
        "and the model (a LoRA run merged) into OUT; it runs with `python app.py`, without svit. The weights "
        "are copied into OUT/model (loaded and saved again: a 13B run is 26 GB) unless --model-id names the "
        "model on the Hub; nothing else switches the copy off.",
    )
    space.add_argument("run", metavar="RUN", help="`svit train` run or SVIT-LLaVA checkpoint folder")
    space.add_argument("out", metavar="OUT", help="the Space folder to write")
    space.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    space.add_argument("--license", help="the Space's licence (default: the run's model card's, else other)")
    space.add_argument(
        "--model-id",
        metavar="ORG/NAME",
        help="the Space loads this Hub model (a full checkpoint with its remote code: a LoRA run's `svit model "
        "merge` output, pushed); space.json names it and no weights are copied; RUN is read only for its card "
        "(default: copy RUN's weights into OUT/model)",
    )
    space.add_argument(
        "--base-model",
        help="a LoRA RUN's base model, merged onto (default: the one its adapter config names; a relative "
        "path there is relative to the current directory)",
    )
    _add_app_flags(space)
    space.set_defaults(func=_space)

    app = sub.add_parser("app", help="serve the grounded-chat app for a checkpoint locally (Gradio)")
    app.add_argument("--model", required=True, help="`svit train` run or SVIT-LLaVA checkpoint folder")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    app.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    _add_app_flags(app)
    app.set_defaults(func=_app)
