"""The build of a Hub dataset folder from released-format files (`svit build`, and `SvitBuilder` for `datasets`).

- `engine.py`: the build (`build_hub_folder`, `build_hub_dataset`): task configs, `full`, recipes, report, README;
- `options.py`: what a build reads and writes (`BuildOptions`, the flags of `svit build`), checked into a plan;
- `configs.py`: the configs a build can write (the four tasks, `full`, the recipes) and their descriptions;
- `task_config.py`: one task config, its file read once, rows to the Parquet shards of their split
  (`svit_dataset.parquet_shards`);
- `task_queue.py`: the task configs in parallel, one process per task up to the CPUs;
- `report.py`: build_report.json; `readme.py`: the README's YAML front matter and the facts a card states;
- `datasets_builder.py`: `SvitBuilder`, the `datasets` builder, one config per subset and recipe, which runs
  the same build;
- `push.py`: a built folder to a Hub dataset repo.

Nothing is imported here: `from svit_dataset.hub_build.<module> import ...`.
"""
