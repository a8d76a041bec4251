"""`svit ARGV` as the tests run it: in this process, or in a fork of it where only a process of its own can show
the answer.

`run_svit` calls `svit_cli.main.main` here, with stdout and stderr captured and the exit code a shell would see.
What a command sets up for its process (root logging handlers and levels, the environment, the working folder,
torch's thread count, signal handlers, datasets' progress bars) is put back afterwards, so one case cannot leak
into the next or into later tests. It costs a fraction of a second where a new Python process costs seconds
(torch, transformers and datasets imported again).

`run_svit_forked` starts `svit ARGV` in a fork of this process: its own memory, exit code and limits, for what
a process-wide setting decides (a file-size limit, RLIMIT_FSIZE: the write that passes it fails with EFBIG), or
for a run a test kills. A fork needs no imports: it costs what the command does, where a new interpreter adds
seconds. It runs torch on one thread: OpenMP's pool does not survive a fork, so a command that raises the thread
count (accelerate does on CPU, for `svit train` under torch.distributed) needs a real subprocess.

`assert_one_clean_line_each` runs a table of bad inputs through both and checks each ends as one line
`svit <command>: error: ...`, exit 2, no traceback (the CLI error tables, tests/test_cli_errors*.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

# What every run sees, whatever the shell running pytest holds: no network, no API key.
CLI_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OPENAI_API_KEY": ""}
# Loggers a command sets a level on when it runs (`svit generate` quiets the HTTP client's request lines unless
# -v): created here if absent, so that their level is put back like every other logger's.
LOGGERS_COMMANDS_SET = ("httpx", "httpx2")


@contextlib.contextmanager
def _process_state_kept() -> Iterator[None]:
    """Everything `svit_cli.main.main` and the commands change in their process, restored on the way out."""
    environ = dict(os.environ)
    cwd = os.getcwd()
    for name in LOGGERS_COMMANDS_SET:
        logging.getLogger(name)
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers), list(root.filters))
    loggers = {
        logger: (logger.level, logger.disabled, logger.propagate, list(logger.handlers))
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    }
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    bars_off = _progress_bars_disabled()
    root.handlers.clear()  # pytest's capture handlers: the command's logging.basicConfig sets up its own, as alone
    try:
        with warnings.catch_warnings():
            yield
    finally:
        for handler in root.handlers:
            if handler not in root_state[1]:
                handler.close()
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]
        root.filters[:] = root_state[2]
        for logger, (level, disabled, propagate, its_handlers) in loggers.items():
            if logger.level != level:  # setLevel clears every logger's cache: only where it changed
                logger.setLevel(level)
            logger.disabled, logger.propagate = disabled, propagate
            logger.handlers[:] = its_handlers
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if bars_off is not None and _progress_bars_disabled() != bars_off:
            import datasets

            (datasets.disable_progress_bars if bars_off else datasets.enable_progress_bars)()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)


def _progress_bars_disabled() -> bool | None:
    datasets = sys.modules.get("datasets")
    return datasets.are_progress_bars_disabled() if datasets else None


def _exit_code(exit_: SystemExit) -> int:
    """The status a shell sees for `sys.exit(code)`: a message is printed and exits 1."""
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def run_svit(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`svit ARGV` in this process: (argv, exit code, stdout, stderr) as a subprocess would give them.

    `env` is added to the environment for the run (after CLI_ENVIRONMENT). An exception that escapes `main` is
    printed as its traceback and exits 1, as Python does for an uncaught one.
    """
    from svit_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with _process_state_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.environ.update(CLI_ENVIRONMENT | (env or {}))
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors, sys.exit in a command
            code = _exit_code(exit_)
        except Exception:  # as an uncaught exception ends a process (Ctrl-C and pytest's own exits pass)
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@dataclasses.dataclass
class Forked:
    """A `svit ARGV` started by `run_svit_forked`: its pid and the files its stdout and stderr go to."""

    argv: list[str]
    pid: int
    out_path: Path
    err_path: Path

    def running(self) -> bool:
        """Whether it has not ended yet (without reaping it: `wait_forked` still gets its exit code)."""
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def run_svit_forked(argv: list[str], fsize: int | None = None, env: dict[str, str] | None = None) -> Forked:
    """Start `svit ARGV` in a fork of this process. `fsize`: the most bytes any one file may get (RLIMIT_FSIZE),
    a full disk for that process alone; `env`: added to its environment (after CLI_ENVIRONMENT). Reap it with
    `wait_forked`."""
    out_path, err_path = (Path(tempfile.mkstemp(prefix="svit-cli-", suffix=s)[1]) for s in (".out", ".err"))
    pid = os.fork()
    if pid:
        return Forked(argv, pid, out_path, err_path)
    code = 1
    try:  # the child: never returns into pytest
        import torch

        torch.set_num_threads(1)  # the parent's OpenMP pool does not survive a fork
        if fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        os.environ.update(CLI_ENVIRONMENT | (env or {}))
        out = os.open(out_path, os.O_WRONLY | os.O_TRUNC)
        err = os.open(err_path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's whole life
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        logging.root.handlers.clear()  # pytest's capture handlers: the command logs to its stderr, as alone
        from svit_cli.main import main

        code = main(argv)
    except SystemExit as exit_:
        code = _exit_code(exit_)
    except BaseException:  # noqa: BLE001 - anything else must show as a traceback, as in a subprocess
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait_forked(forked: Forked, timeout: float = 300) -> subprocess.CompletedProcess:
    """The result of a run started by `run_svit_forked`, killed after `timeout` seconds."""
    started = time.monotonic()
    while True:
        done, status = os.waitpid(forked.pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout:
            os.kill(forked.pid, signal.SIGKILL)
        time.sleep(0.02)
    stdout, stderr = (path.read_text(errors="replace") for path in (forked.out_path, forked.err_path))
    forked.out_path.unlink()
    forked.err_path.unlink()
    return subprocess.CompletedProcess(forked.argv, os.waitstatus_to_exitcode(status), stdout, stderr)


def run_cases(cases: list[tuple[list[str], dict]]) -> list[subprocess.CompletedProcess]:
    """`svit ARGV` for each (argv, options), results in order. A case with options (`{"fsize": bytes}`) runs in a
    fork, all of them started first so that they run beside the others, which run here one after another."""
    forked = {i: run_svit_forked(argv, **options) for i, (argv, options) in enumerate(cases) if options}
    results = [None if i in forked else run_svit(argv) for i, (argv, _) in enumerate(cases)]
    for i, started in forked.items():
        results[i] = wait_forked(started)
    return results


def assert_one_clean_line_each(cases: list[tuple]) -> None:
    """Run every (name, argv, expected text[, options: {"fsize": bytes}]) case: each must end as one line
    `svit <command>: error: ...` holding the expected text, exit 2, no traceback. The table of each command
    family (tests/test_cli_errors*.py) calls this."""
    cases = [(c[0], c[1], c[2], c[3] if len(c) > 3 else {}) for c in cases]
    results = run_cases([(argv, options) for _, argv, _, options in cases])
    failures = []
    for (name, argv, expected, _), done in zip(cases, results, strict=True):
        command = " ".join(a for a in argv[:2] if not a.startswith("-") and "/" not in a)
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        problems = []
        if done.returncode != 2:
            problems.append(f"exit {done.returncode}")
        if "Traceback" in done.stderr:
            problems.append("traceback")
        if not last.startswith(f"svit {command}: error: ") or expected not in last:
            problems.append(f"last line {last[:300]!r}")
        if problems:
            failures.append(f"{name}: {', '.join(problems)}")
    assert not failures, "\n".join(failures)
