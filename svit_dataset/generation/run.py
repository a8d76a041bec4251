"""The generation run: scenes in, release-format files out, resumable, shardable.

    source (VG + COCO, or scenes JSONL) -> select images (--shard i/n, --max-images)
      -> per image and task: prompt (token budget) -> LLM -> judge -> regenerate up to --max-attempts
      -> ledger line -> at the end: <task>.json, failures.json, generation_summary.json

`plan_generation` is `--dry-run`: the same selection and prompts, counted and priced, nothing called.

Determinism: attempt k of an item is sent with `seed = H(run seed, image, task, k)`, and the
detail-description instruction is picked by (run seed, image). Endpoints that honour `seed` (vLLM,
SGLang, OpenAI best-effort) answer a resumed request as they would have the first time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from tqdm.auto import tqdm

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.files import check_output_apart, write_json_atomic
from svit_dataset.generation.annotations import (
    Scene,
    SceneFormatError,
    iter_scenes_jsonl,
    iter_vg_scenes,
    scene_from_json,
    select_images,
)
from svit_dataset.generation.batch_files import BatchLimits
from svit_dataset.generation.client import (
    ChatClient,
    ChatResult,
    ClientSettings,
    ClientStats,
    FatalAPIError,
    RequestFailed,
    redact,
)
from svit_dataset.generation.ledger import Ledger, item_key, ledger_files, ledger_name, scan
from svit_dataset.generation.output import (
    BATCH_DISCOUNT,
    SUMMARY_FILE,
    batch_price,
    check_run_folder,
    collect_outputs,
    cost_usd,
    load_prices,
    price_for,
    release_record,
)
from svit_dataset.generation.prompts import (
    EXPECTED_COMPLETION_TOKENS,
    Prompt,
    PromptOverBudget,
    PromptTemplates,
    build_prompt,
    detail_instruction,
    load_templates,
)
from svit_dataset.generation.verify import DEFAULT_IOU_THRESHOLD, judge_response
from svit_dataset.jsonlist import loads_json, read_json_object
from svit_dataset.release import MalformedTally
from svit_dataset.schema import DETAIL_DESCRIPTION, TASKS, parse_tasks
from svit_dataset.secrets import install_log_redaction
from svit_dataset.settings import check_number, setting

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
PROMPT_OVER_BUDGET = "prompt_over_budget"


@dataclasses.dataclass
class SceneSource:
    """Visual Genome annotations (+ COCO captions), or a scenes JSONL file: exactly one."""

    annotations: str | Path | None = setting(
        None, "folder with image_data.json, objects.json, region_descriptions.json", metavar="VG_DIR"
    )
    coco_captions: tuple[str | Path, ...] = setting(
        (),
        "COCO captions_train2017.json (repeat for captions_val2017.json); linked by VG's coco_id",
        metavar="FILE",
        repeat=True,
    )
    scenes: str | Path | None = setting(None, "scenes JSONL with normalized boxes (see docs)", metavar="FILE")

    def __post_init__(self):
        if (self.annotations is None) == (self.scenes is None):
            raise SvitInputError("pass either --annotations VG_DIR or --scenes FILE.jsonl (exactly one)")
        if self.scenes is not None and self.coco_captions:
            raise SvitInputError("--coco-captions goes with --annotations; scenes JSONL carry their captions")

    def select(
        self, wanted: Callable[[int], bool] | None, max_images: int | None, counts: dict | None = None
    ) -> tuple[list[int], Iterator[Scene]]:
        """(selected image ids in order, their scenes streamed in that order).

        `counts` (if given) receives what the reader skipped or found missing: VG's `select_images`
        and `iter_vg_scenes` counts (filled as the scenes stream), or `scene_lines` and
        `malformed_scene_lines` of a scenes JSONL (filled by the first pass).
        """
        counts = counts if counts is not None else {}
        if self.annotations is not None:
            images = select_images(self.annotations, wanted, max_images, counts)
            scenes = iter_vg_scenes(self.annotations, self.coco_captions, images=images, counts=counts)
            return [m.image_id for m in images], scenes
        # A first pass validates the lines up to the selection's last one, counting the malformed
        # ones, for the ids (progress bar, dry run); the second streams the scenes of those ids.
        path = Path(self.scenes)
        tally = MalformedTally(
            path, max_fraction=0.001, fix="Fix the file: svit generate skips at most 0.1% of its lines."
        )
        ids = []
        lines = iter_scenes_jsonl(path, tally)
        try:
            for scene in lines:
                if wanted is None or wanted(scene.image_id):
                    ids.append(scene.image_id)
                    if max_images is not None and len(ids) >= max_images:
                        break
        finally:
            lines.close()
            counts["scene_lines"], counts["malformed_scene_lines"] = tally.records, tally.malformed
        return ids, _chosen_scenes(path, set(ids), len(ids))


def _chosen_scenes(path: Path, chosen: set[int], n: int) -> Iterator[Scene]:
    """The first `n` scenes of `chosen` images, in file order."""
    if n == 0:
        return
    yielded = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                scene = scene_from_json(loads_json(line, path))
            except (orjson.JSONDecodeError, SvitFormatError, SceneFormatError):
                continue  # counted by the first pass, which read at least as far
            if scene.image_id in chosen:
                yield scene
                yielded += 1
                if yielded >= n:
                    return


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`"i/n"` (0 <= i < n) -> (i, n)."""
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SvitInputError(
            f"--shard {text!r}: expected i/n, e.g. 0/4 (shards are numbered 0..n-1)"
        ) from None
    if n < 1 or not 0 <= i < n:
        raise SvitInputError(f"--shard {text!r}: need n >= 1 and 0 <= i < n (shards are numbered 0..n-1)")
    return i, n


