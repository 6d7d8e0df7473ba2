"""Measure the code-health bars of issue 25 on a checkout's non-test Python files.

    python tools/code_metrics.py [ROOT] [--json] [--details] [--check]

Files: every ``*.py`` under ROOT except those under ``tests/``, ``build/``, ``__pycache__/`` or a hidden
folder. Bars:

- import cycles: strongly connected groups of two or more project modules in the import graph. Imports
  inside functions count; imports under ``if TYPE_CHECKING:`` do not; a package's ``__init__`` importing
  its own submodules is how a package exposes names, not a cycle.
- kind checks: a comparison (``==``, ``!=``, ``in``, ``not in``, ``match``/``case``) against a model-kind
  string, or ``isinstance``/``issubclass`` against a model class, outside files named ``registry.py``
  or ``base.py``.
- docstring share: lines spanned by module, class and function docstrings over all lines of the files.
  Blank lines count as lines in both: in the numerator only when they sit inside a docstring.
- duplicate class names: class names (at any nesting level) defined in two or more modules.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

EXCLUDED_DIRS = {"tests", "build", "__pycache__"}
KINDS = frozenset({"tacotron", "duration", "wavernn", "istft", "griffinlim"})
MODEL_CLASSES = frozenset({
    "Synthesizer", "DurationSynthesizer", "MelSynthesizer", "Tacotron", "DurationSynthesizerModel",
    "Vocoder", "WaveRNNVocoder", "ISTFTVocoder", "GriffinLimVocoder", "GriffinLim", "WaveRNN",
    "ISTFTVocoderNet", "FastWaveRNNGenerator",
})
SEAM_FILES = frozenset({"registry.py", "base.py"})
# The targets; --check fails when one is missed.
BARS = {"import_cycles": 0, "kind_checks": 6, "docstring_share": 0.16, "duplicate_class_names": 1}


def source_files(root: Path) -> list[Path]:
    def excluded(path: Path) -> bool:
        parts = path.relative_to(root).parts[:-1]
        return any(part in EXCLUDED_DIRS or part.startswith(".") for part in parts)
    return sorted(path for path in root.rglob("*.py") if not excluded(path))


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in source_files(root)}


def _typing_only_nodes(tree: ast.AST) -> set[int]:
    return {id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for statement in node.body for inner in ast.walk(statement)}


def imported(tree: ast.AST, modules: dict[str, Path], importer: str = "", is_package: bool = False) -> set[str]:
    """Project modules named by the imports of ``tree`` (a module called ``importer``), outside
    ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()
    typing_only = _typing_only_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = importer.split(".") if is_package else importer.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names = [f"{base}.{alias.name}" if base else alias.name for alias in node.names] + [base]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = project_modules(root)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges = imported(tree, modules, name, path.name == "__init__.py") - {name}
        graph[name] = {other for other in edges if not other.startswith(name + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path, or None.

    >>> find_cycle({"a": {"b"}, "b": {"a"}})
    ['a', 'b', 'a']
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def cyclic_groups(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more nodes (Tarjan's algorithm), each sorted.

    >>> cyclic_groups({"a": {"b"}, "b": {"a", "c"}, "c": set()})
    [['a', 'b']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def _names_a_kind(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in KINDS
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_kind(element) for element in node.elts)
    return False


def _names_a_model_class(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in MODEL_CLASSES
    if isinstance(node, ast.Attribute):
        return node.attr in MODEL_CLASSES
    if isinstance(node, ast.Tuple):
        return any(_names_a_model_class(element) for element in node.elts)
    return False


def kind_checks(tree: ast.AST) -> list[int]:
    """Line numbers of the comparisons against a model kind in ``tree``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            if any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)) for op in node.ops) \
                    and any(_names_a_kind(side) for side in [node.left, *node.comparators]):
                lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and _names_a_kind(node.value):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2
              and _names_a_model_class(node.args[1])):
            lines.append(node.lineno)
    return sorted(lines)


def docstring_lines(tree: ast.AST) -> int:
    total = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                total += first.end_lineno - first.lineno + 1
    return total


def class_names(tree: ast.AST) -> set[str]:
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}


@dataclass
class Metrics:
    import_cycles: list[list[str]] = field(default_factory=list)
    kind_checks: list[str] = field(default_factory=list)
    docstring_lines: int = 0
    total_lines: int = 0
    docstrings_by_file: dict[str, tuple[int, int]] = field(default_factory=dict)
    duplicate_class_names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def docstring_share(self) -> float:
        return self.docstring_lines / self.total_lines if self.total_lines else 0.0

    def values(self) -> dict[str, float]:
        return {"import_cycles": len(self.import_cycles), "kind_checks": len(self.kind_checks),
                "docstring_share": self.docstring_share, "duplicate_class_names": len(self.duplicate_class_names)}


def measure(root: Path) -> Metrics:
    root = root.resolve()
    metrics = Metrics()
    graph = import_graph(root)
    metrics.import_cycles = cyclic_groups(graph)
    defined: dict[str, list[str]] = defaultdict(list)
    for path in source_files(root):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        relative = path.relative_to(root).as_posix()
        if path.name not in SEAM_FILES:
            metrics.kind_checks += [f"{relative}:{line}" for line in kind_checks(tree)]
        lines = len(text.splitlines())
        in_docstrings = docstring_lines(tree)
        metrics.total_lines += lines
        metrics.docstring_lines += in_docstrings
        metrics.docstrings_by_file[relative] = (in_docstrings, lines)
        for name in class_names(tree):
            defined[name].append(relative)
    metrics.duplicate_class_names = {name: files for name, files in sorted(defined.items()) if len(files) > 1}
    return metrics


def report(metrics: Metrics, details: bool) -> str:
    out = [
        f"import cycles: {len(metrics.import_cycles)}"
        + "".join(f"\n  {' <-> '.join(group)}" for group in metrics.import_cycles),
        f"kind checks outside registry.py/base.py: {len(metrics.kind_checks)}"
        + ("".join(f"\n  {where}" for where in metrics.kind_checks) if details else ""),
        f"docstring lines: {metrics.docstring_lines} of {metrics.total_lines} non-test lines "
        f"({100 * metrics.docstring_share:.1f} %)",
        f"class names defined in two or more modules: {len(metrics.duplicate_class_names)}"
        + "".join(f"\n  {name}: {', '.join(files)}" for name, files in metrics.duplicate_class_names.items()),
    ]
    if details:
        ranked = sorted(metrics.docstrings_by_file.items(), key=lambda item: -item[1][0])
        out.append("docstring lines by file:" + "".join(
            f"\n  {lines:5d} / {total:5d}  {name}" for name, (lines, total) in ranked if lines))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1],
                        help="checkout to measure (default: this one)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--details", action="store_true",
                        help="also list every kind check and the docstring lines of each file")
    parser.add_argument("--check", action="store_true", help="exit with 1 when a bar of issue 25 is missed")
    args = parser.parse_args(argv)

    metrics = measure(args.root)
    if args.json:
        print(json.dumps({**asdict(metrics), "docstring_share": metrics.docstring_share}, indent=2))
    else:
        print(report(metrics, args.details))
    missed = [name for name, value in metrics.values().items() if value > BARS[name]]
    if args.check and missed:
        print("missed: " + ", ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
