"""`svit eval`: SVIT-LLaVA checkpoints scored on MME, POPE and grounding the way the reference tools score them.

- `scoring`: the rules, as pure functions (MME's official calculation.py, LLaVA's eval_pope, IoU-based grounding).
- `mme`, `pope`, `grounding`: each benchmark read from the forms users have; what the ledger keeps of an answer.
- `harness`: batched greedy generation, left padding, a resumable JSONL ledger, `accelerate launch` splitting.
- `metrics`: the shipped `evaluate` metric modules (`evaluate.load(metric_path("mme"))`, offline).
- `results`: results.json (model-index via `hub_cards.model_card`), the table, MME's bar chart.
- `run`: the options dataclasses, the benchmark registry and `run_eval`; `demo`: `make demo`'s evaluation part.
"""
