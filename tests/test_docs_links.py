"""The documentation's relative links resolve, what it names exists, and the README stays a front door.

Every relative link ``[text](path)`` / ``[text](path#anchor)`` / ``[text](#anchor)`` in README.md,
CHANGELOG.md, docs/*.md, benchmarks/README.md and datasets/README.md must name an existing file
or folder, and an ``#anchor`` into a markdown file must be one of its headings' GitHub anchors.
Links inside code blocks and inline code are not links and are skipped; ``http(s)://`` and
``mailto:`` links are not checked (no network in tests).

The same pages (less CHANGELOG.md, which names what used to be) may only name repository files
that exist (``hgn_pyg/...py``, ``tests/...py``, ``configs/...yaml``, ...), tests that exist
(``tests/x.py::test_name``: the file defines ``test_name``) and ``hgn_pyg.`` modules and attributes
that import, so moving a module or renaming a test fails here until the docs follow.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest


def _repo_root() -> Path:
    here = Path(__file__).resolve().parent
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"no pyproject.toml above {here}")


ROOT = _repo_root()
README_MAX_LINES = 220

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target); the text may hold one level of brackets ([`x[0]`](...))
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")   # http:, https:, mailto:, ...


def doc_files() -> List[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md",
             ROOT / "datasets" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    return files


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks, with inline code removed."""
    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, _INLINE_CODE.sub("", line)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: link markup reduced to its text, lower case, every
    character but letters, digits, ``_``, ``-`` and spaces dropped, spaces turned into ``-``."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)   # [t](u) -> t
    text = re.sub(r"<[^>]+>", "", text)                                          # inline HTML
    text = text.lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "_- ")
    return text.replace(" ", "-")