def in_shard(image_id: int, shard: tuple[int, int]) -> bool:
    """A hash of the image id, not its position: every machine agrees without seeing the others' lists."""
    digest = hashlib.blake2b(str(image_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard[1] == shard[0]


def derive_seed(run_seed: int, image_id: int, task: str, attempt: int) -> int:
    digest = hashlib.blake2b(f"{run_seed}:{image_id}:{task}:{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


@dataclasses.dataclass
class GenerationConfig:
    """What to generate and where (the run flags of `svit generate`; `client` holds the client's)."""

    output_dir: str | Path = setting(
        help="output folder (also the resume ledger)", flag="--output", metavar="DIR"
    )
    client: ClientSettings = dataclasses.field(default_factory=ClientSettings)
    tasks: tuple[str, ...] = setting(
        TASKS,
        "comma-separated tasks",
        parse=parse_tasks,
        show_default="all four",
    )
    concurrency: int = setting(16, "requests in flight")
    max_images: int | None = setting(None, "only the first N images (after --shard)")
    shard: tuple[int, int] | None = setting(
        None,
        "this machine's share of the images, i in 0..n-1",
        parse=parse_shard,
        metavar="i/n",
    )
    templates_dir: str | Path | None = setting(
        None, "your prompt templates (a copy of templates/paper-v1)", flag="--templates", metavar="DIR"
    )
    max_prompt_tokens: int = setting(6000, "token budget of a prompt (trim rule in docs)")
    max_attempts: int = setting(3, "responses per item before it counts as failed")
    iou_threshold: float = setting(DEFAULT_IOU_THRESHOLD, "referring boxes must match a scene box this well")
    seed: int = setting(0, "run seed (per-request seeds, detail instructions)")
    prices: str | Path | None = setting(
        None, 'price table JSON {"models": {name: {"input", "output"}}}', metavar="FILE"
    )
    price_input: float | None = setting(None, "USD per 1M prompt tokens for --model (overrides --prices)")
    price_output: float | None = setting(None, "USD per 1M completion tokens for --model")
    max_consecutive_api_failures: int = setting(50, "API failures in a row that stop the run")
    progress: bool = setting(True, "show a progress bar")
    overwrite: bool = setting(
        False, "replace release files already in --output that no svit generate run wrote"
    )

    def __post_init__(self):
        self.output_dir = Path(self.output_dir)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise SvitInputError(
                f"--tasks: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(TASKS)}"
            )
        self.tasks = tuple(t for t in TASKS if t in self.tasks)
        # Bounds that also keep each value usable: 2**20 requests in flight or attempts is no setting
        # anyone means, and a prompt budget past 2**24 tokens is no model's.
        for name, high in (
            ("concurrency", 1 << 20),
            ("max_attempts", 1 << 20),
            ("max_prompt_tokens", 1 << 24),
            ("max_consecutive_api_failures", None),
        ):
            check_number(f"--{name.replace('_', '-')}", getattr(self, name), 1, high)
        check_number("--max-images", self.max_images, 1, optional=True)
        check_number("--iou-threshold", self.iou_threshold, 0, 1, above=True)
        if (self.price_input is None) != (self.price_output is None):
            raise SvitInputError("--price-input and --price-output go together")
        check_number("--price-input", self.price_input, 0, optional=True)
        check_number("--price-output", self.price_output, 0, optional=True)

    def identity(self, templates: PromptTemplates) -> dict:
        """The settings that shape the output; a resumed run must match them."""
        return {
            "model": self.client.model,
            "prompt_version": templates.version,
            "params": self.client.request_params(),
            "seed": self.seed,
            "max_attempts": self.max_attempts,
            "iou_threshold": self.iou_threshold,
            "max_prompt_tokens": self.max_prompt_tokens,
        }

    def wanted(self) -> Callable[[int], bool] | None:
        shard = self.shard
        return None if shard is None else (lambda image_id: in_shard(image_id, shard))

    def price(self) -> tuple[str, dict[str, float]] | None:
        if self.price_input is not None:
            return "--price-input/--price-output", {"input": self.price_input, "output": self.price_output}
        return price_for(self.client.model, load_prices(self.prices))


def _check_run_identity(output_dir: Path, identity: dict) -> None:
    path = output_dir / RUN_FILE
    if path.exists():
        held = read_json_object(path, "move it away, or pass another --output for a new run").get(
            "identity", {}
        )
        changed = sorted(k for k in set(held) | set(identity) if held.get(k) != identity.get(k))
        if changed:
            diffs = "; ".join(f"{k}: {held.get(k)!r} -> {identity.get(k)!r}" for k in changed)
            raise SvitInputError(
                f"--output {output_dir} holds a run with other settings ({diffs}). Resume with the same "
                "settings, or pass another --output for a new run."
            )
        return
    write_json_atomic(path, {"identity": identity})


def _public_url(url: str | None) -> str:
    if not url:
        return "api.openai.com"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _final_elsewhere(output_dir: Path, own: Path) -> set[str]:
    """Keys finished in other ledgers of the folder (other shards, an earlier unsharded run)."""
    keys: set[str] = set()
    for path in ledger_files(output_dir):
        if path != own:
            keys.update(k for k, s in scan(path).items() if s.final)
    return keys


@dataclasses.dataclass
class _Work:
    scene: Scene
    task: str
    prompt: Prompt | None  # None: over the token budget
    detail: str = ""


class ItemJudge:
    """Judges the answer to an item's next attempt and writes its ledger line; the online run and the batch
    run (batch_run.py) share it, so both write the same records for the same answers."""

    def __init__(self, config: GenerationConfig, templates: PromptTemplates, ledger: Ledger, bar):
        self.config = config
        self.templates = templates
        self.ledger = ledger
        self.bar = bar
        self.finished = Counter()
        self._last_postfix = 0.0
        self.postfix: Callable[[], dict] = dict

    def finish(self, key: str, line: dict) -> None:
        self.ledger.append({"key": key, **line})
        self.finished[line["t"] if line["t"] == "done" else line.get("reason", "failed")] += 1
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix > 0.5:
            self._last_postfix = now
            failed = sum(v for k, v in self.finished.items() if k != "done")
            self.bar.set_postfix(failed=failed, **self.postfix(), refresh=False)

    def over_budget(self, key: str, detail: str, extra: dict | None = None) -> None:
        self.request_failed(key, PROMPT_OVER_BUDGET, detail, extra, attempts=0)

    def out_of_attempts(self, key: str) -> bool:
        """Writes the `failed` line of an item with no attempt left (a run killed after its last `attempt`
        line): the failure is that attempt's judgement. False when attempts are left."""
        if self.ledger.resume_point(key)[0] < self.config.max_attempts:
            return False
        self.request_failed(key, *self.ledger.last_judgement(key))
        return True

    def seed(self, key: str) -> int:
        image_id, task = key.split("/", 1)
        return derive_seed(self.config.seed, int(image_id), task, self.ledger.resume_point(key)[0])

    def judge(self, item: _Work, result: ChatResult, extra: dict | None = None) -> bool:
        """Judge `result`, the answer to the item's next attempt; True when the item is final (done, or out of
        attempts). `extra` rides on every line written (the batch a reply came from)."""
        config, scene, task, prompt = self.config, item.scene, item.task, item.prompt
        key = item_key(scene.image_id, task)
        seed = self.seed(key)
        attempts, usage = self.ledger.resume_point(key)
        attempts += 1
        usage = (usage[0] + result.prompt_tokens, usage[1] + result.completion_tokens)
        extra = extra or {}
        reason, detail, shaped = judge_response(
            task, result.text, result.finish_reason, prompt.scene, config.iou_threshold
        )
        if shaped is not None:
            provenance = {
                "model": config.client.model,
                "response_model": result.response_model,
                "prompt_version": self.templates.version,
                "params": {**config.client.request_params(), "seed": seed},
                "attempts": attempts,
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
            }
            if prompt.trimmed:
                provenance["trimmed"] = prompt.trimmed
            instruction = (
                detail_instruction(self.templates, scene.image_id, config.seed)
                if task == DETAIL_DESCRIPTION
                else ""
            )
            record = release_record(scene.image_id, task, shaped, instruction, provenance)
            self.finish(
                key, {"t": "done", "attempts": attempts, "usage": list(usage), "record": record, **extra}
            )
            return True
        logger.debug("%s attempt %d: %s (%s)", key, attempts, reason, detail)
        self.ledger.append(
            {
                "t": "attempt",
                "key": key,
                "attempt": attempts,
                "usage": list(usage),
                "reason": reason,
                "detail": detail,
                **extra,
            }
        )
        if attempts < config.max_attempts:
            return False
        self.request_failed(key, reason, detail, extra)
        return True

    def request_failed(
        self, key: str, kind: str, detail: str, extra: dict | None = None, attempts: int | None = None
    ) -> None:
        """The item failed for good in this run, for `kind` (`api_error` items are retried by a later run); the
        one place a `failed` line is written. `attempts`: as the ledger holds them unless given."""
        held, usage = self.ledger.resume_point(key)
        line = {"t": "failed", "attempts": held if attempts is None else attempts, "usage": list(usage)}
        self.finish(key, {**line, "reason": kind, "detail": detail, **(extra or {})})


class _Run:
    """The online run: workers take items from a bounded queue, ask, and hand the answers to the judge."""

    def __init__(self, config: GenerationConfig, judge: ItemJudge):
        self.config = config
        self.judge = judge
        self.stats = ClientStats()
        self.consecutive_api_failures = 0
        self.run_id = run_id(judge.config.identity(judge.templates))
        judge.postfix = lambda: {
            "tok": f"{(self.stats.prompt_tokens + self.stats.completion_tokens) / 1000:.0f}k",
            "retries": sum(self.stats.retries.values()),
        }

    async def run(self, work: Iterator[_Work]) -> None:
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * self.config.concurrency)
        async with ChatClient(self.config.client, self.stats) as client:

            async def produce():
                for item in work:
                    await queue.put(item)
                for _ in range(self.config.concurrency):
                    await queue.put(None)

            async def consume():
                while (item := await queue.get()) is not None:
                    await self.process(client, item)

            tasks = [asyncio.create_task(produce())]
            tasks += [asyncio.create_task(consume()) for _ in range(self.config.concurrency)]
            try:
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()

    async def process(self, client: ChatClient, item: _Work) -> None:
        judge, task, prompt = self.judge, item.task, item.prompt
        image_id = item.scene.image_id
        key = item_key(image_id, task)
        if prompt is None:
            judge.over_budget(key, item.detail)
            return
        while not judge.out_of_attempts(key):
            attempt = judge.ledger.resume_point(key)[0]
            try:
                result = await client.complete(
                    prompt.messages,
                    seed=judge.seed(key),
                    request_id=f"svit-{self.run_id}-{image_id}-{task}-{attempt}",
                    estimated_tokens=prompt.prompt_tokens + EXPECTED_COMPLETION_TOKENS[task],
                )
            except RequestFailed as err:
                judge.request_failed(key, err.kind, err.detail)
                self._count_api_failure(err)
                return
            self.consecutive_api_failures = 0
            if judge.judge(item, result):
                return

    def _count_api_failure(self, err: RequestFailed) -> None:
        if err.kind != "api_error":
            return
        self.consecutive_api_failures += 1
        if self.consecutive_api_failures >= self.config.max_consecutive_api_failures:
            raise FatalAPIError(
                f"{self.consecutive_api_failures} items in a row failed after all retries (last: {err.detail}). "
                "The endpoint looks down; run the same command again later to resume."
            )


def run_id(identity: dict) -> str:
    """A short name of the run's settings: in request ids and batch custom_ids."""
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=6).hexdigest()


def _work_items(
    scenes: Iterator[Scene], config: GenerationConfig, templates: PromptTemplates, skip: Callable[[str], bool]
) -> Iterator[_Work]:
    for scene in scenes:
        for task in config.tasks:
            if skip(item_key(scene.image_id, task)):
                continue
            try:
                prompt = build_prompt(scene, task, templates, config.max_prompt_tokens)
            except PromptOverBudget as err:
                yield _Work(scene, task, None, str(err))
                continue
            yield _Work(scene, task, prompt)


def _quiet_http_logs() -> None:
    # httpx logs every request at INFO: 400K lines. Keep them for -v (DEBUG) runs only.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpx2"):
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)


