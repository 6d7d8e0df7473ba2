"""The toolbox's panels talk through the session's signals and state, never through the window or
another panel's widgets (read from the source, so that a reach cannot creep back)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

UI = REPO_ROOT / "toolbox" / "ui"
WINDOW = UI / "main_window.py"


def panel_modules() -> list[Path]:
    """Every module of toolbox/ui but the window, which composes the panels."""
    return sorted(path for path in UI.glob("*.py") if path not in (WINDOW, UI / "__init__.py"))


def window_panels() -> set[str]:
    """The window's attributes that hold a panel: ``self.<name> = <class from a *_panel module>(...)``."""
    tree = ast.parse(WINDOW.read_text())
    panel_classes = {alias.asname or alias.name for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_panel")
                     for alias in node.names}
    return {target.attr for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
            and node.value.func.id in panel_classes
            for target in node.targets if isinstance(target, ast.Attribute)}


def reaches(path: Path, panels: set[str]) -> list[str]:
    """``<x>.window.<panel>`` and ``window.<panel>`` chains in ``path``, as ``line: source``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in panels:
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "window") or (
                    isinstance(owner, ast.Attribute) and owner.attr == "window"):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_window_holds_the_panels():
    assert window_panels() == {"reference", "history", "models", "generation", "plots"}


def test_no_panel_reaches_into_another_panel():
    panels = window_panels()
    found = [reach for path in panel_modules() for reach in reaches(path, panels)]
    assert found == []


def test_no_panel_holds_the_window_or_imports_another_panel():
    for path in panel_modules():
        tree = ast.parse(path.read_text())
        windows = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "window"]
        assert windows == [], f"{path.name} gets hold of the window at lines {windows}"
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        others = {name for name in imported if name and (name == "toolbox.ui.main_window" or name.endswith("_panel"))}
        assert others == set(), f"{path.name} imports {sorted(others)}"


def test_the_reach_finder_finds_reaches(tmp_path):
    source = tmp_path / "panel.py"
    source.write_text("def f(self, window):\n    self.window.history.refresh()\n    window.plots.clear()\n"
                      "    self.session.controller.history.clear()\n")
    assert reaches(source, {"history", "plots"}) == ["panel.py:2: self.window.history", "panel.py:3: window.plots"]
