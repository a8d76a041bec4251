"""Jobs that run several library layers in order (build then card then push, train then card, the main job of
`svit demo`). They sit above svit_dataset, svit_model and hub_cards, so that those layers never call back into
each other; the command modules of svit_cli parse arguments and call these."""
