"""The package's imports point one way (docs: /work/shared/ARCHITECTURE.md, "Rooms").

Every module of ``hgn_pyg`` is parsed (``ast``; function-local imports included, imports under
``if TYPE_CHECKING:`` left out since they never run) and

* no module imports a module of a *later* stage (:data:`STAGES`, in the order data flows);
* there is no import cycle between modules (function-local imports count: a cycle hidden in a
  function is still a cycle).

Importing ``a.b.c`` runs ``a/b/__init__.py`` first, so it counts as importing the package ``a.b``
too (unless ``a.b`` contains the importing module). Modules of one stage may import each other.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The stages in the order data flows; a module may import its own stage and earlier ones.
#: ``errors``/``io``/``untrusted`` are utilities every stage uses (they import nothing else of
#: ours). ``config`` belongs to the engine: it validates names owned by the earlier stages and by
#: the leaf ``engine.optim``, and the engine reads it. The CLIs and the ``python -m`` entry
#: packages come last; the top package (lazy ``HGN``/``Lifter``/``load_model``) is above all.
STAGES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("utilities", ("hgn_pyg.errors", "hgn_pyg.io", "hgn_pyg.untrusted")),
    ("graphs", ("hgn_pyg.graphs",)),
    ("nn", ("hgn_pyg.nn",)),
    ("models", ("hgn_pyg.models",)),
    ("data", ("hgn_pyg.data",)),
    ("engine", ("hgn_pyg.engine", "hgn_pyg.config")),
    ("inference", ("hgn_pyg.inference",)),
    ("cli", ("hgn_pyg.cli", "hgn_pyg.train", "hgn_pyg.test", "hgn_pyg.lift", "hgn_pyg.convert")),
    ("api", ("hgn_pyg",)),
)


def module_files(root: Path, package: str = "hgn_pyg") -> Dict[str, Path]:
    """``{dotted module name: file}`` of every module of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterable[ast.AST]:
    """Import nodes anywhere in ``tree`` except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str = "hgn_pyg") -> Dict[str, Dict[str, int]]:
    """``{module: {imported module of ours: line}}`` (see the module docstring for what counts)."""
    files = module_files(root, package)
    graph: Dict[str, Dict[str, int]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = mod if is_pkg else mod.rpartition(".")[0]
        edges: Dict[str, int] = {}

        def add(target: str, line: int) -> None:
            # the target, and the packages whose __init__ importing it runs (not the importer's own
            # packages: they are initialised before it)
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                name = ".".join(parts[:i])
                implied = i < len(parts)
                if name in files and name != mod and not (implied and (mod + ".").startswith(name + ".")):
                    edges.setdefault(name, line)

        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        add(alias.name, node.lineno)
                continue
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != package:
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in files]
            if len(subs) < len(node.names) or target not in files or subs == []:
                add(target, node.lineno)  # names from the module / package itself
            for sub in subs:
                add(sub, node.lineno)
        graph[mod] = edges
    return graph


def stage_of(module: str, stages=STAGES) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(stages):
        for p in prefixes:
            # "hgn_pyg" (the top package) is its own stage, not a prefix of every module
            if (module == p or ("." in p and module.startswith(p + "."))) and len(p) > best:
                best, rank = len(p), i
    if rank is None:
        raise AssertionError(f"{module}: in no stage of tests/test_layering.py STAGES; add it where it belongs")
    return rank


def layer_violations(graph: Dict[str, Dict[str, int]], stages=STAGES) -> List[str]:
    out = []
    for mod, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            a, b = stage_of(mod, stages), stage_of(target, stages)
            if b > a:
                out.append(f"{mod}:{line} imports {target} ({stages[a][0]} -> later stage {stages[b][0]})")
    return out


def find_cycles(graph: Dict[str, Dict[str, int]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on: Set[str] = set()
    stack: List[str] = []
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_a_later_stage():
    assert layer_violations(import_graph(ROOT)) == []


def test_no_import_cycles():
    assert find_cycles(import_graph(ROOT)) == []


def test_every_module_has_a_stage():
    for mod in module_files(ROOT):
        stage_of(mod)


def test_lifting_does_not_load_the_trainer():
    import subprocess
    import sys

    code = ("import hgn_pyg, sys; hgn_pyg.Lifter; hgn_pyg.HGN; hgn_pyg.load_model; "
            "print(sorted(m for m in sys.modules if m in ('hgn_pyg.engine.trainer', "
            "'hgn_pyg.engine.distributed')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


# ---------------------------------------------------------------- the checks can fail
def _package(tmp_path: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_a_later_stage_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "hgn_pyg/__init__.py": "",
        "hgn_pyg/graphs/__init__.py": "",
        "hgn_pyg/graphs/skeleton.py": """
            def f():
                from hgn_pyg.engine.trainer import Trainer  # hidden in a function
            """,
        "hgn_pyg/engine/__init__.py": "",
        "hgn_pyg/engine/trainer.py": "from ..graphs import skeleton\n",
        "hgn_pyg/engine/build.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from hgn_pyg.cli.train import main  # annotations only: allowed
            """,
        "hgn_pyg/cli/__init__.py": "",
        "hgn_pyg/cli/train.py": "",
    })
    graph = import_graph(root)
    assert graph["hgn_pyg.engine.trainer"] == {"hgn_pyg.graphs": 1, "hgn_pyg.graphs.skeleton": 1}
    bad = layer_violations(graph)
    assert bad == ["hgn_pyg.graphs.skeleton:3 imports hgn_pyg.engine (graphs -> later stage engine)",
                   "hgn_pyg.graphs.skeleton:3 imports hgn_pyg.engine.trainer (graphs -> later stage engine)"]
    assert find_cycles(graph) == [["hgn_pyg.engine.trainer", "hgn_pyg.graphs.skeleton"]]