@dataclasses.dataclass
class RunFolder:
    """A run opened in its --output folder: settings checked against run.json, the selection, this process's
    ledger and the keys finished elsewhere (other shards). Both the online and the batch run start here."""

    config: GenerationConfig
    source: SceneSource
    templates: PromptTemplates
    identity: dict
    price: tuple[str, dict[str, float]] | None
    image_ids: list[int]
    scenes: Iterator[Scene]
    input_counts: dict
    ledger: Ledger
    elsewhere: set[str]

    @classmethod
    def open(cls, source: SceneSource, config: GenerationConfig, create: bool = True) -> RunFolder:
        _quiet_http_logs()
        install_log_redaction()
        output_dir = config.output_dir
        check_output_apart(
            output_dir,
            "--output",
            {
                "--annotations": source.annotations,
                "--scenes": source.scenes,
                "--coco-captions": list(source.coco_captions),
                "--templates": config.templates_dir,
                "--prices": config.prices,
            },
        )
        check_run_folder(output_dir, config.overwrite)
        if create:
            output_dir.mkdir(parents=True, exist_ok=True)
        templates = load_templates(config.templates_dir, config.tasks)
        identity = config.identity(templates)
        _check_run_identity(output_dir, identity)
        input_counts: dict = {}
        image_ids, scenes = source.select(config.wanted(), config.max_images, input_counts)
        ledger = Ledger(output_dir / ledger_name(config.shard))
        return cls(
            config,
            source,
            templates,
            identity,
            config.price(),
            image_ids,
            scenes,
            input_counts,
            ledger,
            _final_elsewhere(output_dir, ledger.path),
        )

    def skip(self, key: str) -> bool:
        """Finished here or in another ledger of the folder."""
        return self.ledger.is_final(key) or key in self.elsewhere

    @property
    def total(self) -> int:
        return len(self.image_ids) * len(self.config.tasks)

    def finished_count(self) -> int:
        return sum(self.skip(item_key(i, t)) for i in self.image_ids for t in self.config.tasks)

    def work(self, skip: Callable[[str], bool] | None = None) -> Iterator[_Work]:
        """The selection's items not skipped, with their prompts; a second call streams the scenes again."""
        if self.scenes is None:
            _, self.scenes = self.source.select(self.config.wanted(), self.config.max_images)
        scenes, self.scenes = self.scenes, None
        return _work_items(scenes, self.config, self.templates, skip or self.skip)

    def progress_bar(self, finished: int, desc: str = "generate"):
        return tqdm(
            total=self.total,
            initial=finished,
            unit="item",
            desc=desc,
            disable=not self.config.progress,
            mininterval=0.5,
        )

    def close_and_summarize(self, started: float, session: dict, error: BaseException | None) -> dict:
        """Close the ledger, rewrite the release files and write the summary (whatever stopped the run)."""
        self.ledger.close()
        session = {"seconds": round(time.monotonic() - started, 2), **session}
        session["stopped_by"] = redact(f"{type(error).__name__}: {error}") if error else None
        try:
            summary = _summarize(self, session)
            write_json_atomic(self.config.output_dir / SUMMARY_FILE, summary)
        except Exception:
            if error is None:
                raise
            # the error that stopped the run is the one to report; this one is only logged
            logger.exception("could not write %s after the run stopped", SUMMARY_FILE)
            return {}
        return summary


