"""The package's shape: no import cycle between the modules or between the folders of any package, the layers
import only downwards, library code neither prints to stdout nor exits the process, the data and card layers
import without torch, and the wheel holds no test or bench data maker."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("svit_dataset", "svit_model", "hub_cards", "svit_cli")
# The library layers: the work, with no user interface (printing, exit codes) and no orchestration.
LIBRARIES = ("svit_dataset", "svit_model", "hub_cards")


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: str, root: Path = REPO) -> dict[str, Path]:
    """Module name -> file, for every module of `package` under `root`."""
    return {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def imports_of(path: Path, root: Path = REPO) -> set[str]:
    """Every svit module `path` imports, at module level or inside functions (a lazy import is still a
    dependency). `from a.b import c` yields `a.b` and `a.b.c` (c may be a module or a name)."""
    found = set()
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]).strip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {imported for imported in found if imported.split(".")[0] in PACKAGES}


def import_graph(package: str, root: Path = REPO) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = package_modules(package, root)
    return {
        name: {m for m in imports_of(path, root) if m in modules and m != name}
        for name, path in modules.items()
    }


def folder_of(path: Path, root: Path = REPO) -> str:
    """A module's folder: the directory its file sits in (a package's `__init__.py` is in its own folder). A
    directory of data next to a module of the same name (training_recipes/ beside training_recipes.py) holds
    no module, so it is no folder: the module belongs to the directory it sits in."""
    return path.parent.relative_to(root).as_posix()


def folder_graph(package: str, root: Path = REPO) -> dict[str, set[str]]:
    """Folder -> the other folders of the same package whose modules its modules import."""
    modules = package_modules(package, root)
    graph: dict[str, set[str]] = {}
    for name, targets in import_graph(package, root).items():
        folder = folder_of(modules[name], root)
        graph.setdefault(folder, set()).update(folder_of(modules[t], root) for t in targets)
    return {folder: targets - {folder} for folder, targets in graph.items()}


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


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_folder_graph_finds_a_planted_folder_cycle_that_no_module_cycle_shows(tmp_path):
    # top.job -> sub.work -> top.util: no module imports itself back, but the folders import each other.
    _plant(
        tmp_path,
        {
            "svit_model/__init__.py": "",
            "svit_model/job.py": "from svit_model.sub.work import run\n",
            "svit_model/util.py": "",
            "svit_model/sub/__init__.py": "",
            "svit_model/sub/work.py": "def run():\n    from ..util import helper\n",
            "svit_model/sub/recipes/plain.yaml": "",  # data beside the modules: no folder
        },
    )
    assert find_cycle(import_graph("svit_model", tmp_path)) is None
    assert folder_graph("svit_model", tmp_path) == {
        "svit_model": {"svit_model/sub"},
        "svit_model/sub": {"svit_model"},
    }
    assert find_cycle(folder_graph("svit_model", tmp_path)) == ["svit_model", "svit_model/sub", "svit_model"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_between_modules(package):
    assert find_cycle(import_graph(package)) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_between_folders(package):
    """A folder is a layer of its package: the top level and its subfolders import each other one way only."""
    assert find_cycle(folder_graph(package)) is None


def _imports_in(package: str) -> list[tuple[str, str]]:
    """(file, imported svit module) for every svit import in `package`."""
    return [
        (path.relative_to(REPO).as_posix(), imported)
        for path in package_modules(package).values()
        for imported in sorted(imports_of(path))
    ]


def test_layers_import_only_downwards():
    """svit_cli on top (its jobs above nothing of svit_cli's commands), then hub_cards and svit_model side by
    side (neither imports the other: a job passes one's facts to the other), then svit_dataset."""
    forbidden = {
        "svit_dataset": ("svit_model", "hub_cards", "svit_cli"),
        "svit_model": ("hub_cards", "svit_cli"),
        "hub_cards": ("svit_model", "svit_cli"),
    }
    offenders = [
        f"{file} imports {imported}"
        for package, banned in forbidden.items()
        for file, imported in _imports_in(package)
        if imported.split(".")[0] in banned
    ]
    # The jobs are called by the command modules, never the reverse.
    offenders += [
        f"{file} imports {imported}"
        for file, imported in _imports_in("svit_cli")
        if file.startswith("svit_cli/jobs/")
        and imported.startswith("svit_cli.")
        and not imported.startswith("svit_cli.jobs")
    ]
    for path in package_modules("hub_cards").values():
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        offenders += [f"{path.relative_to(REPO)} imports {m}" for m in names if m.split(".")[0] == "torch"]
    assert not offenders, offenders


def test_only_the_plugin_imports_lmms_eval():
    """lmms-eval is an optional extra: svit_model/lmms_eval_plugin is the one place that imports it, and
    nothing of svit imports the plugin (lmms-eval finds it through the entry point)."""
    plugin = "svit_model/lmms_eval_plugin/"
    offenders, seen = [], 0
    for package in PACKAGES:
        for path in package_modules(package).values():
            file = path.relative_to(REPO).as_posix()
            tree = ast.parse(path.read_text())
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            wanted = {
                m
                for m in names
                if m.split(".")[0] == "lmms_eval" or m.startswith("svit_model.lmms_eval_plugin")
            }
            seen += bool(wanted) and file.startswith(plugin)
            offenders += [f"{file} imports {m}" for m in sorted(wanted) if not file.startswith(plugin)]
    assert not offenders, offenders
    assert seen == 2  # the manifest and the model: the scan sees their imports


def user_interface_calls(source: str) -> list[tuple[int, str]]:
    """(line, what) for each place in `source` that talks to the user or ends the process: `print` to stdout
    (no `file=`, or `file=sys.stdout`), `print` handed on as a value (`print_fn=print`: whoever calls it prints
    to stdout), `sys.exit`, `exit`, `quit`, `os._exit`, `raise SystemExit`."""
    tree = ast.parse(source)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                target = next((k.value for k in node.keywords if k.arg == "file"), None)
                if target is None or ast.unparse(target) == "sys.stdout":
                    found.append((node.lineno, "print to stdout"))
            elif isinstance(func, ast.Name) and func.id in ("exit", "quit"):
                found.append((node.lineno, f"{func.id}()"))
            elif isinstance(func, ast.Attribute) and ast.unparse(func) in ("sys.exit", "os._exit"):
                found.append((node.lineno, f"{ast.unparse(func)}()"))
        elif isinstance(node, ast.Name) and node.id == "print" and id(node) not in called:
            found.append((node.lineno, "print as a value"))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if ast.unparse(raised) in ("SystemExit", "builtins.SystemExit"):
                found.append((node.lineno, "raise SystemExit"))
    return sorted(found)


def test_the_user_interface_finder_finds_each_kind():
    source = textwrap.dedent(
        """
        import sys
        print("to the user")
        print("to stdout", file=sys.stdout)
        print("a warning", file=sys.stderr)
        logger.info("logged")
        sys.exit(2)
        exit()
        quit(1)
        raise SystemExit(2)
        raise SystemExit
        def run(print_fn=print):
            say = print
        """
    )
    assert user_interface_calls(source) == [
        (3, "print to stdout"),
        (4, "print to stdout"),
        (7, "sys.exit()"),
        (8, "exit()"),
        (9, "quit()"),
        (10, "raise SystemExit"),
        (11, "raise SystemExit"),
        (12, "print as a value"),
        (13, "print as a value"),
    ]


def test_library_code_neither_prints_to_stdout_nor_exits():
    """svit_dataset, svit_model and hub_cards return what the user should see (or log it); the command line
    (svit_cli) prints it and chooses the exit code."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for package in LIBRARIES
        for path in package_modules(package).values()
        for line, what in user_interface_calls(path.read_text())
    ]
    assert not offenders, "\n".join(offenders)


def test_the_data_and_card_layers_and_svit_model_import_without_torch():
    """Every module of svit_dataset and hub_cards, and `import svit_model` (its top level loads its classes
    and transformers lazily), in a fresh interpreter: torch is not imported."""
    modules = [
        name
        for package in ("svit_dataset", "hub_cards")
        for name, path in package_modules(package).items()
        if path.name != "__main__.py"
    ]
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        import svit_model
        loaded = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        assert not loaded, f"imported: {{loaded}}"
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(modules) > 30  # every module, not an empty list


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