def test_a_cycle_within_one_stage_and_through_a_package_init_is_found(tmp_path):
    root = _package(tmp_path, {
        "hgn_pyg/__init__.py": "",
        "hgn_pyg/models/__init__.py": "from .hgn import HGN\n",
        "hgn_pyg/models/hgn.py": "HGN = 1\n",
        "hgn_pyg/models/checkpoint.py": "from hgn_pyg.models import HGN\n",  # via the package __init__
        "hgn_pyg/models/factory.py": "import hgn_pyg.models.checkpoint\n",
    })
    graph = import_graph(root)
    assert layer_violations(graph) == []
    assert find_cycles(graph) == []  # no cycle yet: the package __init__ does not import checkpoint
    (root / "hgn_pyg/models/hgn.py").write_text("HGN = 1\ndef f():\n    from .factory import x\n")
    assert find_cycles(import_graph(root)) == [
        ["hgn_pyg.models", "hgn_pyg.models.checkpoint", "hgn_pyg.models.factory", "hgn_pyg.models.hgn"]]


def test_a_module_outside_every_stage_is_refused():
    with pytest.raises(AssertionError, match="hgn_pyg.export.onnx: in no stage"):
        stage_of("hgn_pyg.export.onnx")


# ---------------------------------------------------------------- the entry points
def test_console_scripts_and_python_m_entry_points():
    """Every console script of pyproject.toml names a callable ``main``; ``python -m hgn_pyg.X`` runs
    the CLI module the script names (same usage line)."""
    import importlib
    import os
    import subprocess
    import sys

    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"hgn-train", "hgn-test", "hgn-lift", "hgn-convert", "hgn-synthetic"} <= set(scripts)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for script, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target
        if script == "hgn-synthetic":
            continue
        entry = "hgn_pyg." + script[len("hgn-"):]
        assert importlib.import_module(entry).main is getattr(importlib.import_module(module), func)
        proc = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: python -m {entry} "), proc.stdout[:200]
