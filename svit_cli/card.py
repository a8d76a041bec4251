"""`svit card dataset OUT` and `svit card model RUN [--results F ...]`: (re)write the Hub cards (hub_cards)."""

from __future__ import annotations


def _dataset(args) -> None:
    from hub_cards.dataset_card import write_dataset_card

    print(f"dataset card written: {write_dataset_card(args.folder)}")


def _model(args) -> None:
    from hub_cards.model_card import write_run_card

    written = write_run_card(args.run, args.results, model_id=args.model_id, force=args.force)
    print(f"model card written: {written}")


def register(sub) -> None:
    card = sub.add_parser("card", help="write the README.md card of a built dataset or a training run")
    # dest `format`, as `svit export`'s: main names a failing command by it (`svit card model: error: ...`)
    card_sub = card.add_subparsers(dest="format", required=True)

    dataset = card_sub.add_parser(
        "dataset", help="a folder written by `svit build`: the card from its report, recipes/ and stats/"
    )
    dataset.add_argument(
        "folder", metavar="OUT", help="a folder written by `svit build` (run `svit stats OUT` first)"
    )
    dataset.set_defaults(func=_dataset)

    model = card_sub.add_parser(
        "model", help="a folder written by `svit train`: the card from its svit_run.json and eval results"
    )
    model.add_argument("run", metavar="RUN", help="a folder written by `svit train`")
    model.add_argument(
        "--results",
        nargs="+",
        default=[],
        metavar="F",
        help="results.json files of `svit eval` runs, or lmms-eval results files (model-index)",
    )
    model.add_argument(
        "--model-id",
        metavar="ORG/NAME",
        help="the Hub id the usage code loads (default: the run's hub_model_id, else RUN's name)",
    )
    model.add_argument(
        "--force",
        action="store_true",
        help="attach results whose `model` names another folder or Hub id than RUN's (refused by default: "
        "they would be published as this model's scores)",
    )
    model.set_defaults(func=_model)
