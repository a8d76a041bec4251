"""The package's shape: no import cycle inside svit_dataset, no layer imported against the design, and a
wheel that holds no test or bench data maker."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("svit_dataset", "svit_model", "hub_cards", "svit_cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every svit module `path` imports, at module level or inside functions (a lazy import is still a
    dependency)."""
    found = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def import_graph(package: str) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (REPO / package).rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_svit_dataset():
    assert find_cycle(import_graph("svit_dataset")) is None


def test_layers_import_only_what_the_design_allows():
    """svit_dataset imports no svit_model and no hub_cards; hub_cards imports no torch (DESIGN.md)."""
    offenders = []
    for path in (REPO / "svit_dataset").rglob("*.py"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in ("svit_model", "hub_cards", "svit_cli")}
        offenders += [f"{path.relative_to(REPO)} imports {m}" for m in sorted(bad)]
    for path in (REPO / "hub_cards").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        offenders += [f"{path.relative_to(REPO)} imports {m}" for m in names if m.split(".")[0] == "torch"]
    assert not offenders, offenders


@pytest.mark.slow
def test_the_wheel_holds_no_test_or_bench_data_maker(tmp_path):
    # Built from a copy of the tracked files: an in-tree build leaves build/ and *.egg-info in the checkout.
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True)
    source = tmp_path / "src"
    for name in tracked.stdout.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    wheel_cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(tmp_path),
    ]
    subprocess.run([*wheel_cmd, str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("svit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "svit_dataset/reader.py" in names and "svit_dataset/sample/release/referring_qa.json" in names
    makers = [
        n
        for n in names
        if n.endswith(("sample_maker.py", "synthetic.py")) or n.startswith(("tools/", "tests/", "bench/"))
    ]
    assert not makers, makers
