"""What every fuzz family shares: the tally of outcomes and the one rule for a clean refusal.

A refusal is clean when the CLI would print it as one line with exit 2: `describe_error` says the error is the
user's (one of our SvitError types in its chain, or a file-system error), or an argument parser already printed
its line and exited with 2. Anything else raised is a traceback (the CLI's "internal error", exit 1).
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections import Counter
from dataclasses import dataclass, field

from svit_dataset.errors import describe_error

EXAMPLES_KEPT = 6  # per kind of failure: enough to route a defect, few enough to read


@dataclass
class Tally:
    """Outcomes of one family's cases. `clean` and `refused_valid` are fine (the latter: a value our oracle
    thinks valid was refused, listed so that an over-strict check or an over-lax oracle shows); `traceback`
    and `silent` are defects."""

    family: str
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    subkinds: Counter = field(default_factory=Counter)

    def add(self, outcome: str, case: str = "", detail: str = "", kind: str = "") -> None:
        self.counts["cases"] += 1
        self.counts[outcome] += 1
        if kind:
            self.subkinds[f"{kind}: {outcome}"] += 1
        if outcome != "clean" and case:
            kept = self.examples.setdefault(outcome, [])
            if len(kept) < EXAMPLES_KEPT:
                kept.append(f"{case}: {detail}"[:900])

    @property
    def defects(self) -> int:
        return self.counts["traceback"] + self.counts["silent"]

    def report(self, seconds: float) -> str:
        c = self.counts
        lines = [
            f"[{self.family}] cases {c['cases']:,}: clean {c['clean']:,}, tracebacks {c['traceback']:,}, "
            f"silent losses {c['silent']:,}, refused though valid {c['refused_valid']:,}, "
            f"slow {c['slow']:,} ({seconds:.1f} s)"
        ]
        for outcome in ("traceback", "silent", "slow", "refused_valid"):
            for example in self.examples.get(outcome, []):
                lines.append(f"  --- {outcome}: {example}")
        return "\n".join(lines)


class Refused(Exception):
    """Raised by `attempt` around an error the CLI prints as one clean line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Defect(Exception):
    """Raised by `attempt` around an error the CLI prints as an internal error (a traceback)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


@contextlib.contextmanager
def attempt(passthrough: tuple[type[BaseException], ...] = ()):
    """Run a case's call; its failure becomes `Refused` (clean) or `Defect` (a traceback, with where it came
    from); `passthrough` exceptions (a family's sentinels) go on as they are. stderr is captured: a parser's
    one line goes there before its exit 2."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            yield
    except passthrough:
        raise
    except SystemExit as err:
        if err.code == 2 and stderr.getvalue().strip():
            raise Refused(stderr.getvalue().strip().splitlines()[-1]) from None
        raise Defect(f"SystemExit({err.code}) {stderr.getvalue()[-300:]!r}") from None
    except (Refused, Defect):
        raise
    except RecursionError as err:  # never the user's, whatever describe_error makes of it
        raise Defect(_where(err)) from None
    except Exception as err:  # noqa: BLE001 - classing every failure is the point
        message, users = describe_error(err)
        if users:
            raise Refused(message) from None
        raise Defect(_where(err)) from None


def _where(err: BaseException) -> str:
    """`Type: message` and the innermost frames of svit's own code (file:function), for routing."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "/svit_" in f.filename or "/hub_cards/" in f.filename] or frames
    place = " <- ".join(f"{f.filename.split('/work/main/')[-1]}:{f.name}:{f.lineno}" for f in ours[-3:][::-1])
    return f"{type(err).__name__}: {str(err)[:200]} at {place}"


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`svit ARGV` in this process, as a user runs it: (exit code, last line of stderr)."""
    from svit_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    lines = err.getvalue().strip().splitlines()
    return code, lines[-1] if lines else ""