def generate(source: SceneSource, config: GenerationConfig) -> dict:
    """Run (or resume) a generation into `config.output_dir`; returns the summary it also writes."""
    started = time.monotonic()
    folder = RunFolder.open(source, config)
    total, resumed = folder.total, folder.finished_count()
    logger.info(
        "generating %d items (%d images x %d tasks; %d already finished) with %s at %s, concurrency %d",
        total - resumed,
        len(folder.image_ids),
        len(config.tasks),
        resumed,
        config.client.model,
        redact(_public_url(config.client.base_url)),
        config.concurrency,
    )
    bar = folder.progress_bar(resumed)
    judge = ItemJudge(config, folder.templates, folder.ledger, bar)
    runner = _Run(config, judge)
    error: BaseException | None = None
    try:
        asyncio.run(runner.run(folder.work()))
    except BaseException as err:  # noqa: BLE001 - the summary is written whatever stopped the run
        error = err
        raise
    finally:
        bar.close()
        stats = runner.stats
        seconds = max(time.monotonic() - started, 1e-9)
        summary = folder.close_and_summarize(
            started,
            {
                "path": "online",
                "items_finished": sum(judge.finished.values()),
                "requests_sent": stats.requests,
                "responses": stats.ok,
                "retries": dict(sorted(stats.retries.items())),
                "requests_per_second": round(stats.requests / seconds, 2),
            },
            error,
        )
    return summary