def anchors_of(text: str) -> Set[str]:
    """Every heading anchor of a markdown text (repeated headings get ``-1``, ``-2``, ... as on GitHub)."""
    seen: Dict[str, int] = {}
    anchors: Set[str] = set()
    fenced = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if not m:
            continue
        base = github_anchor(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def broken_links(text: str, base_dir: Path, name: str = "<text>") -> List[str]:
    """One message per relative link in ``text`` that does not resolve from ``base_dir``."""
    problems: List[str] = []
    own_anchors = None
    anchor_cache: Dict[Path, Set[str]] = {}
    for number, line in _prose_lines(text):
        for m in _LINK.finditer(line):
            target = m.group(1)
            if not target or _EXTERNAL.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            where = f"{name}:{number}: ({target})"
            if path_part:
                resolved = (base_dir / path_part).resolve()
                if not resolved.exists():
                    problems.append(f"{where}: {path_part} does not exist")
                    continue
            else:
                resolved = None
            if not anchor:
                continue
            if resolved is None:
                if own_anchors is None:
                    own_anchors = anchors_of(text)
                anchors = own_anchors
            elif resolved.suffix.lower() == ".md" and resolved.is_file():
                if resolved not in anchor_cache:
                    anchor_cache[resolved] = anchors_of(resolved.read_text(encoding="utf-8"))
                anchors = anchor_cache[resolved]
            else:
                continue   # an anchor into a non-markdown file (a line number, ...) is not checked
            if anchor not in anchors:
                problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


_PATH_REF = re.compile(r"(?<![\w/.])((?:hgn_pyg|benchmarks|tests|configs|scripts|examples|datasets)/[\w./-]+"
                       r"\.(?:py|yaml|sh|md|png|json))")
_TEST_REF = re.compile(r"(?<![\w/.])(tests/[\w/]+\.py)::(\w+)")
_MODULE_REF = re.compile(r"(?<![\w.])(hgn_pyg(?:\.\w+)+)")
#: file names used as examples in the text, not as references to the repository
EXAMPLE_PATHS = {"configs/x.yaml"}
#: a dotted ``hgn_pyg.<x>`` ending in one of these is a file name (e.g. the ``.pt2`` archive's
#: ``hgn_pyg.json``), not a module
FILE_SUFFIXES = {"json", "yaml", "npz", "npy", "onnx", "pt2", "log"}


def _resolves(dotted: str) -> bool:
    """Whether ``a.b.c`` is a module of ours, or an attribute of the longest module prefix."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        module = ".".join(parts[:k])
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        obj = importlib.import_module(module)
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def missing_references(text: str, root: Path, name: str = "<text>") -> List[str]:
    """One message per repository file, test or ``hgn_pyg.`` name in ``text`` that does not exist."""
    problems: List[str] = []
    for m in _TEST_REF.finditer(text):
        path = root / m.group(1)
        if not path.is_file():
            problems.append(f"{name}: {m.group(0)}: {m.group(1)} does not exist")
        elif not re.search(rf"def {m.group(2)}\b", path.read_text(encoding="utf-8")):
            problems.append(f"{name}: {m.group(0)}: no test {m.group(2)} in {m.group(1)}")
    for m in _PATH_REF.finditer(text):
        if m.group(1) not in EXAMPLE_PATHS and not (root / m.group(1)).exists():
            problems.append(f"{name}: {m.group(1)} does not exist")
    for dotted in sorted(set(m.group(1) for m in _MODULE_REF.finditer(text))):
        if dotted.count(".") == 1 and dotted.rsplit(".", 1)[1] in FILE_SUFFIXES:
            continue
        if not _resolves(dotted):
            problems.append(f"{name}: {dotted} is neither a module nor an attribute")
    return problems


@pytest.mark.parametrize("path", [p for p in doc_files() if p.name != "CHANGELOG.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_named_files_tests_and_modules_exist(path):
    problems = missing_references(path.read_text(encoding="utf-8"), ROOT, str(path.relative_to(ROOT)))
    assert not problems, "the docs name what does not exist:\n" + "\n".join(problems)


def test_reference_checker_finds_what_is_missing(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_there():\n    pass\n")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "ok.yaml").write_text("A: 1\n")
    text = ("`tests/test_a.py::test_there` `tests/test_a.py::test_gone` `tests/test_b.py::test_there` "
            "`configs/ok.yaml` `configs/gone.yaml` `configs/x.yaml` "
            "`hgn_pyg.nn.SemGraphConv` `python -m hgn_pyg.data.synthetic` `hgn_pyg.nn.NoSuchLayer` "
            "`hgn_pyg.no_such_module` `hgn_pyg.json`")
    problems = missing_references(text, tmp_path, "t.md")
    assert sorted(problems) == sorted([
        "t.md: tests/test_a.py::test_gone: no test test_gone in tests/test_a.py",
        "t.md: tests/test_b.py::test_there: tests/test_b.py does not exist",
        "t.md: tests/test_b.py does not exist",
        "t.md: configs/gone.yaml does not exist",
        "t.md: hgn_pyg.nn.NoSuchLayer is neither a module nor an attribute",
        "t.md: hgn_pyg.no_such_module is neither a module nor an attribute",
    ]), problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    problems = broken_links(path.read_text(encoding="utf-8"), path.parent, str(path.relative_to(ROOT)))
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").split("\n")
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines (limit {README_MAX_LINES})"


def test_checker_finds_broken_links_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Set-up time, measured: `x` §2\n\n## Twice\n\n## Twice\n")
    text = "\n".join([
        "# Title",
        "## A section",
        "[ok file](docs/page.md) [ok anchor](docs/page.md#set-up-time-measured-x-2)",
        "[ok repeated heading](docs/page.md#twice-1) [ok own](#a-section) [ok dir](docs/)",
        "[external](https://example.org/nowhere) [mail](mailto:a@b.c)",
        "[missing file](docs/nope.md)",
        "[missing anchor](docs/page.md#set-up)",
        "[missing own anchor](#b-section)",
        "![missing image](docs/figure.png)",
        "`[in inline code](docs/nope2.md)`",
        "```",
        "[in a code block](docs/nope3.md)",
        "```",
    ])
    problems = broken_links(text, tmp_path, "synthetic.md")
    assert len(problems) == 4, problems
    assert "synthetic.md:6: (docs/nope.md): docs/nope.md does not exist" in problems
    assert "synthetic.md:7: (docs/page.md#set-up): no heading with anchor #set-up" in problems
    assert "synthetic.md:8: (#b-section): no heading with anchor #b-section" in problems
    assert any("docs/figure.png does not exist" in p for p in problems)
    assert not any("nope2" in p or "nope3" in p for p in problems)


@pytest.mark.parametrize("heading, anchor", [
    ("More mesh levels: cost per node-layer (`mesh_levels_cost.py`)",
     "more-mesh-levels-cost-per-node-layer-mesh_levels_costpy"),
    ("8. The training recipe and how to run it", "8-the-training-recipe-and-how-to-run-it"),
    ("`python benchmarks/sparse_vs_dense.py --quick --threads 2`",
     "python-benchmarkssparse_vs_densepy---quick---threads-2"),
    ("A — B", "a--b"),
    ("[Linked](x.md) heading", "linked-heading"),
])
def test_github_anchor(heading, anchor):
    assert github_anchor(heading) == anchor
