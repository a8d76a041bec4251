"""`svit eval`: SVIT-LLaVA checkpoints scored the way the reference tools score them.

- `benchmark`: what a benchmark is (`Benchmark`: options, reader, ledger fields, scorer, headline metrics,
  model-index entries, help) and the registry `svit eval` reads (`@register`).
- one module per benchmark, rules included: `mme` (official calculation.py, results folder, bar chart), `pope`
  (LLaVA's eval_pope), `refcoco` (one box per expression), `svit_referring` (SVIT's referring QAs);
  `grounded_answers`: what the two box benchmarks share; `grounding_alias`: `svit eval grounding`, their former
  common spelling.
- `metric_modules/<benchmark>/`: each benchmark's `evaluate` metric module, thin (`metrics.load_metric`).
- `harness`: batched greedy generation, left padding, a resumable JSONL ledger, `accelerate launch` splitting;
  `tables`: benchmarks as tables.
- `run`: `run_eval`, the same for every benchmark; `results`: results.json and the printed table.
"""