def _summarize(folder: RunFolder, session: dict) -> dict:
    config, price = folder.config, folder.price
    collected = collect_outputs(config.output_dir, config.tasks)
    tokens = collected["prompt_tokens"], collected["completion_tokens"]
    return {
        "model": config.client.model,
        "prompt_version": folder.templates.version,
        "tasks": list(config.tasks),
        "shard": f"{config.shard[0]}/{config.shard[1]}" if config.shard else None,
        "items": {
            "selected": folder.total,
            "done": sum(collected["done"].values()),
            "failed": collected["failed"],
            "pending": collected["pending"],
        },
        # what the input reader of this session skipped (bad_*, malformed_*) or found missing
        "input": dict(sorted(folder.input_counts.items())),
        "done_by_task": collected["done"],
        "failed_by_reason": collected["failed_by_reason"],
        "tokens": {"prompt": tokens[0], "completion": tokens[1]},
        # what the tokens cost online and through the Batch API (whichever way they were sent)
        "cost_usd": cost_usd(*tokens, price[1] if price else None),
        "batch_cost_usd": cost_usd(*tokens, batch_price(price[1] if price else None)),
        "price_usd_per_1m": {"matched": price[0], **price[1]} if price else None,
        "session": session,
    }


def plan_generation(source: SceneSource, config: GenerationConfig, limits: BatchLimits | None = None) -> dict:
    """`--dry-run`: render every prompt of the selection; count requests, tokens and cost; call nothing.
    `limits`: of the batch files the requests would fill (the Batch API's by default)."""
    limits = limits or BatchLimits()
    templates = load_templates(config.templates_dir, config.tasks)
    input_counts: dict = {}
    image_ids, scenes = source.select(config.wanted(), config.max_images, input_counts)
    finished: set[str] = set()
    if config.output_dir.is_dir():
        for path in ledger_files(config.output_dir):
            finished.update(k for k, s in scan(path).items() if s.final)
    per_task = {t: Counter() for t in config.tasks}
    for item in _work_items(scenes, config, templates, finished.__contains__):
        counts = per_task[item.task]
        if item.prompt is None:
            counts["over_budget"] += 1
            continue
        counts["requests"] += 1
        counts["prompt_tokens"] += item.prompt.prompt_tokens
        counts["completion_tokens"] += EXPECTED_COMPLETION_TOKENS[item.task]
        counts["trimmed"] += bool(item.prompt.trimmed)
    total = Counter()
    for counts in per_task.values():
        total.update(counts)
    price = config.price()
    return {
        "model": config.client.model,
        "prompt_version": templates.version,
        "images": len(image_ids),
        "already_finished": len(finished),
        "requests": total["requests"],
        "over_budget": total["over_budget"],
        "trimmed": total["trimmed"],
        "prompt_tokens": total["prompt_tokens"],
        "completion_tokens": total["completion_tokens"],
        "cost_usd": cost_usd(total["prompt_tokens"], total["completion_tokens"], price[1] if price else None),
        "batch_cost_usd": cost_usd(
            total["prompt_tokens"], total["completion_tokens"], batch_price(price[1] if price else None)
        ),
        # one Batch API file (and batch) per 50,000 requests: the line limit binds first for SVIT's prompts
        "batch_files": -(-total["requests"] // limits.max_lines),
        "batch_max_requests": limits.max_lines,
        "price_usd_per_1m": {"matched": price[0], **price[1]} if price else None,
        "per_task": {t: dict(c) for t, c in per_task.items()},
        "input": dict(sorted(input_counts.items())),
    }


def _batch_cost(plan: dict) -> str:
    price = plan["price_usd_per_1m"]
    if plan.get("batch_cost_usd") is None or not price:
        return "unknown (no price for this model)"
    halved = (
        ""
        if "batch_input" in price
        else f" (the online price x {BATCH_DISCOUNT:g}: no batch price in the table)"
    )
    return f"~${plan['batch_cost_usd']:,.2f}{halved}"


_SKIP_COUNTS = ("bad_", "malformed_", "duplicate_", "unnamed_", "empty_", "without_")


def format_plan(plan: dict) -> str:
    """The dry run's report for the console."""
    price = plan["price_usd_per_1m"]
    cost = (
        f"~${plan['cost_usd']:,.2f} at {price['matched']} prices (${price['input']}/1M in, ${price['output']}/1M out)"
        if price
        else "unknown: no price for this model (pass --prices FILE or --price-input/--price-output)"
    )
    lines = [
        f"dry run: {plan['images']} images, prompt version {plan['prompt_version']}, model {plan['model']}",
        f"  requests (first attempts): {plan['requests']:,}"
        + (
            f"   already finished in --output: {plan['already_finished']:,}"
            if plan["already_finished"]
            else ""
        ),
        f"  prompt tokens (estimated): {plan['prompt_tokens']:,}   completion tokens (expected): {plan['completion_tokens']:,}",
        f"  prompts trimmed to the budget: {plan['trimmed']:,}   over budget (would fail): {plan['over_budget']:,}",
        f"  cost: {cost}",
        f"  at Batch API prices: {_batch_cost(plan)} in {plan['batch_files']:,} request file(s) of at most "
        f"{plan['batch_max_requests']:,} requests, one batch each",
        "  regenerations (source mentions, short or invalid answers) add to this; nothing was sent.",
    ]
    skipped = {k: v for k, v in plan.get("input", {}).items() if v and k.startswith(_SKIP_COUNTS)}
    if skipped:
        lines.append("  input skipped or missing: " + ", ".join(f"{k} {v:,}" for k, v in skipped.items()))
    for task, counts in plan["per_task"].items():
        lines.append(
            f"  {task:20s} requests {counts.get('requests', 0):>8,}  prompt tokens {counts.get('prompt_tokens', 0):>12,}"
        )
    return "\n".join(lines)
